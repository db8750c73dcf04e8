"""A causal PRESS-Net on a live stream with the exit chosen per likelihood block.

A likelihood block is the unit of decision. Once its last sample has arrived, the front (level,
analysis, encoder, speaker split) and exit 1 run on its frames, and a `Decide` (the exit rule,
press.engine.stream_rule.StreamRule, or any callable) says from that exit's estimate and (alpha,
beta) of the block whether it may leave; if not, exit 2 runs on the same frames, and so on to the
last exit. The block's samples go out when it leaves: its first sample waits block - 1 samples (the
look-ahead lies inside the block). B streams run together and leave together: a block leaves at the
first exit that passes it for every stream.

A block that leaves at exit k leaves the groups above k behind: they have not run on its frames,
but a later block that goes deeper needs each one's state after them (an RNN's hidden state, a
convolution's left context, its decoder head's overlap-add tail). Three catch-up policies:

  lazy   keep the residual stream each skipped frame reached, and the last frames' analysis basis
         and normalised samples; before a deeper block runs group i, run group i over the frames
         it skipped, and exit i's decoder head over the last of them, whose synthesis taps reach
         the block (the inverse-gamma head needs nothing: the skipped blocks have left). Exact:
         every block's output is the whole-file forward's at the exit it took. The groups end up
         having run every frame up to the deepest exit reached since, as a fixed stream at that
         exit would. The backlog holds at most `backlog` blocks: beyond it the oldest leaves, and
         the groups that skipped it restart from their initial state after it (`reset` there).
  reset  keep nothing: a group that skipped frames restarts from its initial state (zero) when a
         deeper block comes. No catch-up compute; exact up to the lowest exit taken since.
  hold   keep nothing: a group carries on from its state after the last frame it ran, as if the
         skipped frames had not been (a stale hidden state, conv context and overlap-add tail).
         No catch-up compute; exact up to the lowest exit taken since.

`reset` is `lazy` with a backlog of no block. Every multiply-accumulate is counted (`Spent`): the
frames each part ran on (catch-up apart) times its MACs per frame, measured with
press.model.compute's counter on the whole-file forward (`frame_costs`).

Unlike `press.model.stream`, whose state is tensors passed in and out so that a step can be
exported, a `BlockStream` is an object that changes: its decisions are Python control flow and
its backlog has a length that varies, so it is no graph to export.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from press.model.compute import count_macs
from press.model.config import ModelConfig
from press.model.level import sample_level
from press.model.press_net import PressNet
from press.model.stream import (
    Frames,
    StreamOutput,
    encode,
    front_begin,
    group_begin,
    run_group,
    tail_begin,
)

CATCH_UP = ("lazy", "reset", "hold")
BACKLOG = 16   # blocks a lazy stream keeps for its skipped groups (0.5 s of enhance-rt)


class Decide(Protocol):
    def __call__(self, block: int, exit: int, estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray,
                 beta: np.ndarray) -> np.ndarray | bool:
        """Whether block `block` (0-based) may leave at exit `exit` (1-based), per stream (B,) or for
        all: estimate (B, S, n) and mixture (B, n) its n samples in input units, alpha, beta (B, S, 1).
        Called in the order the blocks end, each block at its exits in turn."""


@dataclass(frozen=True)
class FrameCosts:
    """MACs per frame of one stream through each part of the network; `pool` per block."""

    front: int                  # level, analysis, encoder, speaker split
    group: tuple[int, ...]      # per exit: its decoder group
    decoder: tuple[int, ...]    # per exit: its decoder head (mask and synthesis)
    features: tuple[int, ...]   # per exit: the inverse-gamma head's per-frame features
    pool: tuple[int, ...]       # per exit: the inverse-gamma head's output layer, once a block


def frame_costs(net: PressNet) -> FrameCosts:
    """Each part's MACs per frame (per block for `pool`), counted by press.model.compute's hooks on
    a whole-file forward of one block on torch's meta device (shapes only, no arithmetic). Every
    counted operation is per frame, per sample or per block, so one block gives the exact rates.
    They depend on the configuration alone: counted once per configuration (~0.5 s each)."""
    return _frame_costs(json.dumps(asdict(net.cfg), sort_keys=True))


@functools.lru_cache(maxsize=8)
@torch.no_grad()
def _frame_costs(config: str) -> FrameCosts:
    cfg = ModelConfig(**json.loads(config))
    with torch.device("meta"):
        shadow = PressNet(cfg).eval()
        x = torch.zeros(1, cfg.block)
    with count_macs(shadow) as totals:
        shadow(x)

    def per_frame(*parts: torch.nn.Module, leave: torch.nn.Module | None = None) -> int:
        skip = set(leave.modules()) if leave is not None else set()
        macs = sum(totals.get(m, 0) for part in parts for m in part.modules() if m not in skip)
        return macs // cfg.frames_per_block

    return FrameCosts(
        front=per_frame(shadow.encoder_head, shadow.encoder, shadow.split_norm, shadow.split),
        group=tuple(per_frame(g) for g in shadow.groups),
        decoder=tuple(per_frame(d) for d in shadow.decoder_heads),
        features=tuple(per_frame(h, leave=h.out) for h in shadow.ig_heads),
        pool=tuple(totals.get(h.out, 0) for h in shadow.ig_heads))


@dataclass
class Spent:
    """What a stream ran: frames through each part (blocks for `pool`), per exit; catch-up apart."""

    n_exits: int
    front: int = 0
    group: list[int] = field(init=False)      # frames of the blocks that tried the exit
    decoder: list[int] = field(init=False)
    features: list[int] = field(init=False)
    pool: list[int] = field(init=False)
    catch_up_group: list[int] = field(init=False)     # skipped frames run before a deeper block
    catch_up_decoder: list[int] = field(init=False)   # the last of them, for the overlap-add tail

    def __post_init__(self) -> None:
        for name in ("group", "decoder", "features", "pool", "catch_up_group", "catch_up_decoder"):
            setattr(self, name, [0] * self.n_exits)

    def macs(self, costs: FrameCosts, batch: int = 1) -> tuple[int, int]:
        """(every MAC spent, the catch-up's share of them) for `batch` streams."""
        catch_up = sum(n * c for n, c in zip(self.catch_up_group, costs.group)) + \
            sum(n * c for n, c in zip(self.catch_up_decoder, costs.decoder))
        run = self.front * costs.front + sum(
            g * cg + d * cd + f * cf + p * cp for g, cg, d, cd, f, cf, p, cp in
            zip(self.group, costs.group, self.decoder, costs.decoder, self.features, costs.features,
                self.pool, costs.pool))
        return batch * (run + catch_up), batch * catch_up


@dataclass(frozen=True)
class Skipped:
    """A block that left before the last exit, kept for the groups it skipped (lazy)."""

    start: int            # its first frame
    depth: int            # the groups that have run on it
    h: torch.Tensor       # (B, S, n, D) the residual stream after them
    basis: torch.Tensor   # (B, m P, C) its last m frames' analysis basis (the decoder head's tail)
    wave: torch.Tensor    # (B, m P) and their normalised samples

    @property
    def end(self) -> int:
        return self.start + self.h.shape[2]


class BlockStream:
    """B streams through a causal PressNet, the exit chosen per likelihood block by `decide`, the
    skipped groups caught up by `catch_up` (see the module's docstring). `push` chunks of any
    length, then `end`: each returns a `StreamOutput` per block that left, at the exit it took."""

    def __init__(self, net: PressNet, decide: Decide, catch_up: str = "lazy", backlog: int = BACKLOG,
                 batch: int = 1, costs: FrameCosts | None = None) -> None:
        """costs: `frame_costs(net)`, when the caller has it (it takes a meta-device forward)."""
        cfg = net.cfg
        if catch_up not in CATCH_UP:
            raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP)}, got {catch_up!r}")
        if backlog < 0:
            raise ValueError(f"backlog must be >= 0 blocks, got {backlog}")
        if cfg.block < cfg.enc_kernel - 1:   # the tail a decoder head leaves must lie in one block
            raise ValueError(f"a block of {cfg.block} samples is shorter than the synthesis taps' reach "
                             f"({cfg.enc_kernel - 1})")
        self.net, self.decide, self.catch_up, self.batch = net, decide, catch_up, batch
        self.limit = 0 if catch_up == "reset" else backlog
        self.tail_frames = -(-(cfg.enc_kernel - 1) // cfg.patch)   # m: frames whose taps reach the next
        self.costs = frame_costs(net) if costs is None else costs
        self.spent = Spent(net.n_exits)
        self.front = front_begin(net, batch)
        self.groups = [group_begin(net, i, batch) for i in range(net.n_exits)]
        self.tails = [tail_begin(net, batch) for _ in range(net.n_exits)]
        self.ran = [0] * net.n_exits      # per group: the frame its state stands before
        self.backlog: deque[Skipped] = deque()
        self.pending = net.split.weight.new_zeros(batch, 0)   # (B, r < block) input of the open block
        self.frames = self.blocks = self.samples = 0

    def push(self, chunk: torch.Tensor) -> list[StreamOutput]:
        """The next samples of every stream (B, N): the blocks they complete, each at its exit."""
        block = self.net.cfg.block
        x = torch.cat([self.pending, chunk.to(self.pending.dtype)], dim=1)
        self.samples += chunk.shape[1]
        done = [self._block(x[:, k:k + block], block) for k in range(0, x.shape[1] - block + 1, block)]
        self.pending = x[:, len(done) * block:]
        return done

    def end(self) -> list[StreamOutput]:
        """The last, partial block (its last frame zero-padded, as the whole-file forward pads)."""
        r = self.pending.shape[1]
        if not r:
            return []
        x = F.pad(self.pending, (0, -r % self.net.cfg.patch))
        self.pending = x[:, :0]
        return [self._block(x, r)]

    def macs(self) -> tuple[int, int]:
        """(every MAC spent so far, catch-up included; the catch-up's part)."""
        return self.spent.macs(self.costs, self.batch)

    def _block(self, x: torch.Tensor, keep: int) -> StreamOutput:
        """One block's whole frames x (B, n P) through exit after exit until `decide` lets it leave;
        its first `keep` samples at that exit."""
        net, P, spent = self.net, self.net.cfg.patch, self.spent
        start, n = self.frames, x.shape[1] // P
        frames, self.front = encode(net, x, self.front)
        spent.front += n
        scale = sample_level(frames.level, P)[:, None, :keep]                # (B, 1, keep)
        power = frames.level.pow(2).mean(-1)[:, None, None]                  # (B, 1, 1) beta's scale
        mixture = x[:, :keep]
        h, a_sum, b_sum = frames.h, None, None
        for i in range(net.n_exits):
            self._catch_up(i, start)
            h, self.groups[i] = run_group(net, i, h, self.groups[i])
            estimate, self.tails[i] = net.decoder_heads[i].step(h, frames.basis, frames.wave, self.tails[i])
            total = net.ig_heads[i].features(h).sum(-2, keepdim=True)          # (B, S, 1, G)
            a_raw, b_raw = net.ig_heads[i].pool(total, total.new_tensor(float(n)))  # (B, S, 1)
            alpha, beta, a_sum, b_sum = net.exit_parameters(a_raw, b_raw, a_sum, b_sum)
            beta, estimate = beta * power, estimate[..., :keep] * scale
            self.ran[i] = start + n
            spent.group[i], spent.decoder[i] = spent.group[i] + n, spent.decoder[i] + n
            spent.features[i], spent.pool[i] = spent.features[i] + n, spent.pool[i] + 1
            if i + 1 == net.n_exits or self._leaves(i + 1, estimate, mixture, alpha, beta):
                break
        self._skip(i + 1, start, h, frames)
        out = StreamOutput(exit=i + 1, start=start * P, estimate=estimate, first_block=self.blocks,
                           alpha=alpha, beta=beta)
        self.frames, self.blocks = start + n, self.blocks + 1
        return out

    def _leaves(self, exit: int, *tensors: torch.Tensor) -> bool:
        estimate, mixture, alpha, beta = (t.detach().cpu().numpy() for t in tensors)
        return bool(np.all(self.decide(self.blocks, exit, estimate, mixture, alpha, beta)))

    def _catch_up(self, i: int, start: int) -> None:
        """Bring group i's state (and exit i's overlap-add tail) up to frame `start` (lazy): run it
        over the frames it skipped, which the groups before it have brought to depth i."""
        if self.ran[i] == start or self.catch_up == "hold":
            return
        behind = [s for s in self.backlog if s.depth == i]    # frames ran[i] .. start, in order
        h, self.groups[i] = run_group(self.net, i, torch.cat([s.h for s in behind], dim=2), self.groups[i])
        last = behind[-1]
        m = last.wave.shape[1] // self.net.cfg.patch
        # the tail past `start` comes from the last m frames' taps alone (m P >= K - 1): what the
        # old tail adds lands on the first of them, not past them
        _, self.tails[i] = self.net.decoder_heads[i].step(h[:, :, -m:], last.basis, last.wave, self.tails[i])
        self.spent.catch_up_group[i] += h.shape[2]
        self.spent.catch_up_decoder[i] += m
        self.ran[i] = start
        raised, k = [], 0
        for s in self.backlog:
            if s.depth == i:
                s = replace(s, depth=i + 1, h=h[:, :, k:k + s.h.shape[2]])
                k += s.h.shape[2]
            raised.append(s)
        self.backlog = deque(s for s in raised if s.depth < self.net.n_exits)

    def _skip(self, depth: int, start: int, h: torch.Tensor, frames: Frames) -> None:
        """Keep a block that left after `depth` groups for the ones it skipped (lazy, reset), and no
        more than the limit: beyond it, the groups that skipped the oldest restart after it."""
        if depth == self.net.n_exits or self.catch_up == "hold":
            return
        tail = self.tail_frames * self.net.cfg.patch
        self.backlog.append(Skipped(start=start, depth=depth, h=h, basis=frames.basis[:, -tail:],
                                    wave=frames.wave[:, -tail:]))
        while len(self.backlog) > self.limit:
            oldest = self.backlog.popleft()
            for j in range(oldest.depth, self.net.n_exits):   # the groups that skipped it, none after
                self.groups[j] = group_begin(self.net, j, self.batch)
                self.tails[j] = tail_begin(self.net, self.batch)
                self.ran[j] = oldest.end
