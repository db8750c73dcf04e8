"""Every exit of every segment at once, for evaluation: what exit strategies choose from."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from press.engine.plan import SegmentPlan
from press.engine.stitch import Stitcher
from press.inference.runner import Separator
from press.io.streaming import Reader
from press.model.device import synchronize


@dataclass
class ExitTrace:
    """Every segment of one input run through every exit: what strategies choose from.

    Evaluating a strategy is then a choice of one exit per segment, stitched with the same
    `Stitcher` as the engine's loop, so every strategy is compared on exactly the same segments
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
    align: bool = True             # align segments' outputs by permutation (False: fixed order, e.g. speech first)

    @property
    def n_exits(self) -> int:
        return self.estimates.shape[0]

    @property
    def core_samples(self) -> slice:
        """The segment's samples within a window, as `ExitContext.core_samples` gives them."""
        return slice(self.core.start * self.block, self.core.stop * self.block)

    def stitch(self, exits: Sequence[int]) -> np.ndarray:
        """Full-length sources (S, N) with segment i taken from exit exits[i] (1-based)."""
        out = np.zeros((self.estimates.shape[2], self.plan.n_samples), dtype=np.float32)

        def sink(start: int, x: np.ndarray) -> None:
            out[:, start:start + x.shape[1]] = x

        stitcher = Stitcher(self.plan, sink, align=self.align)
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


def trace_exits(separator: Separator, reader: Reader, p_ref: float | None = None,
                utterance: bool = False) -> ExitTrace:
    """Run every segment of `reader` through all exits of `separator.model` (see `ExitTrace`).

    Memory grows with the input (every exit's window estimates are kept): meant for evaluation
    utterances, not for hour-long files. Time per exit is measured per batch and shared equally
    by its segments.
    """

    cfg = separator.model.cfg
    plan = separator.plan(reader.n_samples, utterance)
    p_ref = reader.mean_power() if p_ref is None else p_ref
    block = separator.block
    win = plan.read(reader, range(len(plan)))
    backend = separator.backend()
    estimates, alphas, betas, times = [], [], [], []
    for first in range(0, len(plan), separator.batch_size):
        sl = slice(first, min(first + separator.batch_size, len(plan)))
        n_batch = sl.stop - sl.start
        synchronize(separator.device)
        tic = time.perf_counter()
        # each exit's outputs arrive on the host: its time is the time to reach it, not to queue it
        out, state = backend.first(win.audio[sl], win.lengths[sl], win.levels[sl])
        outs, tm = [out], [np.full(n_batch, (time.perf_counter() - tic) / n_batch)]
        for _ in range(2, backend.n_exits + 1):
            out, state = backend.advance(state)
            outs.append(out)
            tm.append(np.full(n_batch, (time.perf_counter() - tic) / n_batch))
        estimates.append(np.stack([o.estimate for o in outs]))                   # (K, n, S, W)
        alphas.append(np.stack([o.alpha for o in outs]).astype(np.float64))      # (K, n, S, nbw)
        betas.append(np.stack([o.beta for o in outs]).astype(np.float64))
        times.append(np.stack(tm))
    return ExitTrace(plan, plan.core_blocks(block), block, cfg.sample_rate, win.audio, win.lengths,
                     plan.valid_blocks(range(len(plan)), block), np.concatenate(estimates, 1),
                     np.concatenate(alphas, 1), np.concatenate(betas, 1), float(p_ref), list(separator.gmacs),
                     np.concatenate(times, 1), align=cfg.sources is None)
