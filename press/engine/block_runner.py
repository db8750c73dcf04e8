"""A causal model over a whole file as one stream, exits chosen per likelihood block: the file
runner for streams, whichever backend runs them.

The segment runner (press.engine.loop) cuts an input into segments and starts each afresh from its
left context. A causal network's running level, RNN states and convolution contexts then restart
at every segment, where the network was trained on, and streams, one unbroken input. Run as one
stream, every block sees all the input before it and memory stays one block's (with the catch-up
backlog), and the exit is chosen per likelihood block, the unit the rule decides.

The exit policies are the segment runner's: each block is handed to the policy as a segment of one
block, with its estimate and (alpha, beta) at the exit it has reached (recalibrated), so that
`Dynamic`, `Static` and `OutputChange` decide a stream's block as they decide a segment. The rule's
P_ref is the whole input's mean power, as for any file (a live stream, which cannot know it, uses
the mean power so far: press.engine.stream_rule). The MACs are the stream's own count, catch-up
included, against what it spends with every block at the last exit.

A backend opens a stream that decides with a given callable: press.inference.causal (torch,
press.model.stream_exits.BlockStream) and press.runtime.stream (the streaming ONNX graphs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from press.engine.backend import Exit
from press.engine.loop import check_confidence, in_memory
from press.engine.plan import SegmentPlan
from press.engine.policies import Budget, ExitContext, ExitPolicy
from press.engine.results import BlockReport, SegmentReport, SeparationResult
from press.engine.rule import ExitProbabilities, exit_probabilities
from press.errors import PressError
from press.io.streaming import Reader

BUDGET_NEEDS_SEGMENTS = ("a compute budget is fitted on segments: run a causal model with a budget in segments "
                         "(segment=..., press enhance --segment S)")

# block (0-based), exit (1-based), estimate (B, S, n), mixture (B, n), alpha, beta (B, S, 1) -> leave (B,)
Decide = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class LeftBlock(Protocol):
    """One block of a stream at the exit it left by (numpy, input units, recalibration not applied)."""

    exit: int
    start: int                 # the stream's sample index of estimate[..., 0]
    estimate: np.ndarray       # (1, S, n)
    alpha: np.ndarray          # (1, S, 1)
    beta: np.ndarray


class BlockStreaming(Protocol):
    def push(self, chunk: np.ndarray) -> Sequence[LeftBlock]: ...   # chunk (1, n)

    def end(self) -> Sequence[LeftBlock]: ...

    def macs(self) -> tuple[int, int]: ...   # (every MAC so far, the catch-up's part)


class StreamBackend(Protocol):
    sample_rate: int
    block: int
    n_src: int
    n_exits: int

    def open(self, decide: Decide) -> BlockStreaming:
        """One stream whose blocks leave when `decide` says so (always at the last exit)."""

    def last_exit_macs(self, n_samples: int) -> float:
        """What the stream spends on an input of n_samples with every block at the last exit."""


@dataclass
class BlockRunner:
    """A file through a stream backend, block by block: the `Separating` of press.engine.model for
    causal models, as press.engine.loop.Engine is for segments."""

    backend: StreamBackend
    scales: Sequence[tuple[float, float]]     # recalibration per exit (press.engine.backend.exit_scales)
    target_db: float = 20.0
    confidence: float = 0.9

    def __post_init__(self) -> None:
        check_confidence(self.confidence)

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        """One segment per likelihood block, none read twice (`utterance` changes nothing: a stream
        always runs the whole input)."""
        return SegmentPlan(n_samples, self.backend.block, 0)

    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult:
        """Separate everything `reader` holds, block by block. With no `sink`, sources are returned
        in memory."""
        if isinstance(policy, Budget):
            raise PressError(BUDGET_NEEDS_SEGMENTS)
        be = self.backend
        block, sr, n = be.block, be.sample_rate, reader.n_samples
        p_ref = reader.mean_power() if p_ref is None else p_ref
        out = None
        if sink is None:
            out, sink = in_memory(be.n_src, n)
        decide = PolicyDecide(policy, be.n_exits, p_ref, self.scales, self.target_db, self.confidence)
        stream = be.open(decide)
        segments: list[SegmentReport] = []
        blocks: list[BlockReport] = []
        spent = 0
        for start in range(0, max(n, 1), block):
            x = reader.read(start, min(start + block, n))[None]                # (1, n_b)
            left = stream.push(x) if x.shape[1] == block else [*stream.push(x), *stream.end()]
            for b in left:
                total = stream.macs()[0]
                self._report(b, decide, reader, p_ref, total - spent, segments, blocks)
                spent = total
                sink(b.start, b.estimate[0])
            if on_batch is not None:
                on_batch(len(left))
        seconds = max(-(-n // block), 1) * block / sr   # whole likelihood blocks, as the segment runner counts
        return SeparationResult(out, sr, segments, blocks, spent / seconds / 1e9,
                                be.last_exit_macs(n) / seconds / 1e9, n / sr, 1.0 - n / max(len(segments) * block, 1),
                                run="stream")

    def _report(self, b: LeftBlock, decide: PolicyDecide, reader: Reader, p_ref: float, macs: int,
                segments: list[SegmentReport], blocks: list[BlockReport]) -> None:
        """The block's segment and block reports: its exit, the MACs it took, and the probabilities
        at the exit it left at (at the report target)."""
        sr, i, keep = self.backend.sample_rate, len(segments), b.estimate.shape[-1]
        probs = decide.last.get((i, b.exit))   # the policy saw them, unless the block reached the last exit
        if probs is None:
            a_scale, b_scale = self.scales[b.exit - 1]
            probs = exit_probabilities(b.estimate, reader.read(b.start, b.start + keep)[None],
                                       b.alpha * np.float32(a_scale), b.beta * np.float32(b_scale),
                                       self.target_db, self.confidence, max(keep, 1), p_ref, np.asarray([keep]))
        probs = ExitProbabilities(*(p[0] for p in probs))   # the one stream's
        segments.append(SegmentReport(i, b.start, b.start + keep, b.exit, float(macs)))
        blocks.append(BlockReport(index=i, start=b.start / sr, end=(b.start + keep) / sr, segment=i, exit=b.exit,
                                  p_snr=probs.snr[:, 0].tolist(), p_snri=probs.snri[:, 0].tolist(),
                                  p_snr_ref=probs.snr_ref[:, 0].tolist(), p_exit=float(probs.block[0])))


class PolicyDecide:
    """A segment policy as a stream's `Decide`: each block a segment of one block, recalibrated as
    the segment runner recalibrates, with its probabilities at the report target."""

    def __init__(self, policy: ExitPolicy, n_exits: int, p_ref: float, scales: Sequence[tuple[float, float]],
                 target_db: float, confidence: float) -> None:
        self.policy, self.n_exits, self.p_ref, self.scales = policy, n_exits, p_ref, scales
        self.target_db, self.confidence = target_db, confidence
        self._block, self._previous = -1, None
        self.last: dict[tuple[int, int], ExitProbabilities] = {}   # (block, exit) -> at the last exit tried

    def __call__(self, block: int, exit: int, estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray,
                 beta: np.ndarray) -> np.ndarray:
        if block != self._block:
            self._block, self._previous = block, None
        a_scale, b_scale = self.scales[exit - 1]
        out = Exit(estimate, alpha * np.float32(a_scale), beta * np.float32(b_scale))
        n = max(estimate.shape[-1], 1)
        lengths = np.full(estimate.shape[0], estimate.shape[-1])
        probs = exit_probabilities(out.estimate, mixture, out.alpha, out.beta, self.target_db, self.confidence,
                                   n, self.p_ref, lengths)
        ctx = ExitContext(exit, self.n_exits, out, probs, slice(0, 1), np.ones((estimate.shape[0], 1), bool),
                          self._previous, mixture, lengths, self.p_ref, n)
        self._previous, self.last = estimate, {(block, exit): probs}
        return np.asarray(self.policy(ctx), dtype=bool)
