"""Every exit's predicted exit-SNR over time, from the heads alone: no references needed.

What the web page draws under a separation: for each exit and likelihood block, the 10 / 50 / 90 %
quantiles of the exit-SNR its inverse-gamma head predicts (with the model's recalibration), for the
speaker predicted worst. It runs every segment through every exit once (press.inference.trace),
so it costs about one more run to the last exit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND_QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class ExitBands:
    """Every exit's predicted exit-SNR per likelihood block of one input, for the worst speaker.

    quantiles: (len(BAND_QUANTILES), K, n_blocks) dB, blocks in time order from 0 s, each
    `block_seconds` long. Per exit and block, the speaker with the lowest predicted median
    (speakers are not aligned across exits or segments: no references on the page).
    """

    quantiles: np.ndarray
    block_seconds: float
    levels: tuple[float, ...] = BAND_QUANTILES

    @property
    def starts(self) -> np.ndarray:
        return np.arange(self.quantiles.shape[-1]) * self.block_seconds


def worst_speaker_bands(q: np.ndarray, median: int = 1) -> np.ndarray:
    """(Q, ..., S, n) quantiles per speaker -> (Q, ..., n): per element, every quantile of the speaker
    whose `median`-th quantile is lowest (one speaker's band, not a mix of speakers')."""
    pick = np.argmin(q[median], axis=-2)[None, ..., None, :]           # (1, ..., 1, n)
    return np.take_along_axis(q, np.broadcast_to(pick, q.shape[:-2] + (1,) + q.shape[-1:]), axis=-2)[..., 0, :]


def exit_snr_bands(model, mixture: np.ndarray, rate: int, target_db: float = 5.0,
                   confidence: float = 0.5) -> ExitBands:
    """Run every segment of `mixture` (mono, at `rate`) through every exit of `model` (a
    press.api.Press) once and return the predicted exit-SNR bands per exit and block (with the
    model's recalibration and the segmentation of `separate_file`: its operating point's segments,
    which a causal model too is traced in; see ExitBands)."""
    from press.evaluation.analysis import trace_exit_snr
    from press.inference.trace import trace_exits
    from press.io.audio import resample
    from press.io.streaming import ArrayReader

    inner = resample(mixture, rate, model.sample_rate) if rate != model.sample_rate else mixture
    point = model.operating_point   # a causal model, which files stream through, is traced in segments too
    cut = {"segment": point.segment, "context": point.context} if model.model.cfg.causal else {}
    separator = model.separator(target_db, confidence, **cut)
    trace = trace_exits(separator, ArrayReader(np.asarray(inner, np.float32)))
    q = trace_exit_snr(trace, BAND_QUANTILES, model.recalibration)           # (Q, K, n_seg, S, n_core)
    q = np.swapaxes(q, 2, 3)                                                   # (Q, K, S, n_seg, n_core)
    q = q.reshape(*q.shape[:3], -1)[..., trace.valid.reshape(-1)]              # (Q, K, S, n_blocks)
    return ExitBands(worst_speaker_bands(q), trace.block / trace.sample_rate)
