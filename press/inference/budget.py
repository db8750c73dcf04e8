"""Compute-budget mode (beyond the paper): meet a mean GMAC/s budget with a quality threshold.

Instead of a target (t, p) the user gives a compute budget G in GMAC/s. The rule that runs is
the dynamic rule with a different question: a segment leaves at the first exit whose *expected
exit-SNR* (dB, the mean over its blocks and speakers of E[exit-SNR] under the predicted
precision, `press.engine.rule.expected_block_snr_db`) reaches a threshold τ
(`press.engine.policies.Budget`).
Raising τ only ever moves segments deeper, so the mean compute is a non-decreasing step function
of τ; τ is chosen on calibration data as the highest value whose mean cost stays within the
budget (`press.engine.thresholds.threshold_for_budget`, a binary search over the calibration
qualities).

`BudgetCalibration` holds, for every calibration segment, its quality at every exit, measured
once with `trace_exits` (every exit of every segment, cut as inputs are cut). Turning a
budget into a threshold for one input is then instant: the input's segment plan says how much
its windows' context and padding add to every exit's cost (r = window samples / input samples),
and the calibration segments' mean per-exit GMAC/s must stay within G / r.

Measured against the rate controller this replaced (a threshold on P(exit-SNR ≥ t) steered after
every batch) with benchmarks/budget_policies.py: docs/exits.md, "Compute budget".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from press.engine.backend import exit_scales
from press.engine.plan import SegmentPlan
from press.engine.policies import Budget
from press.engine.rule import expected_block_snr_db, segment_quality
from press.engine.thresholds import budget_threshold
from press.errors import PressError
from press.inference.runner import Separator
from press.inference.trace import ExitTrace, trace_exits
from press.io.streaming import ArrayReader
from press.prob.calibration import Recalibration


def trace_quality(trace: ExitTrace, recalibration: Recalibration | None = None) -> np.ndarray:
    """(n_seg, K) quality of every segment of a trace at every exit, with the functions
    `press.engine.policies.Budget` computes it with online (α, β recalibrated per exit as the loop does)."""
    scales = np.array(exit_scales((recalibration or Recalibration()).to_dict(), trace.n_exits))   # (K, 2)
    alpha = trace.alpha * scales[:, 0, None, None, None]                                            # (K, n, S, nbw)
    beta = trace.beta * scales[:, 1, None, None, None]
    expected = expected_block_snr_db(trace.estimates, trace.windows, alpha, beta, trace.block, trace.p_ref,
                                     trace.lengths)                                                 # (K, n, S, nbw)
    return segment_quality(expected, trace.core, trace.valid).T


@dataclass
class BudgetCalibration:
    """Per calibration segment and exit, the quality `policies.Budget` thresholds; see the module
    docstring. gmacs: the model's GMAC/s per exit (earlier heads included)."""

    quality: np.ndarray            # (N, K)
    gmacs: Sequence[float]

    @classmethod
    def measure(cls, separator: Separator, mixtures: Iterable[np.ndarray]) -> BudgetCalibration:
        """Trace the mixtures (1-D, at the model's rate) through every exit and keep the segments'
        qualities, cut by `separator` in the two ways an input gets cut: each mixture as an input of
        its own (short ones run whole), and all of them end to end as one long recording (2 s
        segments with context, P_ref of the whole). The two cuts give different qualities, and
        either alone misses the other kind of input by up to 10-16 % (docs/exits.md)."""
        mixtures = [np.asarray(x, np.float32) for x in mixtures]
        if not mixtures:
            raise PressError("budget calibration needs at least one mixture")
        inputs = mixtures + ([np.concatenate(mixtures)] if len(mixtures) > 1 else [])
        quality = [trace_quality(trace_exits(separator, ArrayReader(x)), separator.recalibration) for x in inputs]
        return cls(np.concatenate(quality), list(separator.gmacs))

    def threshold(self, gmacs_per_second: float, plan: SegmentPlan) -> float:
        """τ (dB) for an input cut by `plan` to spend at most `gmacs_per_second` on average (on the
        calibration segments; +inf: every segment may run to the last exit)."""
        return budget_threshold(self.quality, np.asarray(self.gmacs, dtype=np.float64), gmacs_per_second, plan)

    def policy(self, gmacs_per_second: float, plan: SegmentPlan) -> Budget:
        return Budget(self.threshold(gmacs_per_second, plan), gmacs_per_second)
