"""The options of a separation, checked before any work, whichever backend runs it."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from press.errors import PressError

# The command line's --target-db range: far beyond any exit-SNR a model reaches, and well inside
# where 10 ** (t / 10) overflows a float (about 3080 dB).
TARGET_DB_LIMIT = 100.0
SEPARATOR_OPTIONS = ("segment", "context", "batch_size")


def check_options(target_db: Any, confidence: Any, exit: Any, budget: Any, quantile: Any,
                  separator_options: dict[str, Any]) -> None:
    """Refuse option values of the wrong type or out of range before any work, as PressErrors that
    name the option (the engine would otherwise fail deep inside with a TypeError or OverflowError,
    or run with a NaN). Ranges the engine already states (confidence, exit, quantile, budget > 0,
    segment against context) are left to it."""
    def real(name: str, value: Any, finite: bool = True) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or (finite and not np.isfinite(value)):
            raise PressError(f"{name} must be a {'finite ' if finite else ''}number, got {value!r}")

    unknown = sorted(set(separator_options) - set(SEPARATOR_OPTIONS))
    if unknown:
        raise PressError(f"unknown option(s) {', '.join(unknown)}; separate also takes {', '.join(SEPARATOR_OPTIONS)}")
    if target_db is not None:
        real("target_db", target_db)
        if abs(target_db) > TARGET_DB_LIMIT:
            raise PressError(f"target_db must be within ±{TARGET_DB_LIMIT:g} dB, got {target_db!r}")
    for name, value in (("confidence", confidence), ("budget", budget)):
        if value is not None:
            real(name, value)
    real("quantile", quantile, finite=False)   # NaN and out-of-range values: the engine's message
    for name in ("segment", "context"):
        if separator_options.get(name) is not None:   # None: the model's default
            real(name, separator_options[name])
    if exit is not None and (isinstance(exit, bool) or not isinstance(exit, numbers.Integral)):
        raise PressError(f"exit must be a whole exit number, got {exit!r}")
    batch = separator_options.get("batch_size", 1)
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
        raise PressError(f"batch_size must be a positive whole number, got {batch!r}")
