"""Exit conditions: from a block's predicted error distribution to an exit decision (docs/exits.md).

Every exit of the network gives, per speaker j and likelihood block b, an estimate x̂ and the
parameters α, β of the precision λ = 1/σ² ~ Gamma(shape α, rate β) of the block error
e = x − x̂ ~ N(0, σ² I_n). The quality of the estimate is stated in dB of SNR, so the questions
"is this block already at least t dB?" become tail probabilities of λ:

    SNR     = ‖x‖²/‖e‖²        ≈ 1 + ‖x̂‖²λ/n          -> P(SNR ≥ T)     = Q(α, (T − 1)·β·n/‖x̂‖²)
    SNRi    = ‖x̃ − x‖²/‖e‖²    ≈ 1 + ‖x̂ − x̃‖²λ/n      -> P(SNRi ≥ T)    = Q(α, (T − 1)·β·n/‖x̂ − x̃‖²)
    SNR_ref = P_ref/(‖e‖²/n)   ≈ P_ref·λ              -> P(SNR_ref ≥ T) = Q(α, T·β/P_ref)

with T = 10^{t/10}, x̃ the mixture, n the number of valid samples in the block and Q the regularised
upper incomplete gamma function. The approximations replace ‖e‖² by its mean nσ² and drop the
cross term 2⟨x̂, e⟩ (relative size ~ sqrt(2/n), 3 % at n = 2000).

All three events have the form {λ ≥ c}, so they are nested: the probability of the exit-SNR
(the max of the three) reaching t is exactly the max of the three probabilities. The exit rule
is then "every speaker reaches t with probability ≥ p": min over speakers of that max ≥ p.

Everything here is a pure function of tensors with arbitrary leading dimensions, for evaluation and
calibration over traces; the arithmetic runs in float64 because the arguments of Q span many decades
(silent blocks, α up to ~1e6). Inference decides with the same formulas in numpy, in
press.engine.rule (with the expected exit-SNR that budget mode ranks by, and the segment decision),
which both backends share.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from press.errors import PressError
from press.prob.energy import block_energy, mean_power

# Power floor (per sample, in the squared units of the input audio) under which a true error or
# signal power is treated as digital silence when computing true exit-SNRs in dB: 1e-10 is
# -100 dB re full scale for audio in [-1, 1], far below 16-bit quantisation noise (~ -101 dB).
SILENCE_POWER = 1e-10

_DB = 10.0 / math.log(10.0)


def db_to_power_ratio(target_db: float | Tensor) -> Tensor:
    """10^{t/10} in float64, for a float or tensor of targets t in dB."""
    return torch.pow(10.0, torch.as_tensor(target_db, dtype=torch.float64) / 10.0)


def gammaincc(a: Tensor, x: Tensor) -> Tensor:
    """Regularised upper incomplete gamma Q(a, x) = Γ(a, x)/Γ(a), in float64.

    `torch.special.gammaincc` in float64 agrees with scipy to < 4e-10 absolute and < 2e-9 relative
    over a in [1e-3, 1e7], x in [0, 1e12] including x/a ≈ 1 at large a
    (benchmarks/gammaincc_accuracy.py), so it is used as is; float32 would lose 2e-6. The edges
    are pinned explicitly so that no NaN can come out of a finite or infinite non-negative x:
    Q(a, x ≤ 0) = 1 (the tail of the whole distribution), Q(a, +inf) = 0.
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64)
    a, x = torch.broadcast_tensors(a, x)
    a_safe = a.clamp_min(torch.finfo(torch.float64).tiny)
    x_safe = torch.where(torch.isfinite(x), x, torch.zeros_like(x)).clamp_min(0.0)
    q = torch.special.gammaincc(a_safe, x_safe)
    q = torch.where(x <= 0, torch.ones_like(q), q)
    return torch.where(x == math.inf, torch.zeros_like(q), q)


def _reference_power(p_ref: float | Tensor | None, mixture: Tensor, lengths: Tensor | None) -> Tensor:
    """P_ref as (..., 1, 1) float64 to broadcast over speakers and blocks: the one given (the whole
    input's, when `mixture` is one segment of it) or the mixture's mean power over valid samples."""
    if p_ref is None:
        p_ref = mean_power(mixture, lengths)  # (...,)
    return torch.as_tensor(p_ref, dtype=torch.float64, device=mixture.device)[..., None, None]


