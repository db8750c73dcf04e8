"""The fixed chain that turns a recording into a corpus utterance: resampled, trimmed of silence,
levelled to TARGET_DBFS over its active frames, int16. One chain for every rendered corpus, so that
the 8 kHz built-in utterances and the 16 kHz wideband ones are conditioned alike."""

from __future__ import annotations

import numpy as np

from press.data.manifest import SAMPLE_RATE
from press.errors import PressError
from press.io.audio import resample

TARGET_DBFS = -22.0


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame
    return 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)


def condition(x: np.ndarray, sr: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The fixed chain every utterance goes through: `rate` (the built-in corpus's 8 kHz unless given),
    trimmed, -22 dBFS active level, int16."""
    x = resample(x.astype(np.float32), sr, rate) if sr != rate else x.astype(np.float32)
    frame = rate // 100
    db = _frame_db(x, frame)
    if len(db) == 0 or db.max() < -70:
        raise PressError("utterance is silent or shorter than 10 ms")
    voiced = np.flatnonzero(db > db.max() - 45)
    margin = 8  # frames of 10 ms kept around the speech
    start = max(0, (voiced[0] - margin) * frame)
    end = min(len(x), (voiced[-1] + 1 + margin) * frame)
    x = x[start:end]
    db = _frame_db(x, frame)
    active = db > db.max() - 30
    rms = np.sqrt(np.mean(x[: len(active) * frame].reshape(-1, frame)[active] ** 2))
    x = x * (10 ** (TARGET_DBFS / 20) / rms)
    peak = np.max(np.abs(x))
    if peak > 0.98:
        x = x * (0.98 / peak)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
