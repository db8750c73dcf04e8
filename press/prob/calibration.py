"""Calibration of the predicted error distributions, and post-hoc recalibration (docs/exits.md).

An exit's prediction for a block is σ² ~ InvGamma(α, β) (precision λ = 1/σ² ~ Gamma(α, rate β)).
It is checked against what happened, the observed block error power σ̂² = ‖e‖²/n:

- PIT: u = P(σ² ≤ σ̂²) = CDF_InvGamma(σ̂²; α, β) = Q(α, β/σ̂²); calibrated ⇒ u ~ Uniform(0, 1).
  σ̂² is itself noisy around σ² (relative sd sqrt(2/n), 3 % at n = 2000), which the paper's PIT
  ignores; `pit_values(..., exact=True)` instead uses the exact predictive of σ̂² (a scaled
  F(n, 2α): u = I_{‖e‖²/(‖e‖² + 2β)}(n/2, α)), uniform for any n and any α.
- calibration curve (empirical CDF of u against nominal level) and its KS distance;
- CRPS of the predicted error power in dB (finite for every α > 0, unlike CRPS on σ², which
  needs α > 1, and in the same unit as the targets);
- reliability diagram and expected calibration error of P(exit-SNR ≥ t).

Post-hoc recalibration rescales α and β with two constants, pooled or one pair per exit, fitted on
a validation set (least CRPS or maximum likelihood); it is stored with a checkpoint as plain floats
and applied at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.special
import torch
from torch import Tensor

from press.errors import PressError
from press.prob.exits import gammaincc

_DB = 10.0 / math.log(10.0)


def pit_values(
    alpha: Tensor, beta: Tensor, error_energy: Tensor, count: Tensor, exact: bool = False
) -> Tensor:
    """Probability integral transform of the observed block error power, (..., S, nb) float64.

    alpha, beta, error_energy (‖e‖² = ‖x − x̂‖²), count (n): broadcastable, e.g. from
    press.prob.energy.block_energy. exact=False is the paper's PIT (CDF of InvGamma(α, β) at ‖e‖²/n);
    exact=True is the CDF of the exact predictive of ‖e‖²/n (see module docstring, via scipy).
    Blocks with n = 0 are padding and give u = 0: select valid blocks (count > 0) before testing.
    """
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    beta = torch.as_tensor(beta, dtype=torch.float64)
    energy = torch.as_tensor(error_energy, dtype=torch.float64)
    count = torch.as_tensor(count, dtype=torch.float64)
    if exact:
        alpha, beta, energy, count = torch.broadcast_tensors(alpha, beta, energy, count)
        x = (energy / (energy + 2.0 * beta)).cpu().numpy()
        u = scipy.special.betainc(
            np.maximum(count.cpu().numpy(), 1.0) / 2.0, alpha.cpu().numpy(), x
        )
        return torch.from_numpy(np.where(count.cpu().numpy() > 0, u, 0.0)).to(alpha.device)
    sigma2 = energy / count.clamp_min(1.0)
    arg = torch.where(sigma2 > 0, beta / sigma2.clamp_min(1e-300), math.inf)
    return gammaincc(alpha, arg)


def calibration_curve(u: Tensor, levels: int = 101) -> tuple[Tensor, Tensor]:
    """Empirical CDF of PIT values at `levels` nominal levels in [0, 1]: (nominal, observed).

    A calibrated model lies on the diagonal; above it means errors smaller than predicted
    (under-confident), below it larger (over-confident).
    """
    u = torch.as_tensor(u, dtype=torch.float64).flatten()
    nominal = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
    observed = (u.unsqueeze(0) <= nominal.unsqueeze(1)).to(torch.float64).mean(1)
    return nominal, observed


def ks_statistic(u: Tensor) -> float:
    """Kolmogorov–Smirnov distance sup |F̂(q) − q| of PIT values from Uniform(0, 1), exact."""
    u = torch.sort(torch.as_tensor(u, dtype=torch.float64).flatten()).values
    n = u.numel()
    if n == 0:
        raise PressError("no PIT values to test (every block was padding?)")
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - u, u - (i - 1) / n).max())


def crps_error_power_db(
    alpha: Tensor, beta: Tensor, error_energy: Tensor, count: Tensor, nodes: int = 513
) -> Tensor:
    """CRPS (dB) of the predicted error power 10·log10 σ² against the observed 10·log10(‖e‖²/n).

    CRPS(F, y) = ∫ (F(z) − 1{z ≥ y})² dz, F(z) = P(ln σ² ≤ z) = Q(α, β e^{−z}). F rises from 0 to 1
    inside [lo, hi] = [−ln((α + 12√α + 40)/β), −(ψ(α) − ln β) + 20·sqrt(ψ'(α))] (outside it is
    0 or 1 to < 1e-9), so the integral is a trapezoid rule on [lo, y] and [y, hi] (y clipped to
    [lo, hi]) plus the exact length of y outside [lo, hi]; within 1e-4 dB of scipy.integrate.quad
    (checked in the tests). Lower is better; 0 only for a point mass at the truth. Blocks with
    n = 0 give y at the floor (1e-300 power): select valid blocks first.
    Returns (..., S, nb) float64.
    """
    alpha, beta, energy, count = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float64) for v in (alpha, beta, error_energy, count))
    )
    y = torch.log((energy / count.clamp_min(1.0)).clamp_min(1e-300))
    lo = -(torch.log(alpha + 12.0 * alpha.sqrt() + 40.0) - torch.log(beta))
    hi = (
        -(torch.special.digamma(alpha) - torch.log(beta))
        + 20.0 * torch.special.polygamma(1, alpha).sqrt()
    )
    yc = torch.minimum(torch.maximum(y, lo), hi)
    grid = torch.linspace(0.0, 1.0, nodes, dtype=torch.float64)  # (nodes,)

    def trapezoid(a: Tensor, b: Tensor, below: bool) -> Tensor:
        z = a.unsqueeze(-1) + (b - a).unsqueeze(-1) * grid  # (..., nodes)
        cdf = gammaincc(alpha.unsqueeze(-1), beta.unsqueeze(-1) * torch.exp(-z))
        f = cdf.square() if below else (1.0 - cdf).square()
        return (b - a) * torch.trapezoid(f, grid, dim=-1)

    crps = trapezoid(lo, yc, True) + trapezoid(yc, hi, False)
    crps = crps + (y - hi).clamp_min(0.0) + (lo - y).clamp_min(0.0)
    return _DB * crps


class ReliabilityDiagram(NamedTuple):
    """Binned predicted probability against observed frequency.

    edges: (bins + 1,); mean_predicted, observed: (bins,), NaN where a bin is empty;
    count: (bins,) int64; ece: Σ_b (count_b / N) · |mean_predicted_b − observed_b|.
    """

    edges: Tensor
    mean_predicted: Tensor
    observed: Tensor
    count: Tensor
    ece: float


def reliability_diagram(probability: Tensor, outcome: Tensor, bins: int = 10) -> ReliabilityDiagram:
    """Reliability of probabilities such as P(exit-SNR ≥ t) against outcomes (true exit-SNR ≥ t).

    probability, outcome: same shape, any (outcome bool or 0/1), pooled over everything given
    (blocks, speakers, targets). Bins are `bins` equal-width intervals [k/bins, (k+1)/bins), the
    last one closed. Equal width keeps the bins comparable across models; note that ECE is
    biased upwards by sampling noise in sparsely filled bins (≈ sqrt(p(1−p)/count_b)).
    """
    p = torch.as_tensor(probability, dtype=torch.float64).flatten()
    o = torch.as_tensor(outcome).to(torch.float64).flatten()
    if p.shape != o.shape:
        raise PressError(f"probability and outcome sizes differ: {p.numel()} vs {o.numel()}")
    if p.numel() == 0:
        raise PressError("no probabilities to bin")
    idx = torch.clamp((p * bins).floor().to(torch.int64), 0, bins - 1)
    count = torch.bincount(idx, minlength=bins)
    sum_p = torch.bincount(idx, weights=p, minlength=bins)
    sum_o = torch.bincount(idx, weights=o, minlength=bins)
    safe = count.clamp_min(1).to(torch.float64)
    mean_p = torch.where(count > 0, sum_p / safe, math.nan)
    observed = torch.where(count > 0, sum_o / safe, math.nan)
    ece = float((torch.abs(sum_p - sum_o)).sum() / p.numel())
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    return ReliabilityDiagram(edges, mean_p, observed, count, ece)


Scales = tuple[float, ...]


@dataclass(frozen=True)
class Recalibration:
    """Post-hoc rescaling α' = a·α, β' = b·β; identity by default.

    Two scales are enough to fix the two usual failures: a wrong overall error level (β/α, the
    predicted error power scale) and a wrong confidence (α, the tail weight / spread). Rescaling
    keeps α, β > 0 and the model's ranking of blocks, so decisions stay monotone in the raw output.

    alpha_scale, beta_scale: one number each (pooled: every exit alike) or one per exit (tuples of
    equal length K): exits of different depth are miscalibrated differently, so a per-exit fit
    (`fit_per_exit`) can correct each of them.
    """

    alpha_scale: float | Scales = 1.0
    beta_scale: float | Scales = 1.0

    def __post_init__(self) -> None:
        shapes = {len(v) if isinstance(v, (tuple, list)) else None for v in (self.alpha_scale, self.beta_scale)}
        if len(shapes) != 1 or 0 in shapes:
            raise PressError("recalibration alpha_scale and beta_scale must both be numbers or both "
                             f"non-empty per-exit lists of one length, got {self.alpha_scale!r}, {self.beta_scale!r}")
        for name in ("alpha_scale", "beta_scale"):
            v = getattr(self, name)
            if isinstance(v, list):  # from JSON: store as a tuple so the instance stays hashable
                v = tuple(v)
                object.__setattr__(self, name, v)
            for x in v if isinstance(v, tuple) else (v,):
                if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
                    raise PressError(f"recalibration {name} must hold positive finite numbers, got {v!r}")

    @property
    def n_exits(self) -> int | None:
        """K for a per-exit recalibration, None for a pooled one."""
        return len(self.alpha_scale) if isinstance(self.alpha_scale, tuple) else None

    def apply(self, alpha: Tensor, beta: Tensor, exit: int | None = None) -> tuple[Tensor, Tensor]:
        """Recalibrated (α', β'), same shapes and dtypes as given.

        exit: the 1-based exit that (α, β) come from; None when their first dimension runs over
        all K exits (a per-exit recalibration then scales α[k] and β[k] by exit k + 1's scales).
        A pooled recalibration ignores it.
        """
        if self.n_exits is None:
            return alpha * self.alpha_scale, beta * self.beta_scale
        if exit is not None:
            if not 1 <= exit <= self.n_exits:
                raise PressError(f"recalibration holds {self.n_exits} exits; exit {exit} has none")
            return alpha * self.alpha_scale[exit - 1], beta * self.beta_scale[exit - 1]
        if alpha.shape[0] != self.n_exits:
            raise PressError(f"recalibration holds {self.n_exits} exits but was given {alpha.shape[0]}")
        shape = (-1,) + (1,) * (alpha.dim() - 1)  # (K, 1, ...)
        a = torch.tensor(self.alpha_scale, dtype=alpha.dtype, device=alpha.device).view(shape)
        b = torch.tensor(self.beta_scale, dtype=beta.dtype, device=beta.device).view(shape)
        return alpha * a, beta * b

    def check_exits(self, n_exits: int) -> None:
        """Raise unless this recalibration fits a model with `n_exits` exits."""
        if self.n_exits not in (None, n_exits):
            raise PressError(f"the recalibration holds scales for {self.n_exits} exits but the model has "
                             f"{n_exits}; refit it for this model")

    def to_dict(self) -> dict[str, float | list[float]]:
        """Plain JSON-able form, stored next to a checkpoint's weights."""
        plain = lambda v: [float(x) for x in v] if isinstance(v, tuple) else float(v)  # noqa: E731
        return {"alpha_scale": plain(self.alpha_scale), "beta_scale": plain(self.beta_scale)}

    @classmethod
    def from_dict(cls, data: dict) -> "Recalibration":
        """Inverse of to_dict; unknown or missing keys are a user error (corrupt checkpoint)."""
        if not isinstance(data, dict) or set(data) != {"alpha_scale", "beta_scale"}:
            raise PressError(
                f"recalibration must be a dict with keys alpha_scale and beta_scale, got {data!r}"
            )
        return cls(data["alpha_scale"], data["beta_scale"])


def _neg_log_likelihood(
    log_scales: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    half_e: np.ndarray,
    half_n: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Mean negative Student-t block log-likelihood (the training loss's) of rescaled (α, β), and its gradient.

    The −(n/2) ln 2π term does not depend on the scales and is left out.
    """
    a = np.exp(log_scales[0]) * alpha
    b = np.exp(log_scales[1]) * beta
    ll = (
        scipy.special.gammaln(a + half_n)
        - scipy.special.gammaln(a)
        + a * np.log(b)
        - (a + half_n) * np.log(b + half_e)
    )
    d_a = (
        scipy.special.digamma(a + half_n)
        - scipy.special.digamma(a)
        + np.log(b)
        - np.log(b + half_e)
    )
    d_b = a / b - (a + half_n) / (b + half_e)
    grad = np.array([np.mean(d_a * a), np.mean(d_b * b)])  # chain rule through log-scales
    return -float(np.mean(ll)), -grad


# Error power below which a block's error is not measurable: 16-bit quantisation noise is
# (2^-15)^2 / 12 ≈ 8e-11 (−101 dB re full scale).
MEASURABLE_ERROR_POWER = 1e-10


FIT_METHODS = ("crps", "likelihood")
MAX_FIT_BLOCKS = 20000  # the CRPS fit subsamples (evenly) beyond this: ~10 s on one CPU core


def fit_recalibration(
    alpha: Tensor, beta: Tensor, error_energy: Tensor, count: Tensor, method: str = "crps"
) -> Recalibration:
    """Fit (alpha_scale, beta_scale) on validation blocks.

    alpha, beta, error_energy (‖x − x̂‖²), count (n): broadcastable, any shape; blocks with n = 0
    are ignored. Two criteria over the two log-scales:

    - "crps" (default): minimise the mean CRPS of the predicted error power in dB (Nelder–Mead).
      CRPS is a proper score that grows only linearly with a miss, so it weighs every block about
      equally. It helps a miscalibrated model and can hurt a calibrated one (measured on stages 1
      and 2 of the shipped model: docs/experiments.md); compare the raw and recalibrated scores
      before storing.
    - "likelihood": maximise the mean Student-t block log-likelihood of the loss (L-BFGS-B, analytic
      gradient), the paper's training criterion. Exact when the model family is right (the tests'
      synthetic data); on real models a few badly predicted blocks dominate the log score, and the
      measured effect on held-out calibration was negative.

    Blocks whose error power ‖e‖²/n is below MEASURABLE_ERROR_POWER (e.g. exact zeros where the
    reference and the estimate are both digital silence) are left out: the likelihood of a zero
    error grows without bound as β → 0, and a handful of such blocks (0.2 % of the built-in
    validation set) would otherwise drive β_scale to the bound and wreck every other block.
    """
    if method not in FIT_METHODS:
        raise PressError(f"unknown recalibration method {method!r}; expected one of {', '.join(FIT_METHODS)}")
    alpha, beta, energy, count = (
        v.flatten().cpu().numpy()
        for v in torch.broadcast_tensors(
            *(torch.as_tensor(x, dtype=torch.float64) for x in (alpha, beta, error_energy, count))
        )
    )
    keep = (count > 0) & (energy > MEASURABLE_ERROR_POWER * count)
    if not keep.any():
        raise PressError("no valid blocks with a measurable error to fit a recalibration on")
    alpha, beta, energy, count = alpha[keep], beta[keep], energy[keep], count[keep]
    if method == "likelihood":
        result = scipy.optimize.minimize(
            _neg_log_likelihood, np.zeros(2), args=(alpha, beta, energy / 2.0, count / 2.0), jac=True,
            method="L-BFGS-B", bounds=[(-30.0, 30.0), (-30.0, 30.0)],
        )
    else:
        step = max(1, -(-len(alpha) // MAX_FIT_BLOCKS))
        a, b, e, n = (torch.from_numpy(v[::step]) for v in (alpha, beta, energy, count))

        def mean_crps(log_scales: np.ndarray) -> float:
            if np.any(np.abs(log_scales) > 30.0):
                return math.inf
            return float(crps_error_power_db(a * math.exp(log_scales[0]), b * math.exp(log_scales[1]), e, n,
                                             nodes=129).mean())

        # an explicit simplex: scipy's default around x0 = 0 is 0.00025 wide and stalls
        simplex = np.array([[0.0, 0.0], [0.7, 0.0], [0.0, 0.7]])
        result = scipy.optimize.minimize(mean_crps, np.zeros(2), method="Nelder-Mead",
                                         options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-6})
    if not np.all(np.isfinite(result.x)):
        raise PressError(f"recalibration fit failed: {result.message}")
    return Recalibration(float(np.exp(result.x[0])), float(np.exp(result.x[1])))


def fit_per_exit(
    alpha: Tensor, beta: Tensor, error_energy: Tensor, count: Tensor, method: str = "crps"
) -> Recalibration:
    """One (alpha_scale, beta_scale) pair per exit: `fit_recalibration` on each exit's blocks.

    alpha, beta, error_energy, count: (K, ...) with the exits first, any further shape.
    """
    if not alpha.shape[0] == beta.shape[0] == error_energy.shape[0] == count.shape[0]:
        raise PressError("fit_per_exit: alpha, beta, error_energy and count need the exits first, of one length")
    fits = [fit_recalibration(*(v[k] for v in (alpha, beta, error_energy, count)), method=method)
            for k in range(alpha.shape[0])]
    return Recalibration(tuple(f.alpha_scale for f in fits), tuple(f.beta_scale for f in fits))
