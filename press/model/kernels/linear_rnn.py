"""`linear_rnn`: the linear-RNN mixer between its two projections as one operator.

    y = h * silu(g),  h_t = a_t h_{t-1} + (1 - a_t) v_t,  a = m sigmoid(f) + 1 - m,  [v | f | g] = p + bias

A `torch.library` custom operator around the compiled kernel (`linear_rnn.cpp`): autograd gets
the kernel's one-pass backward, which needs only p, the mask and h (a quarter less than the eager
graph keeps), and torch.compile sees one opaque call, as it does `press::scan`. The in-projection's
bias comes in separately: the kernel adds it as it reads p, which saves addmm's copy of it into a
(N, T, 3H) output (a tenth of `press4-s` inference, docs/experiments.md, "Where the CPU time goes").
"""

from __future__ import annotations

import torch

from press.model import kernels


@torch.library.custom_op("press::linear_rnn", mutates_args=())
def _linear_rnn_op(p: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, split: int,
                   keep_state: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.ops.press_kernels.linear_rnn_forward(p, bias, mask, split, keep_state))


@_linear_rnn_op.register_fake
def _(p: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, split: int,
      keep_state: bool) -> tuple[torch.Tensor, torch.Tensor]:
    N, T, H3 = p.shape
    return p.new_empty(N, T, H3 // 3), p.new_empty((N, T, H3 // 3) if keep_state else (0,))


def _save(ctx, inputs: tuple, output: tuple) -> None:
    p, bias, mask, ctx.split, _ = inputs
    ctx.save_for_backward(p, bias, mask, output[1])


def _backward(ctx, dy: torch.Tensor, _dh: torch.Tensor):
    p, bias, mask, h = ctx.saved_tensors
    dp, dbias = torch.ops.press_kernels.linear_rnn_backward(p, bias, mask, h, dy.contiguous(), ctx.split)
    return dp, dbias, None, None, None


_linear_rnn_op.register_autograd(_backward, setup_context=_save)


def linear_rnn(p: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, split: int) -> torch.Tensor:
    """y (N, T, H) from p (N, T, 3H) and bias (3H,), [v | f | g] = p + bias, and the frame mask
    (N, T, 1): channels [:split] run forward in time, [split:] backward. Call only where
    `kernels.usable(p)` holds."""
    keep = torch.is_grad_enabled() and (p.requires_grad or bias.requires_grad)
    y, _ = _linear_rnn_op(p.contiguous(), bias.contiguous(), mask.to(p.dtype).contiguous(), split, keep)
    return y
