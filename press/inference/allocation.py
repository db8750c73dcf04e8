"""Compute-budget policy (beyond the paper): the best exit per segment under a mean-MAC budget.

Instead of a target (t, p) the user gives a compute budget. Each segment i has, for every exit k,
an expected quality q[i, k] (e.g. the expected exit-SNR in dB from `expected_exit_snr_db`, or a
probability of meeting a target) and a cost c[i, k] (MACs). We want exits k_i maximising
Σ_i q[i, k_i] subject to mean_i c[i, k_i] ≤ budget: a multiple-choice knapsack.

`allocate_budget` solves it the Lagrangian way. Per segment, only exits on the upper concave hull
of (cost, quality) can be optimal for some price of compute, and along the hull the marginal gain
per MAC falls. Starting every segment at its cheapest exit, the globally best upgrades (largest
gain per MAC) are bought while they fit. Up to the first upgrade that does not fit this is the
exact optimum of the LP relaxation, so the result is at most one upgrade's gain below the
integer optimum (max over segments of one hull step), and it is exact whenever the budget lands
on a hull breakpoint. After that first miss, cheaper later upgrades that still fit are bought too.

`allocate_budget` needs every exit's quality, i.e. the whole network run on every segment: it is
the offline optimum (an upper bound for analysis, or a two-pass mode). What runs online, exit by
exit, is a threshold rule: leave at the first exit whose expected quality reaches τ (the dynamic
rule with a quality threshold instead of (t, p)). `threshold_for_budget` picks, on calibration
data, the highest τ whose mean cost stays within the budget; `first_exit_reaching` applies it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from press.errors import PressError

_DB = 10.0 / math.log(10.0)


def expected_exit_snr_db(
    alpha: Tensor,
    beta: Tensor,
    estimate_energy: Tensor,
    residual_energy: Tensor,
    count: Tensor,
    p_ref: Tensor,
    nodes: int = 513,
) -> Tensor:
    """E[exit-SNR in dB] under the predicted precision λ ~ Gamma(α, β), per speaker and block.

    Uses the same model as the exit conditions (press.exits): exit-SNR = max(1 + ‖x̂‖²λ/n,
    1 + ‖x̂ − x̃‖²λ/n, P_ref·λ). The expectation of its log is taken over w = ln λ, whose density
    ∝ exp(αw − βe^w) has mean ψ(α) − ln β, sd sqrt(ψ'(α)), a long exponential left tail and a
    double-exponential right one. A self-normalised trapezoid rule on `nodes` uniform points from
    20 sd below the mean to ln((α + 12√α + 40)/β) integrates it to < 1e-6 dB for α ≥ 1 and
    < 1e-3 dB at α = 0.3 (4e-3 dB at α = 0.05), measured against scipy.integrate.quad in the tests.
    Shapes: all inputs broadcast to (..., S, nb); returns that shape.
    """
    alpha, beta, e_est, e_res, count, p_ref = (
        torch.as_tensor(v, dtype=torch.float64)
        for v in (alpha, beta, estimate_energy, residual_energy, count, p_ref)
    )
    sd = torch.special.polygamma(1, alpha).sqrt()
    lo = torch.special.digamma(alpha) - torch.log(beta) - 20.0 * sd
    hi = torch.log(alpha + 12.0 * alpha.sqrt() + 40.0) - torch.log(beta)  # P(λ > e^hi) < 1e-13
    grid = torch.linspace(0.0, 1.0, nodes, dtype=torch.float64)  # (nodes,)
    w = lo.unsqueeze(-1) + (hi - lo).unsqueeze(-1) * grid  # (..., nodes), uniform spacing
    log_density = alpha.unsqueeze(-1) * w - beta.unsqueeze(-1) * torch.exp(w)
    weights = torch.softmax(log_density, dim=-1)  # uniform spacing: trapezoid = plain sum
    n = count.clamp_min(1.0)
    log_gain = torch.maximum(
        torch.nn.functional.softplus(torch.log(e_est / n).unsqueeze(-1) + w),
        torch.nn.functional.softplus(torch.log(e_res / n).unsqueeze(-1) + w),
    )
    log_ratio = torch.maximum(log_gain, torch.log(p_ref).unsqueeze(-1) + w)
    return _DB * (weights * log_ratio).sum(-1)


def _upper_hull(cost: list[float], quality: list[float]) -> list[int]:
    """Indices of the upper concave hull of points (cost, quality), from the cheapest point on.

    Dominated points (costlier but not better) are dropped; the kept points have strictly
    increasing cost and quality and strictly decreasing slopes.
    """
    order = sorted(range(len(cost)), key=lambda k: (cost[k], -quality[k]))
    hull: list[int] = []
    for k in order:
        if hull and (cost[k] == cost[hull[-1]] or quality[k] <= quality[hull[-1]]):
            continue
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            # drop j if it lies on or below the chord from i to k
            if (quality[j] - quality[i]) * (cost[k] - cost[i]) <= (quality[k] - quality[i]) * (
                cost[j] - cost[i]
            ):
                hull.pop()
            else:
                break
        hull.append(k)
    return hull


def allocate_budget(quality: Tensor, cost: Tensor, budget: float) -> Tensor:
    """Choose one exit per segment: highest total quality with mean cost ≤ budget.

    quality: (N, K) expected quality per segment and exit (higher is better);
    cost: (K,) or (N, K) cost per exit (e.g. MACs of the segment up to that exit);
    budget: the allowed mean cost per segment, in the units of `cost`.
    Returns the chosen exit index per segment, (N,) int64. Raises PressError when even the
    cheapest exits exceed the budget. See the module docstring for the algorithm and its bound.
    """
    quality = torch.as_tensor(quality, dtype=torch.float64)
    cost = torch.broadcast_to(torch.as_tensor(cost, dtype=torch.float64), quality.shape)
    n_seg = quality.shape[0]
    q, c = quality.tolist(), cost.tolist()
    hulls = [_upper_hull(c[i], q[i]) for i in range(n_seg)]
    remaining = budget * n_seg - sum(c[i][h[0]] for i, h in enumerate(hulls))
    if remaining < -1e-9 * max(abs(budget * n_seg), 1.0):
        cheapest = sum(c[i][h[0]] for i, h in enumerate(hulls)) / max(n_seg, 1)
        raise PressError(
            f"compute budget {budget:g} is below the cheapest possible mean cost {cheapest:g}"
        )
    # (gain per cost, segment, step): every upgrade along every segment's hull
    steps = []
    for i, h in enumerate(hulls):
        for s in range(1, len(h)):
            dc, dq = c[i][h[s]] - c[i][h[s - 1]], q[i][h[s]] - q[i][h[s - 1]]
            steps.append((dq / dc, i, s))
    steps.sort(key=lambda t: (-t[0], t[1], t[2]))
    position = [0] * n_seg  # current step on each hull
    frozen = [False] * n_seg  # a skipped step blocks the later ones of that hull
    for _, i, s in steps:
        if frozen[i] or position[i] != s - 1:
            continue
        dc = c[i][hulls[i][s]] - c[i][hulls[i][s - 1]]
        if dc <= remaining + 1e-12 * max(abs(remaining), 1.0):
            remaining -= dc
            position[i] = s
        else:
            frozen[i] = True
    return torch.tensor([hulls[i][position[i]] for i in range(n_seg)], dtype=torch.int64)


def first_exit_reaching(quality: Tensor, threshold: float) -> Tensor:
    """Index of the first exit whose quality reaches `threshold`, the last exit if none does.

    quality: (N, K), exits in network order. Returns (N,) int64. This is what an exit-by-exit
    runner does online: at exit k it only needs quality[:, k].
    """
    quality = torch.as_tensor(quality, dtype=torch.float64)
    reached = quality >= threshold  # (N, K)
    reached[:, -1] = True
    return reached.to(torch.int8).argmax(dim=1)


def threshold_for_budget(quality: Tensor, cost: Tensor, budget: float) -> float:
    """Highest threshold τ for which `first_exit_reaching(quality, τ)` has mean cost ≤ budget.

    quality: (N, K) per-segment expected quality at every exit, from calibration data;
    cost: (K,) or (N, K), non-decreasing along the exits (deeper never costs less). Raising τ
    can only move segments deeper, so the mean cost is a non-decreasing step function of τ that
    changes only at the values in `quality`: a binary search over them finds the largest feasible
    one. Returns +inf when the budget covers the last exit everywhere. Raises PressError when even
    exiting everything at its first exit exceeds the budget.
    """
    quality = torch.as_tensor(quality, dtype=torch.float64)
    cost = torch.broadcast_to(torch.as_tensor(cost, dtype=torch.float64), quality.shape)
    if (cost.diff(dim=1) < 0).any():
        raise PressError("exit costs must not decrease with depth")
    rows = torch.arange(quality.shape[0])

    def mean_cost(tau: float) -> float:
        return float(cost[rows, first_exit_reaching(quality, tau)].mean())

    if mean_cost(math.inf) <= budget:
        return math.inf
    candidates = torch.unique(quality).tolist()  # sorted ascending
    if mean_cost(candidates[0]) > budget:
        raise PressError(
            f"compute budget {budget:g} is below the cheapest possible mean cost "
            f"{mean_cost(candidates[0]):g}"
        )
    lo, hi = 0, len(candidates) - 1  # candidates[lo] feasible; find the last feasible
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mean_cost(candidates[mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return candidates[lo]
