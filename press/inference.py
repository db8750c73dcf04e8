"""Block-wise dynamic inference: cut, run exit by exit, stop early, stitch.

Two units are kept apart (SPEC §4):
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

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from press.calibration import Recalibration
from press.compute import exit_costs
from press.errors import PressError
from press.exits import ExitProbabilities, exit_probabilities, segment_decision
from press.likelihood import best_permutation
from press.model import ExitOutput, PressNet


class Reader(Protocol):
    """Random access to a mono signal at the model's rate; zeros outside [0, n_samples)."""

    n_samples: int

    def read(self, start: int, stop: int) -> np.ndarray: ...

    def mean_power(self) -> float: ...


class ArrayReader:
    """A `Reader` over a signal in memory."""

    def __init__(self, signal: np.ndarray | torch.Tensor) -> None:
        self.signal = np.asarray(signal, dtype=np.float32)
        if self.signal.ndim != 1:
            raise PressError(f"expected a mono signal (samples,), got shape {self.signal.shape}")
        self.n_samples = len(self.signal)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.n_samples)
        if hi > lo:
            out[lo - start:hi - start] = self.signal[lo:hi]
        return out

    def mean_power(self) -> float:
        return float(np.mean(self.signal.astype(np.float64) ** 2)) if self.n_samples else 0.0


# ---------------------------------------------------------------------------------------------
# exit policies: after exit k, which of the active segments leave?


@dataclass
class ExitContext:
    """What a policy sees after exit `k` (1-based) for the active segments of a batch."""

    k: int
    n_exits: int
    output: ExitOutput                  # estimate (N, S, W), alpha/beta (N, S, nbw)
    probabilities: ExitProbabilities    # per block of the window, at the report target
    core: slice                         # the blocks of the window that belong to the segment
    valid: torch.Tensor                 # (N, n_core) bool: core blocks holding input samples
    previous: torch.Tensor | None       # (N, S, W) estimate of exit k-1, None at exit 1


class ExitPolicy(Protocol):
    def __call__(self, ctx: ExitContext) -> torch.Tensor: ...   # (N,) bool: leave now


@dataclass
class Dynamic:
    """PRESS's rule: leave at the first exit where P(exit-SNR >= t) >= p holds for the segment's
    blocks (all of them, or a `quantile` of them)."""

    quantile: float = 1.0

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        return segment_decision(ctx.probabilities.decision[:, ctx.core], ctx.valid, self.quantile)


@dataclass
class Static:
    """Every segment leaves at one fixed exit."""

    exit: int

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        if not 1 <= self.exit <= ctx.n_exits:
            raise PressError(f"exit must be between 1 and {ctx.n_exits}, got {self.exit}")
        return torch.full((ctx.output.estimate.shape[0],), ctx.k >= self.exit)


@dataclass
class OutputChange:
    """The heuristic before PRESS: leave when consecutive exits' outputs stop changing, i.e.
    ||x̂_k - x̂_{k-1}|| / ||x̂_k|| < threshold over the segment's core."""

    threshold: float = 0.05
    block: int = 2000

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        n = ctx.output.estimate.shape[0]
        if ctx.previous is None:
            return torch.zeros(n, dtype=torch.bool)
        lo, hi = ctx.core.start * self.block, ctx.core.stop * self.block
        cur, prev = ctx.output.estimate[..., lo:hi], ctx.previous[..., lo:hi]
        change = (cur - prev).pow(2).sum((1, 2)).sqrt() / cur.pow(2).sum((1, 2)).sqrt().clamp_min(1e-12)
        return change < self.threshold


@dataclass
class Budget:
    """Meet a mean compute budget (GMAC/s) with the most expected quality (beyond the paper).

    A segment goes one exit deeper while its predicted quality — the worst block's and speaker's
    probability of meeting the report target — is below a threshold tau. tau is steered online
    like a rate controller: after every batch it moves by `gain` per unit of relative overspend
    (down when the running mean cost is above budget, so that segments leave earlier; up when
    under). Segments that are predicted hardest are the ones that get the extra depth, which is
    what maximises expected quality for a given spend; the running mean converges to the budget
    over a long input.
    """

    gmacs_per_second: float
    tau: float = 0.9
    gain: float = 0.5
    spent: float = field(default=0.0, init=False)        # MACs so far
    seconds: float = field(default=0.0, init=False)      # audio seconds so far

    def __call__(self, ctx: ExitContext) -> torch.Tensor:
        quality = ctx.probabilities.block[:, ctx.core].masked_fill(~ctx.valid, 1.0).amin(-1)
        return quality >= self.tau

    def update(self, macs: float, seconds: float) -> None:
        self.spent += macs
        self.seconds += seconds
        if self.seconds > 0:
            over = self.spent / self.seconds / 1e9 / self.gmacs_per_second - 1.0
            self.tau = float(min(1.0, max(0.0, self.tau - self.gain * over)))


