"""Compute-budget mode without torch: press.inference.budget's threshold choice in numpy.

`press export` stores the model's budget calibration (press.inference.budget.BudgetCalibration:
every calibration segment's expected quality at every exit, and the exits' GMAC/s, measured with
torch on the built-in validation mixtures, cut with the exported segment and context) in
`budget_calibration.json`, listed with its sha256 in the manifest. The runtime turns a budget into
the same threshold as the torch backend (`threshold`), and a segment leaves at the first exit whose
`rule.segment_quality` reaches it.
"""

from __future__ import annotations

import math

import numpy as np

from press.errors import PressError


def first_exit_reaching(quality: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) 0-based index of the first exit whose quality (N, K) reaches threshold, else the last."""
    reached = np.asarray(quality, dtype=np.float64) >= threshold
    reached[:, -1] = True
    return reached.argmax(axis=1)


def threshold_for_budget(quality: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """press.inference.budget.threshold_for_budget: the highest threshold whose mean cost on the
    calibration segments stays within budget (+inf: every segment may run to the last exit)."""
    quality = np.asarray(quality, dtype=np.float64)
    cost = np.broadcast_to(np.asarray(cost, dtype=np.float64), quality.shape)
    if (np.diff(cost, axis=1) < 0).any():
        raise PressError("exit costs must not decrease with depth")
    rows = np.arange(quality.shape[0])
    limit = budget + 1e-9 * abs(budget)

    def mean_cost(tau: float) -> float:
        return float(cost[rows, first_exit_reaching(quality, tau)].mean())

    if mean_cost(math.inf) <= limit:
        return math.inf
    candidates = np.unique(quality).tolist()
    if mean_cost(candidates[0]) > limit:
        raise PressError(f"compute budget {budget:g} is below the cheapest possible mean cost "
                         f"{mean_cost(candidates[0]):g}")
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mean_cost(candidates[mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return candidates[lo]


def threshold(calibration: dict, gmacs_per_second: float, window: int, n_windows: int, n_samples: int) -> float:
    """press.inference.budget.BudgetCalibration.threshold for an input cut into n_windows windows of
    `window` samples: calibration holds `quality` (N, K) and `gmacs_per_second` (K,)."""
    if gmacs_per_second <= 0:
        raise PressError(f"budget must be a positive GMAC/s figure, got {gmacs_per_second}")
    gmacs = calibration["gmacs_per_second"]
    r = window * n_windows / max(n_samples, 1)     # press.inference.budget.overhead
    if gmacs_per_second / r < gmacs[0]:
        raise PressError(f"a budget of {gmacs_per_second:g} GMAC/s is below what exit 1 costs on this "
                         f"input: {r * gmacs[0]:.3g} GMAC/s (segments' context included)")
    return threshold_for_budget(np.asarray(calibration["quality"], dtype=np.float64),
                                np.asarray(gmacs, dtype=np.float64), gmacs_per_second / r)
