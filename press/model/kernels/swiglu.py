"""`swiglu`: silu(a) * b from q = [a | b] as one operator (`swiglu.cpp`), with its one-pass backward,
which keeps only q (the eager graph keeps a, silu(a) and b)."""

from __future__ import annotations

import torch


@torch.library.custom_op("press::swiglu", mutates_args=())
def swiglu(q: torch.Tensor) -> torch.Tensor:
    """silu(a) * b for q = [a | b] along the last dimension. Call only where `kernels.usable(q)` holds."""
    return torch.ops.press_kernels.swiglu_forward(q.contiguous())


@swiglu.register_fake
def _(q: torch.Tensor) -> torch.Tensor:
    return q.new_empty(*q.shape[:-1], q.shape[-1] // 2)


def _save(ctx, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[0])


def _backward(ctx, dy: torch.Tensor) -> torch.Tensor:
    (q,) = ctx.saved_tensors
    return torch.ops.press_kernels.swiglu_backward(q.contiguous(), dy.contiguous())


swiglu.register_autograd(_backward, setup_context=_save)