# ---------------------------------------------------------------------------------------------
# results


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
    gmacs_per_second: float        # total MACs / input duration
    last_exit_gmacs_per_second: float

    @property
    def saving(self) -> float:
        """Share of compute saved against running every segment to the last exit."""
        return 1.0 - self.gmacs_per_second / self.last_exit_gmacs_per_second

    def exit_histogram(self, n_exits: int) -> list[int]:
        counts = [0] * n_exits
        for s in self.segments:
            counts[s.exit - 1] += 1
        return counts


# ---------------------------------------------------------------------------------------------
# the runner


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


class Stitcher:
    """Receives segments' window estimates in order; emits aligned, cross-faded output.

    The sink is called in order with (start sample, (S, n) samples), covering [0, N) exactly once.
    """

    def __init__(self, plan: SegmentPlan, sink: Callable[[int, np.ndarray], None]) -> None:
        self.plan, self._sink = plan, sink
        c = plan.context
        # raised-cosine fade-in over the 2C samples both windows saw
        self.fade = (0.5 - 0.5 * np.cos(np.pi * (np.arange(2 * c) + 0.5) / (2 * c))).astype(np.float32)
        self.tail: np.ndarray | None = None   # previous segment over [s_i - C, s_i + C), aligned

    def sink(self, start: int, x: np.ndarray) -> None:
        """Pass on the part of x (S, n), starting at sample `start`, that lies inside the input."""
        lo, hi = max(start, 0), min(start + x.shape[1], self.plan.n_samples)
        if hi > lo:
            self._sink(lo, x[:, lo - start:hi - start])

    def push(self, i: int, window: np.ndarray) -> None:
        """window: (S, W) estimate of segment i over [s_i - C, e_i + C)."""
        plan, c = self.plan, self.plan.context
        start, end = plan.core(i)
        if self.tail is not None and c > 0:
            head = window[:, :2 * c]
            diff = ((head[:, None, :] - self.tail[None, :, :]) ** 2).sum(-1)  # (S cur, S prev)
            perm = best_permutation(torch.from_numpy(diff.T)[None])[0].numpy()  # prev j -> cur
            window = window[perm]
            head = window[:, :2 * c]
            self.sink(start - c, (1 - self.fade) * self.tail + self.fade * head)
            emit_from = c + c                    # window index of s_i + C
        else:
            emit_from = c                        # the first segment starts at s_0 = 0
        last = i == len(plan) - 1
        emit_to = c + (end - start) if last else c + (end - start) - c
        if emit_to > emit_from:
            self.sink(start + emit_from - c, window[:, emit_from:emit_to])
        if not last:
            self.tail = window[:, c + (end - start) - c: c + (end - start) + c]


