"""Every exit of every segment at once, for evaluation: what exit strategies choose from."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from press.errors import PressError
from press.inference.plan import SegmentPlan
from press.inference.runner import Separator
from press.inference.stitch import Stitcher
from press.io.streaming import Reader
from press.model.device import synchronize


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


@torch.inference_mode()
def trace_exits(separator: Separator, reader: Reader, p_ref: float | None = None,
                utterance: bool = False) -> ExitTrace:
    """Run every segment of `reader` through all exits of `separator.model` (see `ExitTrace`).

    Memory grows with the input (every exit's window estimates are kept): meant for evaluation
    utterances, not for hour-long files. Time per exit is measured per batch and shared equally
    by its segments.
    """

    model, cfg = separator.model, separator.model.cfg
    n = reader.n_samples
    if n == 0:
        raise PressError("the input holds no samples")
    plan = separator.plan(n, utterance)
    p_ref = reader.mean_power() if p_ref is None else p_ref
    c, block = plan.context, separator.block
    core = slice(c // block, c // block + plan.segment // block)
    win = plan.read(reader, range(len(plan)))
    valid = torch.stack([separator._valid_blocks(plan, i) for i in range(len(plan))]).numpy()
    estimates, alphas, betas, times = [], [], [], []
    for first in range(0, len(plan), separator.batch_size):
        sl = slice(first, min(first + separator.batch_size, len(plan)))
        x = torch.from_numpy(win.audio[sl]).to(separator.device)
        synchronize(separator.device)
        tic = time.perf_counter()
        state = model.begin(x, lengths=torch.as_tensor(win.lengths[sl], device=separator.device),
                            scale=torch.from_numpy(win.levels[sl]).to(separator.device))
        outs, tm = [], []
        for _ in range(model.n_exits):
            out, state = model.advance(state)
            synchronize(separator.device)   # the time to reach this exit, not to queue it
            tm.append(np.full(len(x), (time.perf_counter() - tic) / len(x)))
            outs.append(out)
        est = torch.stack([o.estimate for o in outs]).float().cpu().numpy()   # (K, n, S, W)
        al = torch.stack([o.alpha for o in outs]).double().cpu().numpy()     # (K, n, S, nbw)
        be = torch.stack([o.beta for o in outs]).double().cpu().numpy()
        estimates.append(est)
        alphas.append(al)
        betas.append(be)
        times.append(np.stack(tm))
    return ExitTrace(plan, core, block, cfg.sample_rate, win.audio, win.lengths, valid,
                     np.concatenate(estimates, 1), np.concatenate(alphas, 1), np.concatenate(betas, 1),
                     float(p_ref), list(separator.gmacs), np.concatenate(times, 1), align=cfg.sources is None)
