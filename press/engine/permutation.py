"""The one speaker-permutation solver: which estimate belongs to which source.

Every place that pairs S estimates with S references builds an (S, S) cost and asks this module
for the assignment, directly (the stitcher: speaker order across segments) or through
press.prob.permutation on tensors (the training loss's shared PIT, evaluation metrics and figures),
so that they can never disagree on ties or on S > 4.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
from scipy.optimize import linear_sum_assignment

EXHAUSTIVE_MAX = 4   # up to S = 4 every one of the S! permutations is scored (at most 24)


@cache
def permutation_table(n_src: int) -> np.ndarray:
    """(S!, S) every permutation, in lexicographic order: of equal costs, the first one wins."""
    return np.array(list(itertools.permutations(range(n_src))), dtype=np.int64)


def best_permutation(cost: np.ndarray) -> np.ndarray:
    """perm (B, S) minimising sum_j cost[b, j, perm[b, j]]; cost: (B, S, S) estimate x target.

    Exhaustive for S <= 4; the Hungarian algorithm (scipy) beyond, which finds the same optimum for
    a sum of pairwise costs.
    """
    n_src = cost.shape[-1]
    if n_src <= EXHAUSTIVE_MAX:
        table = permutation_table(n_src)
        return table[cost[:, np.arange(n_src), table].sum(-1).argmin(-1)]
    return np.stack([linear_sum_assignment(c)[1] for c in np.asarray(cost, dtype=np.float64)])
