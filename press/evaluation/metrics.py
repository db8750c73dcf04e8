"""Separation metrics: SI-SNR and its improvement (torch), and SDR, PESQ, STOI (numpy).

SI-SNR (scale-invariant SNR, a.k.a. SI-SDR, Le Roux et al. 2019) with zero-mean signals:
    s_t = <x̂, x> x / ||x||²,  e = x̂ - s_t,  SI-SNR = 10 log10(||s_t||² / ||e||²).
"""

from __future__ import annotations

import numpy as np
import torch

from press.errors import optional_module
from press.prob.sisnr import si_snr, si_snri

# ---------------------------------------------------------------------------------------------
# metrics the field reports next to SI-SNR: SDR (BSS Eval), PESQ and STOI. They work on numpy
# arrays of one utterance whose estimate is already in the references' speaker order (align with
# SI-SNR PIT first), because that is how evaluation uses them: one permutation per utterance.


def sdr(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """BSS Eval SDR (dB) per source of an aligned estimate (S, L) against references (S, L).

    fast_bss_eval with the 512-tap distortion filter of mir_eval's `bss_eval_sources`
    (the same numbers to ~0.01 dB, several times faster). SDR depends only on a source's own
    reference (its target part is the filtered projection onto it), so each source is scored on
    its own: no permutation search can reorder an estimate the caller already aligned.
    """
    fast_bss_eval = optional_module("fast_bss_eval", "metrics", "SDR (BSS Eval)")

    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    return np.array([float(fast_bss_eval.sdr(r[None], e[None], clamp_db=100.0)[0])
                     for r, e in zip(ref, est)])


def sdri(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """SDR improvement (dB) per source over using the mixture as every source's estimate."""
    baseline = sdr(np.broadcast_to(mixture, reference.shape), reference)
    return sdr(estimate, reference) - baseline


def _to_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    import soxr

    return soxr.resample(np.ascontiguousarray(x, dtype=np.float64), rate, target)


def pesq_score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """PESQ of one source (L,): narrow-band at 8 kHz, wide-band at 16 kHz and above.

    Other rates are resampled to the nearer of the two (above 8 kHz: 16 kHz, so a 16 kHz model
    gets the WB score the field reports). Returns NaN when PESQ finds no utterance in the
    reference (silence): that is "no score", not zero quality, and averages skip it.
    """
    pesq_module = optional_module("pesq", "metrics", "PESQ")

    rate = 8000 if sample_rate <= 8000 else 16000
    ref = _to_rate(np.asarray(reference, np.float64), sample_rate, rate)
    est = _to_rate(np.asarray(estimate, np.float64), sample_rate, rate)
    try:
        with np.errstate(invalid="ignore", divide="ignore"):  # pesq normalises silence by 0
            return float(pesq_module.pesq(rate, ref, est, "nb" if rate == 8000 else "wb"))
    except (pesq_module.NoUtterancesError, pesq_module.PesqError):
        return float("nan")


def stoi_score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """STOI (0..1) of one source (L,); pystoi resamples to its 10 kHz internally."""
    pystoi = optional_module("pystoi", "metrics", "STOI")

    return float(pystoi.stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64), sample_rate))


def align_to_reference(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The estimate's sources (S, L) reordered to the references' order, by best mean SI-SNR."""
    from press.prob.permutation import best_permutation

    est = torch.as_tensor(np.asarray(estimate, np.float32))
    ref = torch.as_tensor(np.asarray(reference, np.float32))
    pair = si_snr(est[:, None, :], ref[None, :, :])  # (S est, S ref)
    perm = best_permutation(-pair.T[None])[0]          # ref j -> estimate perm[j]
    return np.asarray(estimate)[perm.numpy()]


def aligned_si_snri(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> float:
    """SI-SNRi (dB, mean over sources) of an estimate (S, L) in its best speaker order against
    references (S, L) and the mixture (L,): the number every table of PRESS reports."""
    est = torch.from_numpy(align_to_reference(estimate, reference).astype(np.float32))[None]
    ref = torch.from_numpy(np.asarray(reference, np.float32))[None]
    mix = torch.from_numpy(np.asarray(mixture, np.float32))[None]
    return float(si_snri(est, ref, mix).mean())

