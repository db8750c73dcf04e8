"""The exit rule in numpy: press.prob.exits (exit_probabilities, segment_decision) without torch.

Same formulas and edge cases (see press/prob/exits.py for the derivation); block energies are
summed in float64. tests/test_runtime.py checks these against the torch versions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, polygamma
from scipy.special import gammaincc as _gammaincc

from press.errors import PressError


def gammaincc(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Q(a, x) in float64 with the edges of press.prob.exits.gammaincc: Q(a, x <= 0) = 1, Q(a, inf) = 0."""
    a, x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(x, np.float64))
    a_safe = np.maximum(a, np.finfo(np.float64).tiny)
    x_safe = np.maximum(np.where(np.isfinite(x), x, 0.0), 0.0)
    q = _gammaincc(a_safe, x_safe)
    q = np.where(x <= 0, 1.0, q)
    return np.where(x == np.inf, 0.0, q)


def block_energy(x: np.ndarray, block: int, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(energy, count) per block of x (N, S, L) over samples before lengths (N,): (N, S, nb) float64."""
    N, S, L = x.shape
    nb = -(-L // block)
    valid = np.arange(nb * block)[None, :] < np.asarray(lengths)[:, None]               # (N, nb*B)
    sq = np.zeros((N, S, nb * block))
    sq[..., :L] = x.astype(np.float64) ** 2
    sq *= valid[:, None, :]
    energy = sq.reshape(N, S, nb, block).sum(-1)
    count = valid.reshape(N, nb, block).sum(-1).astype(np.float64)[:, None, :]
    return energy, np.broadcast_to(count, energy.shape)


def _tail(alpha, beta, ratio, energy, count):
    excess = ratio - 1.0
    numer = excess * beta * count
    with np.errstate(divide="ignore", invalid="ignore"):
        arg = np.where(energy > 0, numer / np.maximum(energy, 1e-300), np.inf)
    arg = np.where((excess <= 0) | (count <= 0), 0.0, arg)
    return gammaincc(alpha, arg)


def exit_probabilities(estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                       target_db: float, confidence: float, block: int, p_ref: float,
                       lengths: np.ndarray) -> dict[str, np.ndarray]:
    """snr, snri, snr_ref, exit (N, S, nb); block (N, nb); decision (N, nb) bool."""
    if not 0.0 <= confidence <= 1.0:
        raise PressError(f"confidence p must be in [0, 1], got {confidence}")
    alpha, beta = alpha.astype(np.float64), beta.astype(np.float64)
    est_energy, count = block_energy(estimate, block, lengths)
    resid_energy, _ = block_energy(estimate - mixture[:, None, :], block, lengths)
    ratio = 10.0 ** (float(target_db) / 10.0)
    p_snr = _tail(alpha, beta, ratio, est_energy, count)
    p_snri = _tail(alpha, beta, ratio, resid_energy, count)
    ref_arg = ratio * beta / max(p_ref, 1e-300) if p_ref > 0 else np.full_like(beta, np.inf)
    p_abs = gammaincc(alpha, ref_arg)
    p_exit = np.maximum(np.maximum(p_snr, p_snri), p_abs)
    p_block = p_exit.min(axis=-2)
    return {"snr": p_snr, "snri": p_snri, "snr_ref": p_abs, "exit": p_exit, "block": p_block,
            "decision": p_block >= confidence}


_DB = 10.0 / np.log(10.0)


def _softplus(x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.softplus (threshold 20: x itself above it)."""
    with np.errstate(over="ignore"):
        return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def expected_exit_snr_db(alpha, beta, estimate_energy, residual_energy, count, p_ref, nodes: int = 513) -> np.ndarray:
    """E[exit-SNR in dB] under lambda ~ Gamma(alpha, beta): press.prob.exits.expected_exit_snr_db in
    numpy (the same trapezoid rule over w = ln lambda on `nodes` points, in float64)."""
    alpha, beta, e_est, e_res, count, p_ref = (np.asarray(v, dtype=np.float64) for v in
                                               (alpha, beta, estimate_energy, residual_energy, count, p_ref))
    alpha, beta, e_est, e_res, count, p_ref = np.broadcast_arrays(alpha, beta, e_est, e_res, count, p_ref)
    sd = np.sqrt(polygamma(1, alpha))
    lo = digamma(alpha) - np.log(beta) - 20.0 * sd
    hi = np.log(alpha + 12.0 * np.sqrt(alpha) + 40.0) - np.log(beta)
    w = lo[..., None] + (hi - lo)[..., None] * np.linspace(0.0, 1.0, nodes)
    log_density = alpha[..., None] * w - beta[..., None] * np.exp(w)
    weights = np.exp(log_density - log_density.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    n = np.maximum(count, 1.0)
    with np.errstate(divide="ignore"):
        log_est, log_res, log_ref = np.log(e_est / n), np.log(e_res / n), np.log(p_ref)
    log_gain = np.maximum(_softplus(log_est[..., None] + w), _softplus(log_res[..., None] + w))
    log_ratio = np.maximum(log_gain, log_ref[..., None] + w)
    return _DB * (weights * log_ratio).sum(-1)


def expected_block_snr_db(estimate: np.ndarray, mixture: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                          block: int, p_ref: float, lengths: np.ndarray) -> np.ndarray:
    """press.prob.exits.expected_block_snr_db: (N, S, nb) from estimate (N, S, L), mixture (N, L)."""
    est_energy, count = block_energy(estimate, block, lengths)
    resid_energy, _ = block_energy(estimate - mixture[:, None, :], block, lengths)
    return expected_exit_snr_db(alpha, beta, est_energy, resid_energy, count, p_ref)


def segment_quality(expected_db: np.ndarray, core: slice, valid: np.ndarray) -> np.ndarray:
    """press.inference.policies.segment_quality: mean over valid core blocks and speakers, (N,)."""
    q = expected_db[..., core]
    mask = np.broadcast_to(valid[:, None, :], q.shape[-3:]).astype(np.float64)
    return (q * mask).sum((-2, -1)) / np.maximum(mask.sum((-2, -1)), 1.0)


def segment_decision(block_pass: np.ndarray, valid: np.ndarray, quantile: float = 1.0) -> np.ndarray:
    """At least ceil(quantile x valid blocks) of each segment's valid blocks pass: (N, nb) -> (N,)."""
    if not 0.0 < quantile <= 1.0:
        raise PressError(f"segment quantile must be in (0, 1], got {quantile}")
    n_valid = valid.sum(-1)
    n_pass = (block_pass & valid).sum(-1)
    return n_pass.astype(np.float64) >= np.ceil(quantile * n_valid.astype(np.float64) - 1e-9)