class ExitProbabilities(NamedTuple):
    """Probabilities of reaching the target, per speaker and block, and the resulting decision.

    snr, snri, snr_ref, exit: (..., S, nb) float64 — the three conditions and their max.
    block: (..., nb) float64 — min over speakers of `exit`, the probability the rule thresholds.
    decision: (..., nb) bool — block passes: block ≥ p.
    """

    snr: Tensor
    snri: Tensor
    snr_ref: Tensor
    exit: Tensor
    block: Tensor
    decision: Tensor


def _snr_gain_tail(
    alpha: Tensor, beta: Tensor, ratio: Tensor, energy: Tensor, count: Tensor
) -> Tensor:
    """P(1 + energy·λ/n ≥ ratio) = Q(α, (ratio − 1)·β·n/energy), safe at the edges.

    ratio ≤ 1 (t ≤ 0 dB) is always met (prob 1): 1 + energy·λ/n ≥ 1 whatever λ, also in silence,
    whose true SNR is exactly 0 dB (x = e). Above 0 dB, energy = 0 (a silent estimate, or one equal
    to the mixture for SNRi) can never reach the target (prob 0). A block with no valid samples
    (n = 0) imposes nothing (prob 1).
    """
    excess = ratio - 1.0
    numer = excess * beta * count
    arg = torch.where(
        energy > 0, numer / energy.clamp_min(1e-300), torch.full_like(numer, math.inf)
    )
    arg = torch.where((excess <= 0) | (count <= 0), torch.zeros_like(arg), arg)
    return gammaincc(alpha, arg)


