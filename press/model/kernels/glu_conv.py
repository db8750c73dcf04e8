"""`glu_conv`: the long-convolution mixer between its two projections as one operator.

    z = silu(conv_depthwise(glu(q) * m) + bias),   q = [a | b] (N, T, 2E), glu(q) = a sigmoid(b)

A `torch.library` custom operator around the compiled kernel (`glu_conv.cpp`), which stays in the
(N, T, E) layout: autograd gets the kernel's backward, which keeps only q, the mask and the
convolution's output (it recomputes the GLU), and torch.compile sees one opaque call.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("press::glu_conv", mutates_args=())
def _glu_conv_op(q: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 keep_state: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.ops.press_kernels.glu_conv_forward(q, mask, weight, bias, keep_state))


@_glu_conv_op.register_fake
def _(q: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
      keep_state: bool) -> tuple[torch.Tensor, torch.Tensor]:
    N, T, E2 = q.shape
    return q.new_empty(N, T, E2 // 2), q.new_empty((N, T, E2 // 2) if keep_state else (0,))


def _save(ctx, inputs: tuple, output: tuple) -> None:
    q, mask, weight, _, _ = inputs
    ctx.save_for_backward(q, mask, weight, output[1])


def _backward(ctx, dz: torch.Tensor, _ds: torch.Tensor):
    q, mask, weight, s = ctx.saved_tensors
    dq, dweight, dbias = torch.ops.press_kernels.glu_conv_backward(q, mask, weight, s, dz.contiguous())
    return dq, None, dweight, dbias, None


_glu_conv_op.register_autograd(_backward, setup_context=_save)


def glu_conv(q: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """z (N, T, E) from q (N, T, 2E), the frame mask (N, T, 1), a depthwise weight (E, 1, K) with K
    odd (same-length output) and its bias (E,). Call only where `kernels.usable(q)` holds."""
    keep = torch.is_grad_enabled() and (q.requires_grad or weight.requires_grad or bias.requires_grad)
    z, _ = _glu_conv_op(q.contiguous(), mask.to(q.dtype).contiguous(), weight, bias, keep)
    return z
