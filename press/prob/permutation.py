"""The speaker-permutation solver of press.engine.permutation on tensors, for the training loss.

The training loss (shared PIT) solves a batch of (S, S) costs every step; to keep that on the
device with no host sync, the exhaustive search runs here in torch over the same permutation table,
with the same tie rule (the first of equal costs). Beyond S = 4 it hands the costs to the engine's
Hungarian solver on the host.
"""

from __future__ import annotations

import torch

from press.engine import permutation


def best_permutation(cost: torch.Tensor) -> torch.Tensor:
    """perm (B, S) minimising sum_j cost[b, j, perm[b, j]]; cost: (B, S, S) estimate x target."""
    n_src = cost.shape[-1]
    if n_src > permutation.EXHAUSTIVE_MAX:
        return torch.as_tensor(permutation.best_permutation(cost.detach().cpu().double().numpy()), device=cost.device)
    table = torch.as_tensor(permutation.permutation_table(n_src), device=cost.device)        # (P, S)
    return table[cost[:, torch.arange(n_src, device=cost.device), table].sum(-1).argmin(-1)]
