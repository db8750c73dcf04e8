"""A causal PRESS-Net on a live stream, chunk by chunk, with the outputs of the whole-file forward.

A stream is B inputs fed together in chunks of any number of samples. A frame runs once its P
samples have arrived; its samples are then final at every exit that ran (nothing in a causal model
looks past the end of a frame: `PressNet.lookahead`), and a likelihood block's (alpha, beta) are
final once its last frame has run. `end` runs the last, partial frame (zero-padded, as the whole-file
forward pads) and closes the last, partial block.

Everything a chunk needs from earlier chunks is in `StreamState`, a dataclass of tensors passed in
and returned (no state hidden in the modules), so that a step can be exported with its state as
graph inputs and outputs:

  pending    (B, r)         input samples of the frame not yet complete, r < P
  history    (B, K - 1)     the last K - 1 level-normalised samples: the analysis taps that reach
                            back into earlier chunks
  level      (B, 2)         the running level's sums (`press.model.level.running_level`)
  encoder    per encoder block: a linear RNN's hidden state (B, H), a long conv's last kernel - 1
                            GLU frames (B, kernel - 1, E), attention's nothing (an empty tensor)
  groups     per exit, per block of its decoder group: the same for the B S speaker streams
  overlap    per exit (B, S, K - 1): what the last frames' synthesis taps left on later samples
  pooled     per exit (B, S, G): inverse-gamma features summed over the open block's frames
  power      (B, 1)         the squared level summed over the open block's frames (beta's scale)
  frames     ()             frames run so far (int64): where the open block stands
  depth      ()             how many decoder groups have run every frame (int64)

Each exit's group keeps its own state, so a group that skipped frames is visible (`depth`). Running
it again needs the residual stream of the skipped frames, which this state does not keep: a stream
here runs a fixed number of exits, or fewer later on, never more (a `ValueError`). Choosing the exit
per likelihood block, with the skipped groups caught up, is `press.model.stream_exits`, which runs
the same pieces: `encode` (level, analysis, encoder, speaker split) and `run_group`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from press.model.level import level_start, running_level, sample_level


@dataclass(frozen=True)
class StreamState:
    """Everything the next chunk of a stream needs (see the module's docstring). Carried, never mutated."""

    pending: torch.Tensor
    history: torch.Tensor
    level: torch.Tensor
    encoder: tuple[torch.Tensor, ...]
    groups: tuple[tuple[torch.Tensor, ...], ...]
    overlap: tuple[torch.Tensor, ...]
    pooled: tuple[torch.Tensor, ...]
    power: torch.Tensor
    frames: torch.Tensor
    depth: torch.Tensor


@dataclass(frozen=True)
class Front:
    """What the network before the decoder groups carries from frame to frame (see StreamState)."""

    history: torch.Tensor             # (B, K - 1) the last level-normalised samples
    level: torch.Tensor               # (B, 2) the running level's sums
    encoder: tuple[torch.Tensor, ...]  # per encoder block


@dataclass(frozen=True)
class Frames:
    """New frames through the front: what the decoder groups and every exit's heads read."""

    h: torch.Tensor       # (B, S, n, D) residual stream after the speaker split
    basis: torch.Tensor   # (B, n P, C) the analysis basis the decoder heads mask
    wave: torch.Tensor    # (B, n P) the level-normalised samples
    level: torch.Tensor   # (B, n) the running level of every frame


@dataclass(frozen=True)
class StreamOutput:
    """What one exit says about the part of a stream that a chunk made final, in input units."""

    exit: int                 # 1-based exit index
    start: int                # the stream's sample index of estimate[..., 0]
    estimate: torch.Tensor    # (B, S, n) reconstructed sources, samples [start, start + n)
    first_block: int          # the stream's block index of alpha[..., 0]
    alpha: torch.Tensor       # (B, S, nb) inverse-gamma shape of the blocks that ended
    beta: torch.Tensor        # (B, S, nb) inverse-gamma scale, in squared input units


def begin(net: nn.Module, batch: int) -> StreamState:
    """The state of `batch` streams before their first sample. `net` is a causal PressNet (typed as
    a module here: press_net imports this module for its stream methods)."""
    cfg = net.cfg
    like = net.split.weight
    G = net.ig_heads[0].out.in_features
    front = front_begin(net, batch)
    return StreamState(
        pending=like.new_zeros(batch, 0),
        history=front.history,
        level=front.level,
        encoder=front.encoder,
        groups=tuple(group_begin(net, i, batch) for i in range(cfg.n_exits)),
        overlap=tuple(tail_begin(net, batch) for _ in range(cfg.n_exits)),
        pooled=tuple(like.new_zeros(batch, cfg.n_src, G) for _ in range(cfg.n_exits)),
        power=like.new_zeros(batch, 1),
        frames=torch.zeros((), dtype=torch.int64),
        depth=torch.tensor(cfg.n_exits))


def front_begin(net: nn.Module, batch: int) -> Front:
    """The front's state before a stream's first sample; a `ValueError` for a model that cannot stream."""
    if not net.cfg.causal:
        raise ValueError("only a causal model (model.causal: true) runs on a stream")
    like = net.split.weight
    return Front(history=like.new_zeros(batch, net.cfg.enc_kernel - 1), level=level_start(batch, like),
                 encoder=tuple(block.stream_state(batch, like) for block in net.encoder))


def group_begin(net: nn.Module, i: int, batch: int) -> tuple[torch.Tensor, ...]:
    """Decoder group i's state (0-based) before a stream's first frame: every block's initial one."""
    return tuple(block.stream_state(batch * net.cfg.n_src, net.split.weight) for block in net.groups[i])


def tail_begin(net: nn.Module, batch: int) -> torch.Tensor:
    """A decoder head's overlap-add tail before a stream's first sample (B, S, K - 1): nothing yet."""
    return net.split.weight.new_zeros(batch, net.cfg.n_src, net.cfg.enc_kernel - 1)


def step(net: nn.Module, chunk: torch.Tensor, state: StreamState, exits: int
         ) -> tuple[list[StreamOutput], StreamState]:
    """The next samples of every stream, chunk (B, N), through the first `exits` exits: each exit's
    samples of the frames this chunk completes, and the blocks it completes."""
    _check(net, state, exits)
    P = net.cfg.patch
    x = torch.cat([state.pending, chunk.to(state.pending.dtype)], dim=1)
    ready = x.shape[1] // P * P
    return _advance(net, x[:, :ready], replace(state, pending=x[:, ready:]), exits, ready, close=False)


def end(net: nn.Module, state: StreamState, exits: int) -> list[StreamOutput]:
    """The last samples of every stream (their frame zero-padded) and the last, partial block."""
    _check(net, state, exits)
    r = state.pending.shape[1]
    x = F.pad(state.pending, (0, -r % net.cfg.patch))
    return _advance(net, x, replace(state, pending=x[:, :0]), exits, r, close=True)[0]


def _check(net: nn.Module, state: StreamState, exits: int) -> None:
    if not 1 <= exits <= net.n_exits:
        raise ValueError(f"exits must lie in 1..{net.n_exits}, got {exits}")
    if exits > int(state.depth):
        raise ValueError(f"exit {int(state.depth) + 1} skipped frames of this stream, which keeps nothing to "
                         "catch its group up: choose the exit per block with press.model.stream_exits")


def _advance(net: nn.Module, x: torch.Tensor, state: StreamState, exits: int, keep: int, close: bool
             ) -> tuple[list[StreamOutput], StreamState]:
    """Run the whole frames x (B, n P) through `exits` exits and emit: the first `keep` samples, the
    blocks that end, and with `close` the open block too."""
    cfg = net.cfg
    P, fpb, B, S = cfg.patch, cfg.frames_per_block, x.shape[0], cfg.n_src
    n, done = x.shape[1] // P, int(state.frames)
    if n:
        estimates, features, level, state = _run(net, x, state, exits)
    else:   # nothing new to run: the open block may still close
        G = state.pooled[0].shape[-1]
        estimates = [x.new_zeros(B, S, 0)] * exits
        features = [x.new_zeros(B, S, 0, G)] * exits
        level = x.new_zeros(B, 0)
    power, state_power, count = _blocks(state.power, level.pow(2)[..., None], done % fpb, fpb, close)
    scale = sample_level(level, P)[:, None, :keep]                           # (B, 1, keep)
    outputs, pooled, a_sum, b_sum = [], list(state.pooled), None, None
    for i in range(exits):
        total, pooled[i], _ = _blocks(state.pooled[i], features[i], done % fpb, fpb, close)
        a_raw, b_raw = net.ig_heads[i].pool(total, count[:, None])
        alpha, beta, a_sum, b_sum = net.exit_parameters(a_raw, b_raw, a_sum, b_sum)
        outputs.append(StreamOutput(exit=i + 1, start=done * P, estimate=estimates[i][..., :keep] * scale,
                                    first_block=done // fpb, alpha=alpha,
                                    beta=beta * (power[..., 0] / count)[:, None]))
    state = replace(state, pooled=tuple(pooled), power=state_power, frames=state.frames + n,
                    depth=torch.tensor(exits).minimum(state.depth))
    return outputs, state


def _run(net: nn.Module, x: torch.Tensor, state: StreamState, exits: int
         ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, StreamState]:
    """The network on n >= 1 new frames x (B, n P): per exit the normalised estimate (B, S, n P) and
    the inverse-gamma features (B, S, n, G), the level of every frame (B, n), and the new state."""
    frames, front = encode(net, x, Front(state.history, state.level, state.encoder))
    h, groups, overlap = frames.h, list(state.groups), list(state.overlap)
    estimates, features = [], []
    for i in range(exits):
        h, groups[i] = run_group(net, i, h, state.groups[i])
        estimate, overlap[i] = net.decoder_heads[i].step(h, frames.basis, frames.wave, state.overlap[i])
        estimates.append(estimate)
        features.append(net.ig_heads[i].features(h))
    state = replace(state, history=front.history, level=front.level, encoder=front.encoder,
                    groups=tuple(groups), overlap=tuple(overlap))
    return estimates, features, frames.level, state


def encode(net: nn.Module, x: torch.Tensor, front: Front) -> tuple[Frames, Front]:
    """The running level, the analysis filters, the encoder and the speaker split on n >= 1 new
    frames x (B, n P), from the front's state after the frames before them."""
    cfg = net.cfg
    level, level_state = running_level(x, front.level, net.level_decay, cfg.patch)   # (B, n)
    wave = x / sample_level(level, cfg.patch)                                        # (B, n P)
    taps = torch.cat([front.history, wave], dim=1)                                   # (B, K - 1 + n P)
    h, basis = net.encoder_head.encode(taps)                                         # (B,1,n,D), (B,nP,C)
    encoder = []
    for block, s in zip(net.encoder, front.encoder):
        h, s = block.step(h, s)
        encoder.append(s)
    frames = Frames(h=net.speakers(h), basis=basis, wave=wave, level=level)         # h: (B, S, n, D)
    return frames, Front(history=taps[:, wave.shape[1]:], level=level_state, encoder=tuple(encoder))


def run_group(net: nn.Module, i: int, h: torch.Tensor, state: tuple[torch.Tensor, ...]
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Decoder group i (0-based) on the next frames h (B, S, n, D) from its state after the frames
    before them: (h after the group, the group's state after these frames)."""
    carried = []
    for block, s in zip(net.groups[i], state):
        h, s = block.step(h, s)
        carried.append(s)
    return h, tuple(carried)


def _blocks(open_sum: torch.Tensor, new: torch.Tensor, phase: int, fpb: int, close: bool
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over likelihood blocks as frames arrive: given the sum over the open block's first
    `phase` frames (..., X) and the next frames (..., n, X), (the sums of the blocks that end
    (..., k, X), the sum over the block left open (..., X), the frames in each block ended (k,)).
    With `close`, a non-empty open block ends too (the end of the stream)."""
    n = new.shape[-2]
    index = torch.cat([torch.zeros(1, dtype=torch.int64), (phase + torch.arange(n)) // fpb]).to(new.device)
    k, rest = divmod(phase + n, fpb)
    sums = new.new_zeros(new.shape[:-2] + (k + 1, new.shape[-1]))
    sums.index_add_(new.dim() - 2, index, torch.cat([open_sum.unsqueeze(-2), new], dim=-2))
    count = torch.full((k + 1,), float(fpb), dtype=new.dtype, device=new.device)
    count[k] = rest
    ended = k + 1 if close and rest else k
    return sums[..., :ended, :], sums[..., k, :], count[:ended]
