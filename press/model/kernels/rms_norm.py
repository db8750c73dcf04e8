"""`rms_norm`: RMSNorm over the last dimension as one operator (`rms_norm.cpp`), forward and
backward each one pass, keeping only x and one number per row for the backward."""

from __future__ import annotations

import torch


@torch.library.custom_op("press::rms_norm", mutates_args=())
def _rms_norm_op(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.ops.press_kernels.rms_norm_forward(x, weight, eps))


@_rms_norm_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), x.new_empty(x.numel() // x.shape[-1])


def _save(ctx, inputs: tuple, output: tuple) -> None:
    ctx.save_for_backward(inputs[0], inputs[1], output[1])


def _backward(ctx, dy: torch.Tensor, _dr: torch.Tensor):
    x, weight, r = ctx.saved_tensors
    dx, dweight = torch.ops.press_kernels.rms_norm_backward(x, weight, r, dy.contiguous())
    return dx, dweight, None


_rms_norm_op.register_autograd(_backward, setup_context=_save)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x², -1) + eps) * weight. Call only where `kernels.usable(x)` holds."""
    y, _ = _rms_norm_op(x.contiguous(), weight.contiguous(), eps)
    return y
