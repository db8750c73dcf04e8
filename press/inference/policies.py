"""Exit policies: after exit k, which of the active segments leave?

A policy sees an `ExitContext` per batch and returns a bool per segment. PRESS's own rule is
`Dynamic`; `Static`, `OutputChange` (the heuristic before PRESS) and `Budget` (a threshold on
expected quality that meets a compute budget, beyond the paper; its threshold comes from
`press.inference.budget`) share the runner and the stitcher, so they are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from press.errors import PressError
from press.model import ExitOutput
from press.prob.exits import ExitProbabilities, expected_block_snr_db, segment_decision


@dataclass
class ExitContext:
    """What a policy sees after exit `k` (1-based) for the active segments of a batch."""

    k: int
    n_exits: int
    output: ExitOutput                  # estimate (N, S, W), alpha/beta (N, S, nbw)
    probabilities: ExitProbabilities    # per block of the window, at the report target
    core: slice                         # the blocks of the window that belong to the segment
    valid: torch.Tensor                 # (N, n_core) bool: core blocks holding input samples
    previous: torch.Tensor | None       # (N, S, W) estimate of exit k-1, None at exit 1
    mixture: torch.Tensor               # (N, W) the mixture windows
    lengths: torch.Tensor               # (N,) valid samples per window
    p_ref: float                        # the whole input's mean power (reference of SNR_ref)
    block: int                          # likelihood block, samples

    @property
    def core_samples(self) -> slice:
        """The segment's samples within the window (`core` in samples rather than blocks)."""
        return slice(self.core.start * self.block, self.core.stop * self.block)


class ExitPolicy(Protocol):
    def __call__(self, ctx: ExitContext) -> torch.Tensor: ...   # (N,) bool: leave now


@dataclass
class Dynamic:
    """PRESS's rule: leave at the first exit where P(exit-SNR >= t) >= p holds for the segment's
    blocks (all of them, or a `quantile` of them)."""

    quantile: float = 1.0

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        return segment_decision(ctx.probabilities.decision[:, ctx.core], ctx.valid, self.quantile)


@dataclass
class Static:
    """Every segment leaves at one fixed exit."""

    exit: int

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        if not 1 <= self.exit <= ctx.n_exits:
            raise PressError(f"exit must be between 1 and {ctx.n_exits}, got {self.exit}")
        return torch.full((ctx.output.estimate.shape[0],), ctx.k >= self.exit)


def output_change(estimate: torch.Tensor, previous: torch.Tensor, core: slice) -> torch.Tensor:
    """The output-change heuristic's measure, ||x̂_k - x̂_{k-1}|| / ||x̂_k|| over all speakers and
    the samples `core` of the window: estimate, previous (..., S, W) -> (...).

    The one implementation, used by `OutputChange` at run time and by
    `press.evaluation.strategies.output_change_exits` on a trace, so the two cannot drift apart.
    Computed in float64 whatever the network ran in; a silent output divides by 1e-12.
    """
    cur = estimate[..., core].double()
    prev = previous[..., core].double()
    return (cur - prev).pow(2).sum((-2, -1)).sqrt() / cur.pow(2).sum((-2, -1)).sqrt().clamp_min(1e-12)


@dataclass
class OutputChange:
    """The heuristic before PRESS: leave when consecutive exits' outputs stop changing, i.e.
    `output_change` < threshold over the segment's core (in samples: the core blocks times the
    model's own likelihood block, from the context)."""

    threshold: float = 0.05

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        n = ctx.output.estimate.shape[0]
        if ctx.previous is None:
            return torch.zeros(n, dtype=torch.bool)
        return output_change(ctx.output.estimate, ctx.previous, ctx.core_samples) < self.threshold


def segment_quality(expected_db: torch.Tensor, core: slice, valid: torch.Tensor) -> torch.Tensor:
    """One quality per segment: the mean of E[exit-SNR] (dB) over its valid core blocks and speakers.

    expected_db: (..., N, S, nbw) per speaker and window block; valid: (N, n_core). Returns (..., N).
    """
    q = expected_db[..., core]
    mask = valid.to(q.device)[:, None, :].expand(q.shape[-3:]).to(q.dtype)
    return (q * mask).sum((-2, -1)) / mask.sum((-2, -1)).clamp_min(1.0)


@dataclass
class Budget:
    """Leave at the first exit whose expected quality reaches `threshold_db` (beyond the paper).

    The quality of a segment is the mean over its blocks and speakers of the expected exit-SNR in dB
    under the predicted precision (`segment_quality` of `expected_block_snr_db`). With a threshold
    from `press.inference.budget.BudgetCalibration`, the mean compute meets a GMAC/s budget:
    `gmacs_per_second` records that budget (for reports) and plays no part in the decisions.
    """

    threshold_db: float
    gmacs_per_second: float | None = None

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        expected = expected_block_snr_db(ctx.output.estimate, ctx.mixture, ctx.output.alpha, ctx.output.beta,
                                         ctx.block, p_ref=ctx.p_ref, lengths=ctx.lengths)
        return segment_quality(expected, ctx.core, ctx.valid) >= self.threshold_db
