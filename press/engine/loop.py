"""The loop: cut, run exit by exit, stop early, stitch; the same for every backend.

Two units are kept apart (docs/exits.md):
  * the likelihood block (B samples, 250 ms at 8 kHz): the unit of alpha, beta and of the exit
    probabilities, reported per block;
  * the compute segment: a whole number of blocks that leaves the network together, read with
    `context` samples (also whole blocks) on each side so that the network sees enough of the
    speakers to tell them apart.

A long input is cut into segments; batches of segments run through the backend one exit at a
time; after every exit a policy decides, per segment, whether it leaves (the last exit always
leaves) and segments that left drop out of the batch. Outputs are stitched in order: each
segment's speaker order is aligned with the previous segment on the samples both windows saw
(the permutation with the least squared difference), and the two are cross-faded with a
raised-cosine over that overlap, so there is no seam. Only one batch of windows and one overlap
are held at a time: memory is bounded however long the input, which is read through a `Reader`
(in memory or streamed from disk).

Compute is counted per segment: the model's MACs per second at the exit taken (every earlier
exit's heads included) times the window's duration, context included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np

from press.engine.backend import Backend, Exit
from press.engine.plan import Cut, SegmentPlan, Windows
from press.engine.policies import Budget, ExitContext, ExitPolicy
from press.engine.results import BlockReport, SegmentReport, SeparationResult
from press.engine.rule import ExitProbabilities, exit_probabilities
from press.engine.stitch import Stitcher
from press.errors import PressError
from press.io.streaming import Reader

Leaving = tuple[int, np.ndarray, ExitProbabilities]   # exit taken, window estimate (S, W), its probabilities


def check_confidence(confidence: float) -> None:
    """Refuse a confidence outside [0, 1] where a run is set up, before anything is computed."""
    if not 0.0 <= confidence <= 1.0:
        raise PressError(f"confidence must be a probability in [0, 1], got {confidence}")


def in_memory(n_src: int, n: int) -> tuple[np.ndarray, Callable[[int, np.ndarray], None]]:
    """Sources (n_src, n) to fill, and the sink that writes a run's outputs into them."""
    out = np.zeros((n_src, n), dtype=np.float32)

    def sink(start: int, x: np.ndarray) -> None:
        out[:, start:start + x.shape[1]] = x

    return out, sink


@dataclass
class Engine:
    """Runs a backend segment by segment with early exits. See the module docstring.

    target_db / confidence: the report target at which per-block probabilities are computed (and
    the rule of `Dynamic`); scales: the (alpha, beta) recalibration of each exit
    (`backend.exit_scales`).
    """

    backend: Backend
    cut: Cut
    scales: Sequence[tuple[float, float]]
    target_db: float = 20.0
    confidence: float = 0.9
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_confidence(self.confidence)

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        return self.cut.plan(n_samples, utterance)

    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult:
        """Separate everything `reader` holds. With no `sink`, sources are returned in memory."""
        backend, block = self.backend, self.cut.block
        sr, n = backend.sample_rate, reader.n_samples
        plan = self.plan(n, utterance)
        p_ref = reader.mean_power() if p_ref is None else p_ref
        out = None
        if sink is None:
            out, sink = in_memory(backend.n_src, n)
        stitcher = Stitcher(plan, sink, align=backend.sources is None)
        core = plan.core_blocks(block)
        segments: list[SegmentReport] = []
        blocks: list[BlockReport] = []
        for first in range(0, len(plan), self.batch_size):
            idx = list(range(first, min(first + self.batch_size, len(plan))))
            leaving = self._run_batch(plan.read(reader, idx), plan.valid_blocks(idx, block), core, p_ref, policy)
            for i, (k, estimate, probs) in zip(idx, leaving):
                start, end = plan.core(i)
                segments.append(SegmentReport(i, start, end, k, backend.gmacs[k - 1] * 1e9 * plan.window / sr))
                blocks.extend(self._block_reports(i, start, end, k, probs, core, len(blocks)))
                stitcher.push(i, estimate)
            if on_batch is not None:
                on_batch(len(idx))
        total = sum(s.macs for s in segments)
        last = backend.gmacs[-1] * 1e9 * plan.window * len(plan) / sr
        # compute per second of audio: the input rounded up to whole likelihood blocks, so that
        # an input shorter than a block reports the network's rate, not its padding
        seconds = -(-n // block) * block / sr
        return SeparationResult(out, sr, segments, blocks, total / seconds / 1e9, last / seconds / 1e9, n / sr,
                                1.0 - n / (plan.window * len(plan)),
                                policy.threshold_db if isinstance(policy, Budget) else None)

    def _run_batch(self, win: Windows, valid: np.ndarray, core: slice, p_ref: float,
                   policy: ExitPolicy) -> list[Leaving]:
        """Run a batch exit by exit; per window, the exit it left at, its estimate and probabilities."""
        backend, block, K = self.backend, self.cut.block, self.backend.n_exits
        windows, lengths = win.audio, win.lengths.astype(np.int64)
        results: list = [None] * len(windows)
        active = np.arange(len(windows))
        previous = None
        out, state = backend.first(windows, lengths, win.levels)
        for k in range(1, K + 1):
            if k > 1:
                out, state = backend.advance(state)
            a_scale, b_scale = self.scales[k - 1]
            out = Exit(out.estimate, out.alpha * np.float32(a_scale), out.beta * np.float32(b_scale))
            probs = exit_probabilities(out.estimate, windows[active], out.alpha, out.beta, self.target_db,
                                       self.confidence, block, p_ref, lengths[active])
            ctx = ExitContext(k, K, out, probs, core, valid[active], previous, windows[active], lengths[active],
                              p_ref, block)
            leave = np.asarray(policy(ctx), dtype=bool) if k < K else np.ones(len(active), dtype=bool)
            for j in np.flatnonzero(leave):
                results[active[j]] = (k, out.estimate[j], ExitProbabilities(*(p[j] for p in probs)))
            stay = np.flatnonzero(~leave)
            if len(stay) == 0:
                break
            active, state, previous = active[stay], backend.select(state, stay), out.estimate[stay]
        return results

    def _block_reports(self, seg: int, start: int, end: int, k: int, probs: ExitProbabilities, core: slice,
                       offset: int) -> list[BlockReport]:
        """One report per likelihood block of a segment's core: its exit and probabilities there."""
        block, sr, out = self.cut.block, self.backend.sample_rate, []
        for b in range(-(-(end - start) // block)):
            col, lo = core.start + b, start + b * block
            out.append(BlockReport(
                index=offset + b, start=lo / sr, end=min(lo + block, end) / sr, segment=seg, exit=k,
                p_snr=probs.snr[:, col].tolist(), p_snri=probs.snri[:, col].tolist(),
                p_snr_ref=probs.snr_ref[:, col].tolist(), p_exit=float(probs.block[col])))
        return out
