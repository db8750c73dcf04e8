"""The one speaker-permutation solver: which estimate belongs to which source.

Every place that pairs S estimates with S references — the training loss (shared PIT), the
stitcher (speaker order across segments), evaluation metrics and figures — builds an (S, S) cost
and asks this module for the assignment, so that they can never disagree on ties or on S > 4.
"""

from __future__ import annotations

import itertools

import torch
from scipy.optimize import linear_sum_assignment


def best_permutation(cost: torch.Tensor) -> torch.Tensor:
    """perm (B, S) minimising sum_j cost[b, j, perm[b, j]]; cost: (B, S, S) estimate x target.

    Exhaustive and batched on the device for S <= 4 (at most 24 permutations); the Hungarian
    algorithm (scipy) beyond, which finds the same optimum for a sum of pairwise costs.
    """
    B, S, _ = cost.shape
    if S <= 4:
        perms = torch.tensor(list(itertools.permutations(range(S))), device=cost.device)  # (P, S)
        totals = cost[:, torch.arange(S, device=cost.device), perms].sum(-1)   # (B, P)
        return perms[totals.argmin(-1)]
    c = cost.detach().cpu().double().numpy()
    return torch.stack([torch.as_tensor(linear_sum_assignment(ci)[1]) for ci in c]).to(cost.device)
