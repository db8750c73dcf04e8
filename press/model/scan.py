"""The parallel linear scan h_t = a_t * h_{t-1} + b_t behind the linear-RNN blocks.

Computed without a Python loop over time: a chunked Hillis-Steele scan. Inside chunks of `chunk`
frames, log2(chunk) doubling steps combine (a, b) pairs with the associative operator
(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2); a second, much shorter scan over the chunk ends carries
the state across chunks. Only multiplications and additions of the true values: no logarithms, no
division by running products, so it is exact up to float rounding for any decay in [0, 1] and any
sign of b, and autograd differentiates it as it stands. Work is O(T log chunk), depth O(log T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _doubling_scan(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan along dim -2. Returns (prod of a up to t, h_t). a, b: (..., T, H).

    Step d combines every position with the one d steps earlier. Each step writes into a fresh
    copy (autograd keeps the old values) with one fused multiply-add on the shifted slice.
    """
    d = 1
    while d < a.shape[-2]:
        b_next = b.clone()
        b_next[..., d:, :].addcmul_(a[..., d:, :], b[..., :-d, :])
        a_next = a.clone()
        a_next[..., d:, :].mul_(a[..., :-d, :])
        a, b, d = a_next, b_next, 2 * d
    return a, b


def linear_scan(a: torch.Tensor, b: torch.Tensor, chunk: int = 8, reverse: bool = False) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, along dim -2.

    a, b: (..., T, H). With `reverse`, the recursion runs from the last frame to the first.
    """
    if reverse:
        return linear_scan(a.flip(-2), b.flip(-2), chunk).flip(-2)
    T = a.shape[-2]
    pad = (-T) % chunk
    if pad:  # a = 1, b = 0 in the padding: the state passes through unchanged
        a = F.pad(a, (0, 0, 0, pad), value=1.0)
        b = F.pad(b, (0, 0, 0, pad))
    a = a.unflatten(-2, (-1, chunk))                    # (..., N, c, H)
    b = b.unflatten(-2, (-1, chunk))
    a_cum, h = _doubling_scan(a, b)                     # local scans, state 0 at each chunk start
    _, ends = _doubling_scan(a_cum[..., -1, :], h[..., -1, :])  # (..., N, H) true state at chunk ends
    carry = F.pad(ends[..., :-1, :], (0, 0, 1, 0))      # state entering each chunk
    h = torch.addcmul(h, a_cum, carry.unsqueeze(-2))
    return h.flatten(-3, -2)[..., :T, :]

