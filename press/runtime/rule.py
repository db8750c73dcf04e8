"""The exit rule in numpy: press.prob.exits (exit_probabilities, segment_decision) without torch.

Same formulas and edge cases (see press/prob/exits.py for the derivation); block energies are
summed in float64. tests/test_runtime.py checks these against the torch versions.
"""

from __future__ import annotations

import numpy as np
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


def segment_decision(block_pass: np.ndarray, valid: np.ndarray, quantile: float = 1.0) -> np.ndarray:
    """At least ceil(quantile x valid blocks) of each segment's valid blocks pass: (N, nb) -> (N,)."""
    if not 0.0 < quantile <= 1.0:
        raise PressError(f"segment quantile must be in (0, 1], got {quantile}")
    n_valid = valid.sum(-1)
    n_pass = (block_pass & valid).sum(-1)
    return n_pass.astype(np.float64) >= np.ceil(quantile * n_valid.astype(np.float64) - 1e-9)
