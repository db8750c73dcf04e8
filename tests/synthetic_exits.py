"""Synthetic blocks whose error variance is drawn from a known inverse-gamma (test helper).

Each of N items is one speaker (S = 1) and one likelihood block of n samples. The mixture x̃ and
the estimate x̂ (Gaussian, per-item power; x̃ = x̂ + an interferer) are what the network sees; the
reference is then drawn as x = x̂ + e, e ~ N(0, σ² I), σ² ~ InvGamma(α, β): exactly the model the
exit conditions assume.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Blocks(NamedTuple):
    alpha: Tensor  # (N, 1, 1) float64
    beta: Tensor  # (N, 1, 1)
    estimate: Tensor  # (N, 1, n)
    reference: Tensor  # (N, 1, n)
    mixture: Tensor  # (N, n)
    sigma2: Tensor  # (N,) the drawn error variances


def make_blocks(
    items: int, n: int, seed: int, alpha_low: float = 1.5, alpha_high: float = 6.0
) -> Blocks:
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    alpha = torch.empty(items, dtype=f64).uniform_(alpha_low, alpha_high, generator=g)
    # predicted error power β/α between -40 and -20 dB
    beta = alpha * 10 ** (-torch.empty(items, dtype=f64).uniform_(2.0, 4.0, generator=g))
    gamma = torch.distributions.Gamma(alpha, torch.ones_like(alpha))
    torch.manual_seed(seed)
    sigma2 = beta / gamma.sample()
    est_power = 10 ** (-torch.empty(items, dtype=f64).uniform_(0.5, 2.0, generator=g))
    estimate = torch.randn(items, n, generator=g, dtype=f64) * est_power.sqrt()[:, None]
    interferer = torch.randn(items, n, generator=g, dtype=f64) * est_power.sqrt()[:, None] * 0.5
    error = torch.randn(items, n, generator=g, dtype=f64) * sigma2.sqrt()[:, None]
    reference = estimate + error
    mixture = estimate + interferer  # the network's inputs x̃, x̂ are fixed before x is drawn
    return Blocks(
        alpha[:, None, None],
        beta[:, None, None],
        estimate[:, None],
        reference[:, None],
        mixture,
        sigma2,
    )
