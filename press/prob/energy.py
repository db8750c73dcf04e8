"""Block energies: the unit of every likelihood, probability and calibration score (docs/exits.md).

A likelihood block is `block` consecutive samples from the start of a signal; its energy is the
sum of squares over its valid samples and its count the number of those samples (the n of the
Student-t and of the exit probabilities). The loss, the exit rules, calibration and evaluation
all cut signals the same way through this module.
"""

from __future__ import annotations

import torch
from torch import Tensor

from press.errors import PressError


def block_energy(
    x: Tensor, block: int, lengths: Tensor | None = None, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-block sum of squares and valid-sample count of signals x (..., L), returned in float64.

    Blocks are consecutive runs of `block` samples from the start; nb = ceil(L / block) and the
    last block may be partial. Samples at or beyond `lengths` (shape broadcastable to x's leading
    dims) or where `mask` (broadcastable to x, True = valid) is False do not count. Returns
    (energy, count), both (..., nb) float64; count is the n of docs/exits.md for each block.
    """
    if block <= 0:
        raise PressError(f"block length must be a positive number of samples, got {block}")
    length = x.shape[-1]
    nb = -(-length // block)
    # Squares and block sums stay in the input's dtype (torch sums pairwise: float32 energies are
    # good to ~1e-6 relative, far below the model's own uncertainty) and only the (..., nb)
    # results go to float64: casting the whole signal first made this hot path 10x slower.
    sq = (x if x.dtype in (torch.float32, torch.float64) else x.float()).square()
    if lengths is None and mask is None:
        energy = _pad_blocks(sq, nb, block).sum(-1).to(torch.float64)
        start = torch.arange(nb, device=x.device, dtype=torch.float64) * block
        count = (length - start).clamp(max=block)  # (nb,): full blocks, then the partial one
        return energy, torch.broadcast_to(count, energy.shape)
    valid = torch.ones(length, dtype=torch.bool, device=x.device)
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device)
        valid = torch.arange(length, device=x.device) < lengths.unsqueeze(-1)  # (..., L)
    if mask is not None:
        valid = valid & mask.to(torch.bool)
    valid = torch.broadcast_to(valid, x.shape)
    sq = torch.where(valid, sq, torch.zeros((), dtype=sq.dtype, device=x.device))
    energy = _pad_blocks(sq, nb, block).sum(-1).to(torch.float64)
    return energy, _pad_blocks(valid, nb, block).sum(-1).to(torch.float64)


def _pad_blocks(x: Tensor, nb: int, block: int) -> Tensor:
    """(..., L) -> (..., nb, block), zero-padding the partial last block (no copy when L = nb·B)."""
    pad = nb * block - x.shape[-1]
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.unflatten(-1, (nb, block))


def mean_power(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Mean power of x (..., L) over its valid samples, float64 (...,): the default P_ref."""
    energy, count = block_energy(x, max(x.shape[-1], 1), lengths=lengths)  # (..., 1)
    return (energy / count.clamp_min(1.0)).squeeze(-1)
