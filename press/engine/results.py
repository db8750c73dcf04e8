"""What a separation returns besides the sources: per-segment and per-block reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from press.engine.plan import padding_note


@dataclass
class BlockReport:
    """One likelihood block of the output, as decided."""

    index: int
    start: float                   # seconds
    end: float
    segment: int
    exit: int                      # 1-based exit its segment left at
    p_snr: list[float]             # per speaker, at the exit taken
    p_snri: list[float]
    p_snr_ref: list[float]
    p_exit: float                  # min over speakers of max of the three

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SegmentReport:
    index: int
    start: int                     # samples of the core, at the model's rate
    end: int
    exit: int
    macs: float                    # spent on this segment, context included


@dataclass
class SeparationResult:
    """Separated sources and what it took."""

    sources: np.ndarray | None     # (S, N) at the model's rate; None when written to a sink
    sample_rate: int
    segments: list[SegmentReport]
    blocks: list[BlockReport]
    gmacs_per_second: float        # total MACs / input duration (in whole likelihood blocks)
    last_exit_gmacs_per_second: float
    seconds: float                 # input duration
    padding_share: float           # share of the samples the network ran that were not input:
                                   # context read twice, and padding to whole blocks
    threshold_db: float | None = None   # budget mode: the threshold on expected exit-SNR it ran at
    run: str = "segments"          # "stream": a causal model's file as one stream, one segment per block

    @property
    def exits(self) -> list[int]:
        """The exit each segment took, in order."""
        return [s.exit for s in self.segments]

    @property
    def note(self) -> str | None:
        """A warning for the report when padding, not the input, dominates the compute."""
        return padding_note(self.padding_share, self.seconds)

    @property
    def saving(self) -> float:
        """Share of compute saved against running every segment to the last exit."""
        return 1.0 - self.gmacs_per_second / self.last_exit_gmacs_per_second

    def exit_histogram(self, n_exits: int) -> list[int]:
        counts = [0] * n_exits
        for s in self.segments:
            counts[s.exit - 1] += 1
        return counts
