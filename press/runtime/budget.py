"""Compute-budget mode without torch, on the threshold choice of press.inference.thresholds.

`press export` stores the model's budget calibration (press.inference.budget.BudgetCalibration:
every calibration segment's expected quality at every exit, and the exits' GMAC/s, measured with
torch on the built-in validation mixtures, cut with the exported segment and context) in
`budget_calibration.json`, listed with its sha256 in the manifest. The runtime turns a budget into
the same threshold as the torch backend (`threshold`), and a segment leaves at the first exit whose
`rule.segment_quality` reaches it.
"""

from __future__ import annotations

import numpy as np

from press.inference.plan import SegmentPlan
from press.inference.thresholds import budget_threshold


def threshold(calibration: dict, gmacs_per_second: float, plan: SegmentPlan) -> float:
    """`press.inference.thresholds.budget_threshold` on an exported calibration: `quality` (N, K)
    and `gmacs_per_second` (K,), for an input cut by `plan`."""
    return budget_threshold(np.asarray(calibration["quality"], dtype=np.float64),
                            np.asarray(calibration["gmacs_per_second"], dtype=np.float64), gmacs_per_second, plan)
