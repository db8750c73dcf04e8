"""A causal PressNet over a whole file as one stream: the torch backend of press.engine.block_runner.

The stream is press.model.stream_exits.BlockStream with lazy catch-up (exact: every block is the
whole-file forward's at the exit it took), fed and read in numpy. Why a causal model runs a file
this way rather than in segments, and how the policies decide its blocks: press.engine.block_runner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from press.engine.backend import exit_scales
from press.engine.block_runner import BlockRunner, Decide
from press.errors import PressError
from press.model import PressNet
from press.model.stream_exits import CATCH_UP, BlockStream, FrameCosts, frame_costs
from press.prob.calibration import Recalibration


@dataclass(frozen=True)
class NumpyBlock:
    """A block that left a torch stream, on the host."""

    exit: int
    start: int
    estimate: np.ndarray   # (1, S, n)
    alpha: np.ndarray      # (1, S, 1)
    beta: np.ndarray


class TorchBlockStream:
    """A BlockStream taking and giving numpy, under inference mode."""

    def __init__(self, net: PressNet, decide: Decide, catch_up: str, costs: FrameCosts) -> None:
        self.stream = BlockStream(net, decide, catch_up, costs=costs)
        self.device = next(net.parameters()).device

    @torch.inference_mode()
    def push(self, chunk: np.ndarray) -> list[NumpyBlock]:
        return [_host(o) for o in self.stream.push(torch.from_numpy(chunk).to(self.device))]

    @torch.inference_mode()
    def end(self) -> list[NumpyBlock]:
        return [_host(o) for o in self.stream.end()]

    def macs(self) -> tuple[int, int]:
        return self.stream.macs()


def _host(o) -> NumpyBlock:
    return NumpyBlock(o.exit, o.start, *(t.float().cpu().numpy() for t in (o.estimate, o.alpha, o.beta)))


class TorchStreamBackend:
    """A causal PressNet as press.engine.block_runner's StreamBackend."""

    def __init__(self, net: PressNet, catch_up: str = "lazy") -> None:
        cfg = net.cfg
        if not cfg.causal:
            raise PressError(f"{cfg.name} is not a causal model: run it in segments (press.inference.Separator)")
        if catch_up not in CATCH_UP:
            raise PressError(f"catch_up must be one of {', '.join(CATCH_UP)}, got {catch_up!r}")
        self.net, self.catch_up = net, catch_up
        self.sample_rate, self.block, self.n_src, self.n_exits = cfg.sample_rate, cfg.block, cfg.n_src, net.n_exits
        self.costs = frame_costs(net)

    def open(self, decide: Decide) -> TorchBlockStream:
        return TorchBlockStream(self.net, decide, self.catch_up, self.costs)

    def last_exit_macs(self, n_samples: int) -> float:
        """Every frame through the front and every exit's group and heads; every block pooled by
        every inverse-gamma head: a BlockStream's count with each block at the last exit."""
        c, cfg = self.costs, self.net.cfg
        frames, blocks = -(-n_samples // cfg.patch), -(-n_samples // cfg.block)
        return float(frames * (c.front + sum(c.group) + sum(c.decoder) + sum(c.features)) + blocks * sum(c.pool))


def causal_runner(net: PressNet, target_db: float = 20.0, confidence: float = 0.9,
                  recalibration: Recalibration | None = None, catch_up: str = "lazy") -> BlockRunner:
    """A causal PressNet run over whole inputs as one stream (press.engine.block_runner)."""
    recalibration = recalibration or Recalibration()
    recalibration.check_exits(net.n_exits)
    return BlockRunner(TorchStreamBackend(net, catch_up), exit_scales(recalibration.to_dict(), net.n_exits),
                       target_db, confidence)
