"""Where the compute segments of an input lie (SPEC §4).

A segment is a whole number of likelihood blocks that leaves the network together; it is read
with `context` samples (also whole blocks) on each side, so the window the network sees is
segment + 2 × context.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SegmentPlan:
    """Where the segments are. All lengths are in samples and whole likelihood blocks."""

    n_samples: int
    segment: int
    context: int

    @property
    def window(self) -> int:
        return self.segment + 2 * self.context

    def __len__(self) -> int:
        return max(1, -(-self.n_samples // self.segment))

    def core(self, i: int) -> tuple[int, int]:
        return i * self.segment, min((i + 1) * self.segment, self.n_samples)
