"""The exit rule on a live stream's likelihood blocks, one block at a time as each ends.

A stream decides each block's exit once the block has ended (press.model.stream_exits), from that
exit's estimate and (alpha, beta) of the block alone, with `press.engine.rule.exit_probabilities`,
the rule every other backend runs. One thing differs from a file: the SNR_ref condition's P_ref is
the whole input's mean power, which a stream does not know before its end; it is the mean power of
the input so far (up to the block's last sample), the running estimate docs/exits.md names for
streams. On the first block it is that block's own mean power.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from press.engine.rule import exit_probabilities


class StreamRule:
    """Whether a stream's block may leave at an exit: P(exit-SNR >= target_db) >= confidence for
    every speaker. Called with the blocks in order, each at its first exit first (which is when its
    input joins P_ref); B streams are judged one by one, each with its own P_ref. scales: the
    model's stored recalibration, (alpha, beta) scale per exit (press.engine.backend.exit_scales),
    applied before the rule as a file's exits apply it; None: none."""

    def __init__(self, target_db: float, confidence: float,
                 scales: Sequence[tuple[float, float]] | None = None) -> None:
        self.target_db, self.confidence = float(target_db), float(confidence)
        self.scales = None if scales is None else [(np.float32(a), np.float32(b)) for a, b in scales]
        self._block = -1
        self._energy: np.ndarray | float = 0.0   # (B,) sum of squares of the input so far
        self._count = 0                           # its samples

    def __call__(self, block: int, exit: int, estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray,
                 beta: np.ndarray) -> np.ndarray:
        """The decision per stream (B,) for block `block` at exit `exit` (1-based): estimate (B, S, n)
        and mixture (B, n) the block's n samples in input units, alpha, beta (B, S, 1)."""
        n = mixture.shape[-1]
        if block != self._block:
            self._block = block
            self._energy = self._energy + np.square(mixture, dtype=np.float64).sum(-1)
            self._count += n
        p_ref = np.broadcast_to(self._energy / max(self._count, 1), mixture.shape[:1])
        if self.scales is not None:
            alpha, beta = alpha * self.scales[exit - 1][0], beta * self.scales[exit - 1][1]
        return np.array([exit_probabilities(estimate[b], mixture[b], alpha[b], beta[b], self.target_db,
                                            self.confidence, max(n, 1), float(p_ref[b]), np.asarray(n)).decision[0]
                         for b in range(mixture.shape[0])])
