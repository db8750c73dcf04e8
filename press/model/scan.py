"""The parallel linear scan h_t = a_t * h_{t-1} + b_t behind the linear-RNN blocks.

Computed without a Python loop over time: a chunked Hillis-Steele scan. Inside chunks of `chunk`
frames, log2(chunk) doubling steps combine (a, b) pairs with the associative operator
(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2); a second, much shorter scan over the chunk ends carries
the state across chunks. Only multiplications and additions of the true values: no logarithms, no
division by running products, so it is exact up to float rounding for any decay in [0, 1] and any
sign of b. Work is O(T log chunk), depth O(log T).

Autograd does not differentiate through the doubling steps (it would keep every step's copy):
the backward pass of a linear recurrence is itself one, run backwards in time,
    δ_t = g_t + a_{t+1} δ_{t+1},   ∂L/∂b_t = δ_t,   ∂L/∂a_t = δ_t h_{t-1},
so `linear_scan` is an autograd Function that saves only a and h and scans again for the gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _doubling_scan_(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan along dim -2, in place on a and b (no autograd): (prod of a to t, h_t)."""
    d = 1
    while d < a.shape[-2]:
        b[..., d:, :] += a[..., d:, :] * b[..., :-d, :]   # the product is a new tensor: no aliasing
        a[..., d:, :] = a[..., d:, :] * a[..., :-d, :]
        d *= 2
    return a, b


@torch.no_grad()
def _scan(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """Forward-in-time scan along dim -2 of (..., T, H); returns h (a and b are not modified)."""
    T = a.shape[-2]
    pad = (-T) % chunk
    # a = 1, b = 0 in the padding: the state passes through unchanged; the pads are also the copies
    # the in-place scan works on
    a = F.pad(a, (0, 0, 0, pad), value=1.0).unflatten(-2, (-1, chunk))   # (..., N, c, H)
    b = F.pad(b, (0, 0, 0, pad)).unflatten(-2, (-1, chunk))
    a_cum, h = _doubling_scan_(a, b)                                      # local, state 0 at chunk start
    _, ends = _doubling_scan_(a_cum[..., -1, :].clone(), h[..., -1, :].clone())  # true chunk-end states
    h[..., 1:, :, :] += a_cum[..., 1:, :, :] * ends[..., :-1, None, :]
    return h.flatten(-3, -2)[..., :T, :]


def fixed_depth_scan(a: torch.Tensor, b: torch.Tensor, chunk: int, steps: int) -> torch.Tensor:
    """`_scan` for export: the same chunked doubling scan, with no Python control flow on T.

    T must be a multiple of `chunk` (the exporter's caller pads the input so that it is). The scan
    over chunk ends runs a fixed `steps` doubling steps written as shift-by-padding, so one traced
    graph serves any T up to chunk * 2**steps; a step whose shift reaches past the start combines
    with a = 1, b = 0 and changes nothing, so the result equals `_scan` bit for bit.
    """
    def shift(x: torch.Tensor, d: int, value: float) -> torch.Tensor:
        return F.pad(x, (0, 0, d, 0), value=value)[..., :-d, :]   # x_{t-d}, `value` before the start

    def doubling(a: torch.Tensor, b: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = 1
        for _ in range(n_steps):
            b = b + a * shift(b, d, 0.0)
            a = a * shift(a, d, 1.0)
            d *= 2
        return a, b

    a = a.unflatten(-2, (-1, chunk))                                     # (..., N, c, H)
    b = b.unflatten(-2, (-1, chunk))
    a_cum, h = doubling(a, b, (chunk - 1).bit_length())
    _, ends = doubling(a_cum[..., -1, :], h[..., -1, :], steps)          # (..., N, H)
    h = h + a_cum * shift(ends, 1, 0.0)[..., None, :]
    return h.flatten(-3, -2)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
        h = _scan(a, b, chunk)
        ctx.save_for_backward(a, h)
        ctx.chunk = chunk
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, h = ctx.saved_tensors
        a_next = F.pad(a[..., 1:, :], (0, 0, 0, 1))                         # a_{t+1}, 0 past the end
        delta = _scan(a_next.flip(-2), g.flip(-2), ctx.chunk).flip(-2)      # δ_t = g_t + a_{t+1} δ_{t+1}
        h_prev = F.pad(h[..., :-1, :], (0, 0, 1, 0))                         # h_{t-1}, 0 before the start
        return delta * h_prev, delta, None


def linear_scan(a: torch.Tensor, b: torch.Tensor, chunk: int = 8, reverse: bool = False) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, along dim -2.

    a, b: (..., T, H). With `reverse`, the recursion runs from the last frame to the first.
    """
    if reverse:
        return linear_scan(a.flip(-2), b.flip(-2), chunk).flip(-2)
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _LinearScan.apply(a, b, chunk)
    return _scan(a, b, chunk)
