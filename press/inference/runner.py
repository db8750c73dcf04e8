"""Block-wise dynamic inference: cut, run exit by exit, stop early, stitch.

Two units are kept apart (docs/exits.md):
  * the likelihood block (B samples, 250 ms at 8 kHz): the unit of alpha, beta and of the exit
    probabilities, reported per block;
  * the compute segment: a whole number of blocks that leaves the network together, read with
    `context` samples (also whole blocks) on each side so that the network sees enough of the
    speakers to tell them apart.

A long input is cut into segments; batches of segments run through the incremental network one
exit at a time; after every exit a policy decides, per segment, whether it leaves (the last exit
always leaves) and segments that left drop out of the batch. Outputs are stitched in order: each
segment's speaker order is aligned with the previous segment on the samples both windows saw
(the permutation with the least squared difference), and the two are cross-faded with a
raised-cosine over that overlap, so there is no seam. Only one batch of windows and one overlap
are held at a time: memory is bounded however long the input, which is read through a `Reader`
(in memory or streamed from disk).

Compute is counted per segment: the model's MACs per second at the exit taken (every earlier
exit's heads included) times the window's duration, context included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from press.errors import PressError
from press.inference.plan import SegmentPlan
from press.inference.policies import Dynamic, ExitContext, ExitPolicy
from press.inference.results import BlockReport, SegmentReport, SeparationResult
from press.inference.stitch import Stitcher
from press.io.streaming import ArrayReader, Reader
from press.model import ExitOutput, PressNet
from press.model.compute import exit_costs
from press.prob.calibration import Recalibration
from press.prob.exits import ExitProbabilities, exit_probabilities

DEFAULT_SEGMENT = 2.0   # seconds of audio that leave the network together (measured)
DEFAULT_CONTEXT = 0.25  # seconds read on each side of a segment (measured: docs/results.md)


@dataclass
class Separator:
    """Runs a PRESS model segment by segment with early exits. See the module docstring.

    segment / context in seconds (rounded to whole likelihood blocks); target_db / confidence:
    the report target at which per-block probabilities are computed (and the rule of `Dynamic`).
    """

    model: PressNet
    segment: float = DEFAULT_SEGMENT
    context: float = DEFAULT_CONTEXT
    target_db: float = 20.0
    confidence: float = 0.9
    batch_size: int = 8
    recalibration: Recalibration = field(default_factory=Recalibration)

    def __post_init__(self) -> None:
        cfg = self.model.cfg
        self.block = cfg.block
        self.segment_samples = max(1, round(self.segment * cfg.sample_rate / cfg.block)) * cfg.block
        self.context_samples = max(0, round(self.context * cfg.sample_rate / cfg.block)) * cfg.block
        if 2 * self.context_samples > self.segment_samples:
            raise PressError("context must be at most half the segment length")
        if self.context_samples == 0:
            # the stitcher matches each segment's speakers to the previous one's on the samples
            # both windows saw: without that overlap, speakers could swap at every segment
            raise PressError(f"context must be at least one likelihood block ({cfg.block / cfg.sample_rate:g} s): "
                             "segments' speakers are aligned on the overlap of their windows; a longer "
                             "segment runs more of the input whole")
        self.recalibration.check_exits(self.model.n_exits)
        self.gmacs = [c.gmacs_per_second for c in exit_costs(self.model)]
        self.device = next(self.model.parameters()).device

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        """Segments for an input of n_samples. The whole input is one segment without context in
        utterance mode, and also when it fits in one window (segment + context on both sides):
        the network then sees all of it at once, and no compute goes on padding."""
        if utterance or n_samples <= self.segment_samples + 2 * self.context_samples:
            whole = max(1, -(-n_samples // self.block)) * self.block
            return SegmentPlan(n_samples, whole, 0)
        return SegmentPlan(n_samples, self.segment_samples, self.context_samples)

    @torch.inference_mode()
    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult:
        """Separate everything `reader` holds. With no `sink`, sources are returned in memory."""
        cfg = self.model.cfg
        n = reader.n_samples
        if n == 0:
            raise PressError("the input holds no samples")
        plan = self.plan(n, utterance)
        p_ref = reader.mean_power() if p_ref is None else p_ref
        out = None
        if sink is None:
            out = np.zeros((cfg.n_src, n), dtype=np.float32)

            def sink(start: int, x: np.ndarray) -> None:
                out[:, start:start + x.shape[1]] = x

        stitcher = Stitcher(plan, sink, align=cfg.sources is None)
        c, nb_core = plan.context, plan.segment // self.block
        core = slice(c // self.block, c // self.block + nb_core)
        segments: list[SegmentReport] = []
        blocks: list[BlockReport] = []
        for first in range(0, len(plan), self.batch_size):
            idx = list(range(first, min(first + self.batch_size, len(plan))))
            win = plan.read(reader, idx)
            valid = torch.stack([self._valid_blocks(plan, i) for i in idx]).to(self.device)
            results = self._run_batch(torch.from_numpy(win.audio).to(self.device),
                                      torch.from_numpy(win.lengths).to(self.device), valid, core,
                                      torch.from_numpy(win.levels).to(self.device), p_ref, policy)
            for j, i in enumerate(idx):
                k, est, probs = results[j]
                macs = self.gmacs[k - 1] * 1e9 * plan.window / cfg.sample_rate
                start, end = plan.core(i)
                segments.append(SegmentReport(i, start, end, k, macs))
                blocks.extend(self._block_reports(i, start, end, k, probs, core, len(blocks)))
                stitcher.push(i, est)
            if on_batch is not None:
                on_batch(len(idx))
        total = sum(s.macs for s in segments)
        last = self.gmacs[-1] * 1e9 * plan.window * len(plan) / cfg.sample_rate
        # compute per second of audio: the input rounded up to whole likelihood blocks, so that
        # an input shorter than a block reports the network's rate, not its padding
        seconds = -(-n // self.block) * self.block / cfg.sample_rate
        network_samples = plan.window * len(plan)
        return SeparationResult(out, cfg.sample_rate, segments, blocks, total / seconds / 1e9,
                                last / seconds / 1e9, n / cfg.sample_rate, 1.0 - n / network_samples)

    def _valid_blocks(self, plan: SegmentPlan, i: int) -> torch.Tensor:
        start, end = plan.core(i)
        starts = start + torch.arange(plan.segment // self.block) * self.block
        return starts < end

    def _run_batch(self, windows: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor, core: slice,
                   scale: torch.Tensor, p_ref: float, policy: ExitPolicy
                   ) -> list[tuple[int, np.ndarray, ExitProbabilities]]:
        """Run a batch exit by exit; returns (exit, window estimate (S, W), probabilities) per item."""
        model = self.model
        state = model.begin(windows, lengths=lengths, scale=scale)
        active = torch.arange(len(windows), device=windows.device)
        results: list = [None] * len(windows)
        previous = None
        for k in range(1, model.n_exits + 1):
            out, state = model.advance(state)
            alpha, beta = self.recalibration.apply(out.alpha, out.beta, exit=k)
            out = ExitOutput(out.exit, out.estimate, alpha, beta)
            probs = exit_probabilities(out.estimate, windows[active], alpha, beta, self.target_db,
                                       self.confidence, self.block, p_ref=p_ref, lengths=lengths[active])
            ctx = ExitContext(k, model.n_exits, out, probs, core, valid[active], previous, windows[active],
                              lengths[active], p_ref, self.block)
            leave = policy(ctx) if k < model.n_exits else torch.ones(len(active), dtype=torch.bool)
            leave = leave.to(windows.device)
            gone = torch.nonzero(leave).flatten()
            if len(gone):
                # one device-to-host copy per exit for all the segments that leave at it
                est = out.estimate[gone].float().cpu().numpy()
                host = ExitProbabilities(*(t[gone].cpu() for t in probs))
                for j, item in enumerate(active[gone].tolist()):
                    results[item] = (k, est[j], ExitProbabilities(*(t[j:j + 1] for t in host)))
            stay = torch.nonzero(~leave).flatten()
            if len(stay) == 0:
                break
            active, state, previous = active[stay], state.select(stay), out.estimate[stay]
        return results

    def _block_reports(self, seg: int, start: int, end: int, k: int, probs: ExitProbabilities,
                       core: slice, offset: int) -> list[BlockReport]:
        sr, out = self.model.cfg.sample_rate, []
        for b in range(-(-(end - start) // self.block)):
            col = core.start + b
            lo = start + b * self.block
            out.append(BlockReport(
                index=offset + b, start=lo / sr, end=min(lo + self.block, end) / sr, segment=seg, exit=k,
                p_snr=probs.snr[0, :, col].tolist(), p_snri=probs.snri[0, :, col].tolist(),
                p_snr_ref=probs.snr_ref[0, :, col].tolist(), p_exit=float(probs.block[0, col])))
        return out


def separate(model: PressNet, mixture: np.ndarray | torch.Tensor, policy: ExitPolicy | None = None,
             **options) -> SeparationResult:
    """Separate an in-memory mono mixture at the model's rate (default policy: Dynamic)."""
    utterance = options.pop("utterance", False)
    return Separator(model, **options).run(ArrayReader(mixture), policy or Dynamic(), utterance=utterance)


# ---------------------------------------------------------------------------------------------
# every exit at once, for evaluation


