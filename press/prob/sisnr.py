"""SI-SNR and its improvement on tensors (batched, with valid lengths, differentiable).

SI-SNR (scale-invariant SNR, a.k.a. SI-SDR, Le Roux et al. 2019) with zero-mean signals:
    s_t = <x̂, x> x / ||x||²,  e = x̂ - s_t,  SI-SNR = 10 log10(||s_t||² / ||e||²).
It sits low in the stack because the loss's SI-SNR term and training's validation use it, not
only evaluation (`press.evaluation.metrics` holds the metrics that only evaluation needs).
"""

from __future__ import annotations

import torch

EPS = 1e-8


def _valid_mask(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor | None:
    if lengths is None:
        return None
    mask = torch.arange(x.shape[-1], device=x.device) < lengths.reshape(-1, *([1] * (x.dim() - 1)))
    return mask.to(x.dtype)


def si_snr(estimate: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None,
           eps: float = EPS) -> torch.Tensor:
    """SI-SNR in dB over the last axis. estimate, target: (B, ..., L); lengths: (B,) or None."""
    mask = _valid_mask(target, lengths)
    n = target.shape[-1] if mask is None else mask.sum(-1, keepdim=True)
    if mask is not None:
        estimate, target = estimate * mask, target * mask
    estimate = estimate - estimate.sum(-1, keepdim=True) / n
    target = target - target.sum(-1, keepdim=True) / n
    if mask is not None:
        estimate, target = estimate * mask, target * mask
    dot = (estimate * target).sum(-1, keepdim=True)
    projection = dot * target / (target.pow(2).sum(-1, keepdim=True) + eps)
    noise = estimate - projection
    ratio = (projection.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps)
    return 10 * torch.log10(ratio)


def si_snri(estimate: torch.Tensor, target: torch.Tensor, mixture: torch.Tensor,
            lengths: torch.Tensor | None = None) -> torch.Tensor:
    """SI-SNR improvement in dB. estimate, target: (B, S, L); mixture: (B, L)."""
    baseline = si_snr(mixture.unsqueeze(1).expand_as(target), target, lengths)
    return si_snr(estimate, target, lengths) - baseline
