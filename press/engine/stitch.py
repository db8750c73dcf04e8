"""Stitching segments' estimates into one output with no seam.

Each segment's speaker order is aligned with the previous segment on the samples both windows
saw (the permutation with the least squared difference) and the two are cross-faded with a
raised cosine over that overlap. Only one overlap is held at a time, so memory stays bounded
however long the input.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from press.engine.permutation import best_permutation
from press.engine.plan import SegmentPlan


class Stitcher:
    """Receives segments' window estimates in order; emits aligned, cross-faded output.

    The sink is called in order with (start sample, (S, n) samples), covering [0, N) exactly once.
    """

    def __init__(self, plan: SegmentPlan, sink: Callable[[int, np.ndarray], None], align: bool = True) -> None:
        # align=False: the outputs have a fixed order (speech, noise), which no permutation may undo
        self.plan, self._sink, self.align = plan, sink, align
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
            if self.align:
                head = window[:, :2 * c]
                diff = ((head[:, None, :] - self.tail[None, :, :]) ** 2).sum(-1)  # (S cur, S prev)
                window = window[best_permutation(diff.T[None])[0]]                # prev j -> cur
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
