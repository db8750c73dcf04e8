"""The quality target a model runs at when the caller names none.

A dynamic exit needs a target t (dB of exit-SNR) and a confidence p. Which pair is worth it depends
on the model: a target above what its outputs reach sends every block to the last exit and saves
nothing. Each shipped model therefore carries the pair its card recommends, measured on held-out
recorded audio (what it saves, for how little quality), in its checkpoint's extras and in its ONNX
manifest; `press.load(...).separate(x)`, `press separate` and `press enhance` use it unless told
otherwise, and report the pair they ran at.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from press.errors import PressError


@dataclass(frozen=True)
class OperatingPoint:
    target_db: float = 20.0     # the dynamic rule's target t, dB of exit-SNR
    confidence: float = 0.9     # the probability p with which t must hold to leave early

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_db) and -100 <= self.target_db <= 100):
            raise PressError(f"operating point: target_db must be a number in [-100, 100], got {self.target_db}")
        if not 0 < self.confidence < 1:
            raise PressError(f"operating point: confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def from_dict(cls, stored: dict[str, Any] | None) -> OperatingPoint:
        """The pair a checkpoint or manifest stores; the generic (20 dB, 0.9) where it stores none."""
        if stored is None:
            return cls()
        try:
            return cls(float(stored["target_db"]), float(stored["confidence"]))
        except (KeyError, TypeError, ValueError) as err:
            raise PressError(f"malformed operating point {stored!r} ({err})") from None

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def resolve(self, target_db: float | None, confidence: float | None) -> tuple[float, float]:
        """The caller's target and confidence, each falling back to this point's."""
        return (self.target_db if target_db is None else float(target_db),
                self.confidence if confidence is None else float(confidence))
