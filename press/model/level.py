"""The level PRESS-Net normalises its input by, and undoes on every output.

The Student-t likelihood is not scale invariant: the same error costs more nats on loud audio than on
quiet audio, and beta is in squared input units. So the network, the loss and the exit rules all work
on audio divided by a level, and the outputs are scaled back by it (estimates by the level, beta by its
square).

  * `input_scale`: the RMS of the whole input. Exact scale invariance, but every output depends on
    every input sample, the last ones included.
  * `running_level` (causal models): the square root of an exponentially weighted mean of the input
    power per frame, with a time constant of `LEVEL_SECONDS`. It depends on no later frame, so a
    stream can compute it chunk by chunk, and the whole-file forward and the streaming step compute it
    with this one function (from a carried state) so that they agree.
"""

from __future__ import annotations

import math

import torch

from press.model.scan import scan_from

SCALE_FLOOR = 1e-5   # RMS below this (-100 dBFS) counts as digital silence
LEVEL_SECONDS = 1.0  # time constant of the running level: steady over syllables and pauses


def input_scale(mixture: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """RMS of each mixture (B, L) over its valid samples, floored: the level a non-causal PRESS
    normalises by."""
    if lengths is None:
        return mixture.pow(2).mean(1).sqrt().clamp_min(SCALE_FLOOR)
    valid = torch.arange(mixture.shape[1], device=mixture.device) < lengths[:, None]
    power = (mixture * valid).pow(2).sum(1) / lengths.clamp_min(1).to(mixture.dtype)
    return power.sqrt().clamp_min(SCALE_FLOOR)


def level_decay(sample_rate: int, patch: int) -> float:
    """The running level's weight on the previous frame: exp(-frame length / `LEVEL_SECONDS`)."""
    return math.exp(-patch / (LEVEL_SECONDS * sample_rate))


def level_start(batch: int, like: torch.Tensor) -> torch.Tensor:
    """The running level's state before the first frame (B, 2): no power seen, no weight."""
    return like.new_zeros(batch, 2)


def running_level(x: torch.Tensor, carry: torch.Tensor, decay: float, patch: int,
                  mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The level of every frame of x (B, T P) and the state after the last frame: ((B, T), (B, 2)).

    With p_f the mean square of frame f, the state carries e_f = d e_{f-1} + (1 - d) p_f and
    w_f = d w_{f-1} + (1 - d), and the level is sqrt(e_f / w_f), floored at SCALE_FLOOR: a mean of
    the power so far weighted by d^age. Starting from e = w = 0 (`level_start`), the first frame's
    level is its own RMS and no constant initial level is assumed, so scaling the input by g scales
    every level by g (above the floor) and the network's outputs follow exactly, as with
    `input_scale`. Frames with mask 0 (padding, (B, T)) leave the state as it is. A frame's level
    depends on that frame and earlier ones only.
    """
    B = x.shape[0]
    power = x.reshape(B, -1, patch).pow(2).mean(-1)                          # (B, T)
    m = torch.ones_like(power) if mask is None else mask
    a = torch.addcmul(1.0 - m, m, torch.full_like(m, decay))                 # padding: hold
    b = torch.stack([power * m, m], dim=-1) * (1.0 - decay)                  # (B, T, 2)
    state = scan_from(a[..., None].expand(-1, -1, 2), b, carry)              # (B, T, 2): e, w
    e, w = state.unbind(-1)
    # w is 0 before the first valid frame (e too), at least 1 - decay after it
    level = (e / w.clamp_min(1.0 - decay)).sqrt().clamp_min(SCALE_FLOOR)
    return level, state[:, -1]


def sample_level(level: torch.Tensor, patch: int) -> torch.Tensor:
    """The level of every sample (B, T P) from the level of every frame (B, T). (An expand, not
    `repeat_interleave`, whose ONNX form loses the shape that the analysis filters' reshape needs.)"""
    return level.unsqueeze(-1).expand(*level.shape, patch).flatten(-2)


def block_power(level: torch.Tensor, mask: torch.Tensor, frames_per_block: int) -> torch.Tensor:
    """The mean squared level over each likelihood block's valid frames (B, nb), from the level and
    mask of every frame (B, T): what a causal model's beta of that block is scaled by."""
    B = level.shape[0]
    total = (level.pow(2) * mask).reshape(B, -1, frames_per_block).sum(-1)
    count = mask.reshape(B, -1, frames_per_block).sum(-1).clamp_min(1.0)
    return total / count