@dataclass
class Separator:
    """Runs a PRESS model segment by segment with early exits. See the module docstring.

    segment / context in seconds (rounded to whole likelihood blocks); target_db / confidence:
    the report target at which per-block probabilities are computed (and the rule of `Dynamic`).
    """

    model: PressNet
    segment: float = 2.0
    context: float = 0.25
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

        stitcher = Stitcher(plan, sink)
        scale = torch.tensor(math.sqrt(max(p_ref, 0.0)), device=self.device)
        c, nb_core = plan.context, plan.segment // self.block
        core = slice(c // self.block, c // self.block + nb_core)
        segments: list[SegmentReport] = []
        blocks: list[BlockReport] = []
        for first in range(0, len(plan), self.batch_size):
            idx = list(range(first, min(first + self.batch_size, len(plan))))
            windows = torch.from_numpy(np.stack([
                reader.read(plan.core(i)[0] - c, plan.core(i)[0] - c + plan.window) for i in idx
            ])).to(self.device)
            lengths = torch.tensor([min(plan.window, n - (plan.core(i)[0] - c)) for i in idx],
                                   device=self.device)
            valid = torch.stack([self._valid_blocks(plan, i) for i in idx]).to(self.device)
            results = self._run_batch(windows, lengths, valid, core, scale.expand(len(idx)),
                                      p_ref, policy)
            batch_macs = 0.0
            for j, i in enumerate(idx):
                k, est, probs = results[j]
                macs = self.gmacs[k - 1] * 1e9 * plan.window / cfg.sample_rate
                batch_macs += macs
                start, end = plan.core(i)
                segments.append(SegmentReport(i, start, end, k, macs))
                blocks.extend(self._block_reports(i, start, end, k, probs, core, len(blocks)))
                stitcher.push(i, est)
            if isinstance(policy, Budget):
                policy.update(batch_macs, sum(plan.core(i)[1] - plan.core(i)[0] for i in idx) / cfg.sample_rate)
            if on_batch is not None:
                on_batch(len(idx))
        seconds = n / cfg.sample_rate
        total = sum(s.macs for s in segments)
        last = self.gmacs[-1] * 1e9 * plan.window * len(plan) / cfg.sample_rate
        return SeparationResult(out, cfg.sample_rate, segments, blocks, total / seconds / 1e9,
                                last / seconds / 1e9)

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
            ctx = ExitContext(k, model.n_exits, out, probs, core, valid[active], previous)
            leave = policy(ctx) if k < model.n_exits else torch.ones(len(active), dtype=torch.bool)
            leave = leave.to(windows.device)
            for j in torch.nonzero(leave).flatten().tolist():
                pick = lambda t: t[j:j + 1]  # noqa: E731
                results[int(active[j])] = (k, out.estimate[j].float().cpu().numpy(),
                                      ExitProbabilities(*(pick(t) for t in probs)))
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


@dataclass
class ExitTrace:
    """Every segment of one input run through every exit: what strategies choose from.

    Evaluating a strategy is then a choice of one exit per segment, stitched with the same
    `Stitcher` as `Separator.run`, so every strategy is compared on exactly the same segments
    and network outputs without running the network again. Raw (not recalibrated) α, β are kept
    so that calibration can be measured before and after a recalibration.
    """

    plan: SegmentPlan
    core: slice                    # blocks of a window that belong to its segment
    block: int
    sample_rate: int
    windows: np.ndarray            # (n_seg, W) mixture windows, zeros outside the input
    lengths: np.ndarray            # (n_seg,) valid samples per window
    valid: np.ndarray              # (n_seg, n_core) bool: core blocks holding input
    estimates: np.ndarray          # (K, n_seg, S, W)
    alpha: np.ndarray              # (K, n_seg, S, nbw)
    beta: np.ndarray
    p_ref: float
    gmacs: list[float]             # dynamic GMAC/s per exit (earlier heads included)
    seconds_per_exit: np.ndarray   # (K, n_seg) measured wall time to reach exit k, per segment

    @property
    def n_exits(self) -> int:
        return self.estimates.shape[0]

    def stitch(self, exits: Sequence[int]) -> np.ndarray:
        """Full-length sources (S, N) with segment i taken from exit exits[i] (1-based)."""
        out = np.zeros((self.estimates.shape[2], self.plan.n_samples), dtype=np.float32)

        def sink(start: int, x: np.ndarray) -> None:
            out[:, start:start + x.shape[1]] = x

        stitcher = Stitcher(self.plan, sink)
        for i, k in enumerate(exits):
            stitcher.push(i, self.estimates[int(k) - 1, i])
        return out

    def macs(self, exits: Sequence[int]) -> float:
        """MACs spent when segment i leaves at exits[i], counted as `Separator.run` does."""
        window_seconds = self.plan.window / self.sample_rate
        return sum(self.gmacs[int(k) - 1] * 1e9 * window_seconds for k in exits)

    def seconds(self, exits: Sequence[int]) -> float:
        """Estimated wall time of a run that stops segment i at exits[i] (from the measured pass)."""
        return float(sum(self.seconds_per_exit[int(k) - 1, i] for i, k in enumerate(exits)))


@torch.inference_mode()
def trace_exits(separator: Separator, reader: Reader, p_ref: float | None = None,
                utterance: bool = False) -> ExitTrace:
    """Run every segment of `reader` through all exits of `separator.model` (see `ExitTrace`).

    Memory grows with the input (every exit's window estimates are kept): meant for evaluation
    utterances, not for hour-long files. Time per exit is measured per batch and shared equally
    by its segments.
    """
    import time

    model, cfg = separator.model, separator.model.cfg
    n = reader.n_samples
    if n == 0:
        raise PressError("the input holds no samples")
    plan = separator.plan(n, utterance)
    p_ref = reader.mean_power() if p_ref is None else p_ref
    c, block = plan.context, separator.block
    core = slice(c // block, c // block + plan.segment // block)
    windows = np.stack([reader.read(plan.core(i)[0] - c, plan.core(i)[0] - c + plan.window)
                        for i in range(len(plan))])
    lengths = np.array([min(plan.window, n - (plan.core(i)[0] - c)) for i in range(len(plan))])
    valid = torch.stack([separator._valid_blocks(plan, i) for i in range(len(plan))]).numpy()
    scale = torch.tensor(math.sqrt(max(p_ref, 0.0)), device=separator.device)
    estimates, alphas, betas, times = [], [], [], []
    for first in range(0, len(plan), separator.batch_size):
        sl = slice(first, min(first + separator.batch_size, len(plan)))
        x = torch.from_numpy(windows[sl]).to(separator.device)
        tic = time.perf_counter()
        state = model.begin(x, lengths=torch.as_tensor(lengths[sl], device=separator.device),
                            scale=scale.expand(len(x)))
        est, al, be, tm = [], [], [], []
        for _ in range(model.n_exits):
            out, state = model.advance(state)
            est.append(out.estimate.float().cpu().numpy())
            al.append(out.alpha.double().cpu().numpy())
            be.append(out.beta.double().cpu().numpy())
            tm.append(np.full(len(x), (time.perf_counter() - tic) / len(x)))
        estimates.append(np.stack(est))
        alphas.append(np.stack(al))
        betas.append(np.stack(be))
        times.append(np.stack(tm))
    return ExitTrace(plan, core, block, cfg.sample_rate, windows, lengths, valid,
                     np.concatenate(estimates, 1), np.concatenate(alphas, 1), np.concatenate(betas, 1),
                     float(p_ref), list(separator.gmacs), np.concatenate(times, 1))
