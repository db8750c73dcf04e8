"""Where the compute segments of an input lie (docs/exits.md, "Segments").

A segment is a whole number of likelihood blocks that leaves the network together; it is read
with `context` samples (also whole blocks) on each side, so the window the network sees is
segment + 2 × context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from press.errors import PressError
from press.io.streaming import Reader


@dataclass(frozen=True)
class Cut:
    """How inputs are cut: segment and context in samples, whole likelihood blocks of `block`; an
    input of at most `whole` samples (or that fits one window) runs whole, in one segment."""

    segment: int
    context: int
    block: int
    whole: int = 0

    @classmethod
    def from_seconds(cls, segment: float, context: float, sample_rate: int, block: int, whole: float = 0.0) -> Cut:
        """Seconds rounded to whole blocks; a context of none, or of more than half a segment, is refused."""
        if not whole >= 0:
            raise PressError(f"whole must be a number of seconds >= 0, got {whole}")
        seg = max(1, round(segment * sample_rate / block)) * block
        ctx = max(0, round(context * sample_rate / block)) * block
        if 2 * ctx > seg:
            raise PressError("context must be at most half the segment length")
        if ctx == 0:
            # the stitcher matches each segment's speakers to the previous one's on the samples
            # both windows saw: without that overlap, speakers could swap at every segment
            raise PressError(f"context must be at least one likelihood block ({block / sample_rate:g} s): "
                             "segments' speakers are aligned on the overlap of their windows; a longer "
                             "segment runs more of the input whole")
        return cls(seg, ctx, block, int(whole * sample_rate))

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        """Segments for an input of n_samples. The whole input is one segment without context in
        utterance mode, when it fits in one window (segment + context on both sides) and when it is
        at most `whole` samples long: the network then sees all of it at once, and no compute goes on
        padding. An empty input is refused."""
        if n_samples == 0:
            raise PressError("the input holds no samples")
        if utterance or n_samples <= max(self.segment + 2 * self.context, self.whole):
            return SegmentPlan(n_samples, max(1, -(-n_samples // self.block)) * self.block, 0)
        return SegmentPlan(n_samples, self.segment, self.context)


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

    def core_blocks(self, block: int) -> slice:
        """The blocks of a window that belong to its segment."""
        return slice(self.context // block, (self.context + self.segment) // block)

    def valid_blocks(self, indices: list[int] | range, block: int) -> np.ndarray:
        """(N, segment / block) bool: which core blocks of segments `indices` hold input."""
        starts = np.array([self.core(i)[0] for i in indices])[:, None] + np.arange(self.segment // block) * block
        return starts < np.array([self.core(i)[1] for i in indices])[:, None]

    def read(self, reader: Reader, indices: list[int] | range) -> Windows:
        """The windows of segments `indices`, each with its valid length and its own level."""
        starts = [self.core(i)[0] - self.context for i in indices]
        audio = np.stack([reader.read(s, s + self.window) for s in starts])             # (N, W)
        lengths = np.array([min(self.window, self.n_samples - s) for s in starts])
        inside = np.array([min(s + self.window, self.n_samples) - max(s, 0) for s in starts])
        power = (audio.astype(np.float64) ** 2).sum(1) / np.maximum(inside, 1)
        return Windows(audio, lengths, np.sqrt(power).astype(np.float32))


@dataclass
class Windows:
    """A batch of windows as the network receives them.

    `levels` is each window's RMS over the samples that lie inside the input (zeros read before
    the start or past the end do not count): the level the network normalises the window by.
    Training normalises each crop by its own RMS, so each window is normalised by its own level
    too, whatever the rest of the file does; a whole-file level would show the network windows at
    levels training never produced (docs/exits.md has the measurement).
    """

    audio: np.ndarray      # (N, W) float32, zeros outside the input
    lengths: np.ndarray    # (N,) samples from the window's start to the input's end (at most W)
    levels: np.ndarray     # (N,) float32 RMS of the in-input samples


def padding_note(padding_share: float, seconds: float) -> str | None:
    """A warning for reports when padding, not the input, dominates the compute (over half of the
    samples the network ran), None otherwise."""
    if padding_share <= 0.5:
        return None
    return (f"{padding_share:.0%} of the samples the network ran were padding or context, not "
            f"input ({seconds:.3f} s of audio): GMAC/s is the rate over the input rounded up to "
            "whole likelihood blocks")
