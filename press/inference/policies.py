"""Exit policies: after exit k, which of the active segments leave?

A policy sees an `ExitContext` per batch and returns a bool per segment. PRESS's own rule is
`Dynamic`; `Static`, `OutputChange` (the heuristic before PRESS) and `Budget` (a compute budget,
beyond the paper) share the runner and the stitcher, so they are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from press.errors import PressError
from press.model import ExitOutput
from press.prob.exits import ExitProbabilities, segment_decision


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
    block: int                          # the model's likelihood block B in samples (cfg.block)

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


@dataclass
class Budget:
    """Meet a mean compute budget (GMAC/s) with the most expected quality (beyond the paper).

    A segment goes one exit deeper while its predicted quality — the worst block's and speaker's
    probability of meeting the report target — is below a threshold tau. tau is steered online
    like a rate controller: after every batch it moves by `gain` per unit of relative overspend
    (down when the running mean cost is above budget, so that segments leave earlier; up when
    under). Segments that are predicted hardest are the ones that get the extra depth, which is
    what maximises expected quality for a given spend; the running mean converges to the budget
    over a long input.
    """

    gmacs_per_second: float
    tau: float = 0.9
    gain: float = 0.5
    spent: float = field(default=0.0, init=False)        # MACs so far
    seconds: float = field(default=0.0, init=False)      # audio seconds so far

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        quality = ctx.probabilities.block[:, ctx.core].masked_fill(~ctx.valid, 1.0).amin(-1)
        return quality >= self.tau

    def update(self, macs: float, seconds: float) -> None:
        self.spent += macs
        self.seconds += seconds
        if self.seconds > 0:
            over = self.spent / self.seconds / 1e9 / self.gmacs_per_second - 1.0
            self.tau = float(min(1.0, max(0.0, self.tau - self.gain * over)))
