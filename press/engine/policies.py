"""Exit policies: after exit k, which of the active segments leave?

A policy sees an `ExitContext` per batch and returns a bool per segment. PRESS's own rule is
`Dynamic`; `Static`, `OutputChange` (the heuristic before PRESS) and `Budget` (a threshold on
expected quality that meets a compute budget, beyond the paper; its threshold comes from
`press.engine.thresholds`) share the loop and the stitcher, so they are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from press.engine.backend import Exit
from press.engine.rule import ExitProbabilities, expected_block_snr_db, segment_decision, segment_quality
from press.errors import PressError


@dataclass
class ExitContext:
    """What a policy sees after exit `k` (1-based) for the active segments of a batch."""

    k: int
    n_exits: int
    output: Exit                        # estimate (N, S, W), alpha/beta (N, S, nbw), recalibrated
    probabilities: ExitProbabilities    # per block of the window, at the report target
    core: slice                         # the blocks of the window that belong to the segment
    valid: np.ndarray                   # (N, n_core) bool: core blocks holding input samples
    previous: np.ndarray | None         # (N, S, W) estimate of exit k-1, None at exit 1
    mixture: np.ndarray                 # (N, W) the mixture windows
    lengths: np.ndarray                 # (N,) valid samples per window
    p_ref: float                        # the whole input's mean power (reference of SNR_ref)
    block: int                          # likelihood block, samples

    @property
    def core_samples(self) -> slice:
        """The segment's samples within the window (`core` in samples rather than blocks)."""
        return slice(self.core.start * self.block, self.core.stop * self.block)


class ExitPolicy(Protocol):
    def __call__(self, ctx: ExitContext) -> np.ndarray: ...   # (N,) bool: leave now


@dataclass
class Dynamic:
    """PRESS's rule: leave at the first exit where P(exit-SNR >= t) >= p holds for the segment's
    blocks (all of them, or a `quantile` of them)."""

    quantile: float = 1.0

    def __call__(self, ctx: ExitContext) -> np.ndarray:
        return segment_decision(ctx.probabilities.decision[:, ctx.core], ctx.valid, self.quantile)


@dataclass
class Static:
    """Every segment leaves at one fixed exit."""

    exit: int

    def __call__(self, ctx: ExitContext) -> np.ndarray:
        if not 1 <= self.exit <= ctx.n_exits:
            raise PressError(f"exit must be between 1 and {ctx.n_exits}, got {self.exit}")
        return np.full(ctx.output.estimate.shape[0], ctx.k >= self.exit)


def output_change(estimate: np.ndarray, previous: np.ndarray, core: slice) -> np.ndarray:
    """The output-change heuristic's measure, ||x̂_k - x̂_{k-1}|| / ||x̂_k|| over all speakers and
    the samples `core` of the window: estimate, previous (..., S, W) -> (...).

    The one implementation, used by `OutputChange` at run time and by
    `press.evaluation.strategies.output_change_exits` on a trace, so the two cannot drift apart.
    Computed in float64; a silent output divides by 1e-12.
    """
    cur = estimate[..., core].astype(np.float64)
    prev = previous[..., core].astype(np.float64)
    return np.sqrt(((cur - prev) ** 2).sum((-2, -1))) / np.maximum(np.sqrt((cur ** 2).sum((-2, -1))), 1e-12)


@dataclass
class OutputChange:
    """The heuristic before PRESS: leave when consecutive exits' outputs stop changing, i.e.
    `output_change` < threshold over the segment's core (in samples: the core blocks times the
    model's own likelihood block, from the context)."""

    threshold: float = 0.05

    def __call__(self, ctx: ExitContext) -> np.ndarray:
        if ctx.previous is None:
            return np.zeros(ctx.output.estimate.shape[0], dtype=bool)
        return output_change(ctx.output.estimate, ctx.previous, ctx.core_samples) < self.threshold


@dataclass
class Budget:
    """Leave at the first exit whose expected quality reaches `threshold_db` (beyond the paper).

    The quality of a segment is the mean over its blocks and speakers of the expected exit-SNR in dB
    under the predicted precision (`segment_quality` of `expected_block_snr_db`). With a threshold
    fitted on calibration segments (press.engine.thresholds), the mean compute meets a GMAC/s budget:
    `gmacs_per_second` records that budget (for reports) and plays no part in the decisions.
    """

    threshold_db: float
    gmacs_per_second: float | None = None

    def __call__(self, ctx: ExitContext) -> np.ndarray:
        expected = expected_block_snr_db(ctx.output.estimate, ctx.mixture, ctx.output.alpha, ctx.output.beta,
                                         ctx.block, ctx.p_ref, ctx.lengths)
        return segment_quality(expected, ctx.core, ctx.valid) >= self.threshold_db


def choose(n_exits: int, exit: int | None, budget: float | None, quantile: float,
           threshold: Callable[[float], float]) -> ExitPolicy:
    """The policy a separation asks for: a fixed exit, a budget in GMAC/s (whose threshold
    `threshold(budget)` fits), or by default PRESS's rule on a `quantile` of each segment's blocks."""
    if exit is not None and budget is not None:
        raise PressError("choose one of exit= (a fixed exit) and budget= (a GMAC/s budget), not both")
    if exit is not None:
        if not 1 <= exit <= n_exits:
            raise PressError(f"exit must be between 1 and {n_exits} for this model, got {exit}")
        return Static(exit)
    if budget is not None:
        if budget <= 0:
            raise PressError(f"budget must be a positive GMAC/s figure, got {budget}")
        return Budget(threshold(budget), budget)
    return Dynamic(quantile)
