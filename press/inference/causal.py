"""A causal PRESS-Net over a whole file as one stream: its state runs on from block to block.

The segment runner (press.engine.loop) cuts an input into segments and starts every one afresh
from its left context. A causal network's running level, RNN states and convolution contexts then
restart at every segment, where the network was trained on, and streams, one unbroken input: the
shipped `enhance-rt` loses 0.8 dB SI-SNRi that way on the real-noise test at 2 s segments. Run as
one stream (press.model.stream_exits.BlockStream), every block sees all the input before it,
memory stays one block's, and the exit is chosen per likelihood block, the unit the rule decides.

The exit policies are the segment runner's: each block is handed to the policy as a segment of
one block, with its estimate and (alpha, beta) at the exit it has reached, so that `Dynamic`,
`Static` and `OutputChange` decide a stream's block as they decide a segment. The rule's P_ref is
the whole input's mean power, as for a file (a live stream, which cannot know it, uses the mean
power so far: press.engine.stream_rule). Compute is counted by the stream (catch-up included)
against what it spends with every block at the last exit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from press.engine.backend import Exit, exit_scales
from press.engine.loop import check_confidence
from press.engine.plan import SegmentPlan
from press.engine.policies import Budget, ExitContext, ExitPolicy
from press.engine.results import BlockReport, SegmentReport, SeparationResult
from press.engine.rule import ExitProbabilities, exit_probabilities
from press.errors import PressError
from press.io.streaming import Reader
from press.model import PressNet
from press.model.stream import StreamOutput
from press.model.stream_exits import CATCH_UP, BlockStream, frame_costs
from press.prob.calibration import Recalibration

BUDGET_NEEDS_SEGMENTS = ("a compute budget is fitted on segments: run a causal model with a budget in segments "
                         "(segment=..., press enhance --segment S)")


@dataclass
class CausalRunner:
    """A causal PressNet run over a whole input as one stream, the exit chosen per likelihood block
    by an exit policy; the `Separating` of press.engine.model, as press.inference.Separator is."""

    model: PressNet
    target_db: float = 20.0
    confidence: float = 0.9
    recalibration: Recalibration = field(default_factory=Recalibration)
    catch_up: str = "lazy"

    def __post_init__(self) -> None:
        if not self.model.cfg.causal:
            raise PressError(f"{self.model.cfg.name} is not a causal model: run it in segments (Separator)")
        if self.catch_up not in CATCH_UP:
            raise PressError(f"catch_up must be one of {', '.join(CATCH_UP)}, got {self.catch_up!r}")
        check_confidence(self.confidence)
        self.recalibration.check_exits(self.model.n_exits)
        self.scales = exit_scales(self.recalibration.to_dict(), self.model.n_exits)
        self.costs = frame_costs(self.model)   # MACs per frame of every part, counted once

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        """One segment per likelihood block, none read twice (`utterance` changes nothing: a stream
        always runs the whole input)."""
        return SegmentPlan(n_samples, self.model.cfg.block, 0)

    @torch.inference_mode()
    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult:
        """Separate everything `reader` holds, block by block. With no `sink`, sources are returned
        in memory."""
        if isinstance(policy, Budget):
            raise PressError(BUDGET_NEEDS_SEGMENTS)
        net, block, sr = self.model, self.model.cfg.block, self.model.cfg.sample_rate
        n = reader.n_samples
        p_ref = reader.mean_power() if p_ref is None else p_ref
        out = None
        if sink is None:
            out = np.zeros((net.cfg.n_src, n), dtype=np.float32)

            def sink(start: int, x: np.ndarray) -> None:
                out[:, start:start + x.shape[1]] = x

        decide = _PolicyDecide(policy, net.n_exits, p_ref, self.scales, self.target_db, self.confidence)
        stream = BlockStream(net, decide, self.catch_up, costs=self.costs)
        device = next(net.parameters()).device
        segments: list[SegmentReport] = []
        blocks: list[BlockReport] = []
        spent = 0
        for start in range(0, max(n, 1), block):
            x = torch.from_numpy(reader.read(start, min(start + block, n))).to(device)[None]   # (1, n_b)
            outputs = stream.push(x) if x.shape[1] == block else [*stream.push(x), *stream.end()]
            for o in outputs:
                total = stream.macs()[0]
                self._report(o, decide, reader, p_ref, total - spent, segments, blocks)
                spent = total
                sink(o.start, o.estimate[0].float().cpu().numpy())
            if on_batch is not None:
                on_batch(len(outputs))
        costs = self.costs
        frames, n_blocks = -(-n // net.cfg.patch), len(segments)
        last = frames * (costs.front + sum(costs.group) + sum(costs.decoder) + sum(costs.features)) \
            + n_blocks * sum(costs.pool)
        seconds = max(-(-n // block), 1) * block / sr   # whole likelihood blocks, as the segment runner counts
        return SeparationResult(out, sr, segments, blocks, spent / seconds / 1e9, last / seconds / 1e9, n / sr,
                                1.0 - n / max(n_blocks * block, 1))

    def _report(self, o: StreamOutput, decide: _PolicyDecide, reader: Reader, p_ref: float, macs: int,
                segments: list[SegmentReport], blocks: list[BlockReport]) -> None:
        """The block's segment and block reports: its exit, the MACs it took, and the probabilities
        at the exit it left at (at the report target)."""
        sr, i = self.model.cfg.sample_rate, len(segments)
        keep = o.estimate.shape[-1]
        probs = decide.last.get((i, o.exit))   # the policy saw them, unless the block reached the last exit
        if probs is None:
            a_scale, b_scale = self.scales[o.exit - 1]
            probs = exit_probabilities(o.estimate.float().cpu().numpy(), reader.read(o.start, o.start + keep)[None],
                                       o.alpha.float().cpu().numpy() * a_scale, o.beta.float().cpu().numpy() * b_scale,
                                       self.target_db, self.confidence, max(keep, 1), p_ref, np.asarray([keep]))
        probs = ExitProbabilities(*(p[0] for p in probs))   # the one stream's
        segments.append(SegmentReport(i, o.start, o.start + keep, o.exit, float(macs)))
        blocks.append(BlockReport(index=i, start=o.start / sr, end=(o.start + keep) / sr, segment=i, exit=o.exit,
                                  p_snr=probs.snr[:, 0].tolist(), p_snri=probs.snri[:, 0].tolist(),
                                  p_snr_ref=probs.snr_ref[:, 0].tolist(), p_exit=float(probs.block[0])))


class _PolicyDecide:
    """A segment policy as a BlockStream's `Decide`: each block a segment of one block, recalibrated
    as the segment runner recalibrates, with its probabilities at the report target."""

    def __init__(self, policy: ExitPolicy, n_exits: int, p_ref: float, scales: list[tuple[float, float]],
                 target_db: float, confidence: float) -> None:
        self.policy, self.n_exits, self.p_ref, self.scales = policy, n_exits, p_ref, scales
        self.target_db, self.confidence = target_db, confidence
        self._block, self._previous = -1, None
        self.last: dict[tuple[int, int], ExitProbabilities] = {}   # (block, exit) -> at the last exit tried

    def __call__(self, block: int, exit: int, estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray,
                 beta: np.ndarray) -> np.ndarray:
        if block != self._block:
            self._block, self._previous, self.last = block, None, {}
        a_scale, b_scale = self.scales[exit - 1]
        out = Exit(estimate, alpha * np.float32(a_scale), beta * np.float32(b_scale))
        lengths = np.full(estimate.shape[0], estimate.shape[-1])
        probs = exit_probabilities(out.estimate, mixture, out.alpha, out.beta, self.target_db, self.confidence,
                                   max(estimate.shape[-1], 1), self.p_ref, lengths)
        ctx = ExitContext(exit, self.n_exits, out, probs, slice(0, 1), np.ones((estimate.shape[0], 1), bool),
                          self._previous, mixture, lengths, self.p_ref, max(estimate.shape[-1], 1))
        self._previous, self.last = estimate, {(block, exit): probs}
        return np.asarray(self.policy(ctx), dtype=bool)