def condition_probabilities(
    alpha: Tensor,
    beta: Tensor,
    estimate_energy: Tensor,
    residual_energy: Tensor,
    count: Tensor,
    p_ref: Tensor,
    target_db: float | Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """P(SNR ≥ t), P(SNRi ≥ t), P(SNR_ref ≥ t) from block energies: core of `exit_probabilities`.

    alpha, beta, estimate_energy (‖x̂‖²), residual_energy (‖x̂ − x̃‖²): (..., S, nb);
    count (n): broadcastable to (..., S, nb); p_ref: broadcastable, e.g. (..., 1, 1);
    target_db: float or broadcastable tensor (a sweep over t can add a leading dim).
    Separated from the signals so that a caller sweeping t computes the energies once.
    """
    alpha = alpha.to(torch.float64)
    beta = beta.to(torch.float64)
    ratio = db_to_power_ratio(target_db).to(alpha.device)
    count = count.to(torch.float64)
    p_snr = _snr_gain_tail(alpha, beta, ratio, estimate_energy, count)
    p_snri = _snr_gain_tail(alpha, beta, ratio, residual_energy, count)
    p_ref = torch.as_tensor(p_ref, dtype=torch.float64, device=alpha.device)
    ref_arg = torch.where(p_ref > 0, ratio * beta / p_ref.clamp_min(1e-300), math.inf)
    p_abs = gammaincc(alpha, ref_arg)
    return p_snr, p_snri, p_abs


def exit_probabilities(
    estimate: Tensor,
    mixture: Tensor,
    alpha: Tensor,
    beta: Tensor,
    target_db: float | Tensor,
    confidence: float,
    block: int,
    p_ref: float | Tensor | None = None,
    lengths: Tensor | None = None,
) -> ExitProbabilities:
    """The paper's exit rule for one exit: per-block probabilities and pass/fail.

    estimate: (..., S, L) in the input's units; mixture: (..., L); alpha, beta: (..., S, nb) with
    nb = ceil(L / block); lengths: valid samples per item, broadcastable to (...,); p_ref: mean
    power of the whole input, (...,) or a float — by default the mean power of `mixture` over its
    valid samples (pass the whole input's value when `mixture` is one segment of it).
    """
    if not 0.0 <= confidence <= 1.0:
        raise PressError(f"confidence p must be in [0, 1], got {confidence}")
    nb = -(-estimate.shape[-1] // block)
    if alpha.shape[-1] != nb or beta.shape[-1] != nb:
        raise PressError(
            f"alpha/beta have {alpha.shape[-1]}/{beta.shape[-1]} blocks, expected ceil(L/B) = {nb}"
        )
    seg_lengths = None if lengths is None else torch.as_tensor(lengths).unsqueeze(-1)
    est_energy, count = block_energy(estimate, block, lengths=seg_lengths)  # (..., S, nb)
    resid_energy, _ = block_energy(estimate - mixture.unsqueeze(-2), block, lengths=seg_lengths)
    p_ref = _reference_power(p_ref, mixture, lengths)  # (..., 1, 1)
    p_snr, p_snri, p_abs = condition_probabilities(
        alpha, beta, est_energy, resid_energy, count, p_ref, target_db
    )
    p_exit = torch.maximum(torch.maximum(p_snr, p_snri), p_abs)  # (..., S, nb)
    p_block = p_exit.amin(dim=-2)  # (..., nb)
    return ExitProbabilities(p_snr, p_snri, p_abs, p_exit, p_block, p_block >= confidence)


class TrueExitSNR(NamedTuple):
    """True per-block quality from references, in dB, each (..., S, nb) float64."""

    snr: Tensor
    snri: Tensor
    snr_ref: Tensor
    exit: Tensor


def true_exit_snr(
    estimate: Tensor,
    reference: Tensor,
    mixture: Tensor,
    block: int,
    p_ref: float | Tensor | None = None,
    lengths: Tensor | None = None,
) -> TrueExitSNR:
    """Exact block-wise SNR, SNRi and SNR_ref (dB) of an estimate, and the exit-SNR (their max).

    estimate, reference: (..., S, L); mixture: (..., L). SNR = ‖x‖²/‖e‖², SNRi = ‖x̃ − x‖²/‖e‖²,
    SNR_ref = P_ref/(‖e‖²/n). Every energy is floored at SILENCE_POWER · n (n ≥ 1), so digital
    silence gives finite numbers: a perfect estimate of a silent block has SNR = SNRi = 0 dB and a
    large SNR_ref (P_ref/1e-10), i.e. a high exit-SNR, as it should. p_ref and lengths as in
    `exit_probabilities` (pass the whole input's P_ref when `mixture` is one segment of it).
    """
    seg_lengths = None if lengths is None else torch.as_tensor(lengths).unsqueeze(-1)
    ref_energy, count = block_energy(reference, block, lengths=seg_lengths)
    err_energy, _ = block_energy(reference - estimate, block, lengths=seg_lengths)
    mix_err_energy, _ = block_energy(mixture.unsqueeze(-2) - reference, block, lengths=seg_lengths)
    p_ref = _reference_power(p_ref, mixture, lengths)  # (..., 1, 1)
    floor = SILENCE_POWER * count.clamp_min(1.0)
    err = err_energy.clamp_min(floor)
    snr = _DB * torch.log(ref_energy.clamp_min(floor) / err)
    snri = _DB * torch.log(mix_err_energy.clamp_min(floor) / err)
    snr_ref = _DB * torch.log(p_ref.clamp_min(SILENCE_POWER) * count.clamp_min(1.0) / err)
    return TrueExitSNR(snr, snri, snr_ref, torch.maximum(torch.maximum(snr, snri), snr_ref))


def exit_snr_regret(exit_snr_db: Tensor, target_db: float, valid: Tensor | None = None) -> Tensor:
    """One-sided exit-SNR regret: mean of max(0, t − s) over blocks and speakers (docs/exits.md).

    exit_snr_db: (..., S, nb) true exit-SNR at the exit taken; valid: (..., nb) or
    (..., S, nb) mask of blocks to count (padding excluded). Returns a scalar tensor in dB.
    Overshoot (s > t) costs nothing here: it is paid in compute, which is plotted separately.
    """
    shortfall = (target_db - exit_snr_db.to(torch.float64)).clamp_min(0.0)
    if valid is None:
        return shortfall.mean()
    if valid.dim() == exit_snr_db.dim() - 1:
        valid = valid.unsqueeze(-2)
    valid = torch.broadcast_to(valid, shortfall.shape)
    return shortfall[valid].mean()
