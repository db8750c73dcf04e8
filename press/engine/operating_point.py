"""The quality target and the cut a model runs at when the caller names none.

A dynamic exit needs a target t (dB of exit-SNR) and a confidence p. Which pair is worth it depends
on the model: a target above what its outputs reach sends every block to the last exit and saves
nothing. The segments a file is cut into matter as much: a network that was fine-tuned on whole
utterances loses quality on short segments and spends compute on their context, while a segment is
also the unit an exit is chosen for, and long inputs whose conditions change favour short segments.
Each shipped model therefore carries the target, confidence, segment, context and the longest input
it runs whole that its card recommends, measured on held-out recorded audio, in its checkpoint's
extras and in its ONNX manifest; `press.load(...).separate(x)`, `press separate`, `press enhance`
and `press evaluate` use them unless told otherwise, and report what they ran at.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from press.errors import PressError

DEFAULT_SEGMENT = 2.0   # seconds of audio that leave the network together, where a model names none
DEFAULT_CONTEXT = 0.25  # seconds read on each side of a segment (measured: docs/results.md)


@dataclass(frozen=True)
class OperatingPoint:
    target_db: float = 20.0     # the dynamic rule's target t, dB of exit-SNR
    confidence: float = 0.9     # the probability p with which t must hold to leave early
    segment: float = DEFAULT_SEGMENT   # seconds per compute segment (the unit an exit is chosen for)
    context: float = DEFAULT_CONTEXT   # seconds read on each side of a segment
    whole: float = 0.0                 # seconds: an input up to this long runs whole, in one segment

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_db) and -100 <= self.target_db <= 100):
            raise PressError(f"operating point: target_db must be a number in [-100, 100], got {self.target_db}")
        if not 0 < self.confidence < 1:
            raise PressError(f"operating point: confidence must be in (0, 1), got {self.confidence}")
        if not (math.isfinite(self.segment) and self.segment > 0 and math.isfinite(self.context)
                and 0 < 2 * self.context <= self.segment):
            raise PressError(f"operating point: segment must be positive and context in (0, segment / 2], got "
                             f"segment {self.segment}, context {self.context}")
        if not (math.isfinite(self.whole) and self.whole >= 0):
            raise PressError(f"operating point: whole must be a number of seconds >= 0, got {self.whole}")

    @classmethod
    def from_dict(cls, stored: dict[str, Any] | None) -> OperatingPoint:
        """The point a checkpoint or manifest stores; the generic (20 dB, 0.9, 2 s, 0.25 s, nothing
        run whole beyond one window) where it stores none, and the generic cut where it stores only a
        target and confidence."""
        if stored is None:
            return cls()
        try:
            return cls(float(stored["target_db"]), float(stored["confidence"]),
                       float(stored.get("segment", DEFAULT_SEGMENT)), float(stored.get("context", DEFAULT_CONTEXT)),
                       float(stored.get("whole", 0.0)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PressError(f"malformed operating point {stored!r} ({err})") from None

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def resolve(self, target_db: float | None, confidence: float | None) -> tuple[float, float]:
        """The caller's target and confidence, each falling back to this point's."""
        return (self.target_db if target_db is None else float(target_db),
                self.confidence if confidence is None else float(confidence))

    def cut(self, segment: float | None, context: float | None) -> tuple[float, float, float]:
        """(segment, context, whole) in seconds: the caller's segment and context, each falling back to
        this point's, and this point's `whole` only where the caller names neither (a cut asked for is
        the cut run)."""
        whole = self.whole if segment is None and context is None else 0.0
        return (self.segment if segment is None else float(segment),
                self.context if context is None else float(context), whole)
