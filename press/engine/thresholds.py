"""Budget mode's threshold choice, for both backends.

Given every calibration segment's expected quality at every exit and the exits' costs, a budget
turns into the highest threshold τ whose rule "leave at the first exit whose quality reaches τ"
keeps the mean cost within it (press.inference.budget measures the qualities with torch; an ONNX
export stores them; docs/exits.md).
"""

from __future__ import annotations

import math

import numpy as np

from press.engine.plan import SegmentPlan
from press.errors import PressError


def first_exit_reaching(quality: np.ndarray, threshold: float) -> np.ndarray:
    """Index of the first exit whose quality reaches `threshold`, the last exit if none does.

    quality: (N, K), exits in network order. Returns (N,) int64 (0-based). This is what the loop
    does online with `press.engine.policies.Budget`: at exit k it only needs quality[:, k].
    """
    reached = np.asarray(quality, dtype=np.float64) >= threshold
    reached[:, -1] = True
    return reached.argmax(axis=1)


def threshold_for_budget(quality: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """Highest threshold τ for which `first_exit_reaching(quality, τ)` has mean cost ≤ budget
    (to a relative 1e-9).

    quality: (N, K) per-segment expected quality at every exit, from calibration data;
    cost: (K,) or (N, K), non-decreasing along the exits (deeper never costs less). Raising τ
    can only move segments deeper, so the mean cost is a non-decreasing step function of τ that
    changes only at the values in `quality`: a binary search over them finds the largest feasible
    one. Returns +inf when the budget covers the last exit everywhere. Raises PressError when even
    exiting everything at its first exit exceeds the budget.
    """
    quality = np.asarray(quality, dtype=np.float64)
    cost = np.broadcast_to(np.asarray(cost, dtype=np.float64), quality.shape)
    if (np.diff(cost, axis=1) < 0).any():
        raise PressError("exit costs must not decrease with depth")
    rows = np.arange(quality.shape[0])
    limit = budget + 1e-9 * abs(budget)  # a budget that lands on a step is met despite rounding

    def mean_cost(tau: float) -> float:
        return float(cost[rows, first_exit_reaching(quality, tau)].mean())

    if mean_cost(math.inf) <= limit:
        return math.inf
    candidates = np.unique(quality).tolist()  # sorted ascending
    if mean_cost(candidates[0]) > limit:
        raise PressError(f"compute budget {budget:g} is below the cheapest possible mean cost "
                         f"{mean_cost(candidates[0]):g}")
    lo, hi = 0, len(candidates) - 1  # candidates[lo] feasible; find the last feasible
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mean_cost(candidates[mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return candidates[lo]


def overhead(plan: SegmentPlan) -> float:
    """What the windows cost against the input's own samples (context and last-window padding):
    an input's GMAC/s is this times the mean over its segments of the exits' GMAC/s."""
    return plan.window * len(plan) / max(plan.n_samples, 1)


def budget_threshold(quality: np.ndarray, gmacs: np.ndarray, gmacs_per_second: float, plan: SegmentPlan) -> float:
    """τ (dB) for an input cut by `plan` to spend at most `gmacs_per_second` on average, from the
    calibration segments' qualities (N, K) and the exits' GMAC/s (K,); +inf: every segment may run
    to the last exit. A budget below what exit 1 costs on this input (context included) is refused."""
    if gmacs_per_second <= 0:
        raise PressError(f"budget must be a positive GMAC/s figure, got {gmacs_per_second}")
    r = overhead(plan)
    if gmacs_per_second / r < gmacs[0]:
        raise PressError(f"a budget of {gmacs_per_second:g} GMAC/s is below what exit 1 costs on this "
                         f"input: {r * gmacs[0]:.3g} GMAC/s (segments' context included)")
    return threshold_for_budget(quality, gmacs, gmacs_per_second / r)

