"""What one evaluation utterance tells about every exit: truth from references, predictions.

From an `ExitTrace` (every segment through every exit) and the references, per exit and segment:
the estimate's speakers aligned to the references (least squared error over the window), the
true block exit-SNR (press.prob.exits.true_exit_snr) and block error energies on the segment's core
blocks, and the predicted P(exit-SNR ≥ t) per speaker and block for each target. Strategies and
calibration are computed from these arrays, so the network runs once per utterance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from press.inference.trace import ExitTrace
from press.prob.calibration import Recalibration
from press.prob.energy import block_energy
from press.prob.exits import exit_probabilities, true_exit_snr
from press.prob.permutation import best_permutation


@dataclass
class UtteranceAnalysis:
    """Arrays over (K exits, n_seg segments, S speakers, n_core blocks), speakers in reference order."""

    trace: ExitTrace
    mixture: np.ndarray            # (N,)
    references: np.ndarray         # (S, N)
    valid: np.ndarray              # (n_seg, n_core) bool
    exit_snr: np.ndarray           # true exit-SNR, dB
    error_energy: np.ndarray       # ‖x − x̂‖² per block
    count: np.ndarray              # valid samples per block (0 for padding)
    alpha: np.ndarray              # raw predictions, aligned
    beta: np.ndarray
    perm: np.ndarray               # (K, n_seg, S): estimate index matched to reference j

    @property
    def seconds(self) -> float:
        return len(self.mixture) / self.trace.sample_rate

    def probabilities(self, target_db: float, recalibration: Recalibration) -> tuple[np.ndarray, np.ndarray]:
        """(per speaker P(exit-SNR ≥ t) (K, n_seg, S, n_core), min over speakers (K, n_seg, n_core))."""
        tr, core = self.trace, self.trace.core
        alpha, beta = recalibration.apply(torch.from_numpy(tr.alpha), torch.from_numpy(tr.beta))
        probs = exit_probabilities(torch.from_numpy(tr.estimates), torch.from_numpy(tr.windows),
                                   alpha, beta, target_db, 0.5, tr.block, p_ref=tr.p_ref,
                                   lengths=torch.from_numpy(tr.lengths))
        per_speaker = _align(probs.exit.numpy(), self.perm)[..., core]
        return per_speaker, probs.block.numpy()[..., core]


def _align(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """x (K, n_seg, S, ...) reordered so that x[k, i, j] is the estimate matched to reference j."""
    k, i = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    return x[k[..., None], i[..., None], perm]


def analyse(trace: ExitTrace, mixture: np.ndarray, references: np.ndarray) -> UtteranceAnalysis:
    """The per-exit truth and predictions of one utterance (see the module docstring)."""
    plan, c = trace.plan, trace.plan.context
    refs = np.stack([
        np.stack([_read(r, plan.core(i)[0] - c, plan.window) for r in references])
        for i in range(len(plan))])                                   # (n_seg, S, W)
    est = torch.from_numpy(trace.estimates)                           # (K, n_seg, S, W)
    ref = torch.from_numpy(refs)
    lengths = torch.from_numpy(trace.lengths)
    inside = (torch.arange(plan.window) < lengths[:, None]).float()   # (n_seg, W)
    diff = ((est[:, :, :, None] - ref[None, :, None]) * inside[None, :, None, None]).pow(2).sum(-1)
    K, n_seg, S, _ = diff.shape
    if trace.align:
        perm = best_permutation(diff.reshape(K * n_seg, S, S)).reshape(K, n_seg, S).numpy()
    else:  # fixed-order outputs (speech, noise): estimate j is scored against reference j
        perm = np.broadcast_to(np.arange(S), (K, n_seg, S)).copy()
    # perm[k, i, j] = reference of estimate j; invert: estimate matched to reference j
    inv = np.argsort(perm, axis=-1)
    aligned = torch.from_numpy(_align(trace.estimates, inv))
    core = trace.core
    truth = true_exit_snr(aligned, ref[None].expand_as(aligned), torch.from_numpy(trace.windows),
                          trace.block, p_ref=trace.p_ref, lengths=lengths)
    energy, count = block_energy(ref[None] - aligned, trace.block, lengths=lengths[:, None])
    return UtteranceAnalysis(
        trace, np.asarray(mixture, np.float32), np.asarray(references, np.float32), trace.valid,
        truth.exit.numpy()[..., core], energy.numpy()[..., core], count.numpy()[..., core],
        _align(trace.alpha, inv)[..., core], _align(trace.beta, inv)[..., core], inv)


def _read(x: np.ndarray, start: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    lo, hi = max(start, 0), min(start + n, len(x))
    if hi > lo:
        out[lo - start:hi - start] = x[lo:hi]
    return out


def exit_snr_quantiles(alpha: np.ndarray, beta: np.ndarray, estimate_energy: np.ndarray,
                       residual_energy: np.ndarray, count: np.ndarray, p_ref: float,
                       quantiles: tuple[float, ...]) -> np.ndarray:
    """Quantiles (dB) of the predicted exit-SNR max(1 + ‖x̂‖²λ/n, 1 + ‖x̂ − x̃‖²λ/n, P_ref·λ)
    under λ ~ Gamma(shape α, rate β), per element of the broadcast inputs.

    The exit-SNR is an increasing function of λ, so its q-quantile is that function at λ's
    q-quantile (scipy's gammaincinv(α, q)/β). Blocks without valid samples count as n = 1.
    Returns (len(quantiles), *broadcast shape).
    """
    import scipy.special

    alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    n = np.maximum(np.asarray(count, np.float64), 1.0)
    e_est, e_res = np.asarray(estimate_energy, np.float64), np.asarray(residual_energy, np.float64)
    out = []
    for q in quantiles:
        lam = scipy.special.gammaincinv(alpha, q) / beta
        snr = np.maximum(np.maximum(1 + e_est * lam / n, 1 + e_res * lam / n), p_ref * lam)
        out.append(10 * np.log10(np.maximum(snr, 1e-30)))
    return np.stack(out)


def _core_energies(tr: ExitTrace, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block energies of the estimates and of their residuals to the mixture, and the valid samples
    per block, on the segments' core blocks: (K, n_seg, S, n_core) each."""
    lengths = torch.from_numpy(tr.lengths)[:, None]
    e_est, count = block_energy(torch.from_numpy(est), tr.block, lengths=lengths)
    e_res, _ = block_energy(torch.from_numpy(est - tr.windows[None, :, None]), tr.block, lengths=lengths)
    core = tr.core
    return e_est.numpy()[..., core], e_res.numpy()[..., core], count.numpy()[..., core]


def predicted_exit_snr(a: UtteranceAnalysis, quantiles: tuple[float, ...],
                       recalibration: Recalibration) -> np.ndarray:
    """Quantiles (dB) of the predicted exit-SNR per exit, segment, speaker and core block.

    Each of SNR, SNRi and SNR_ref is an increasing function of the precision λ ~ Gamma(α, β)
    (press.prob.exits), so their max is too, and its q-quantile is that function at λ's q-quantile.
    Speakers in reference order. Returns (len(quantiles), K, n_seg, S, n_core).
    """
    tr = a.trace
    e_est, e_res, count = _core_energies(tr, _align(tr.estimates, a.perm))
    alpha, beta = recalibration.apply(torch.from_numpy(a.alpha), torch.from_numpy(a.beta))
    return exit_snr_quantiles(alpha.numpy(), beta.numpy(), e_est, e_res, count, tr.p_ref, quantiles)


def trace_exit_snr(trace: ExitTrace, quantiles: tuple[float, ...], recalibration: Recalibration) -> np.ndarray:
    """`predicted_exit_snr` without references: speakers in each exit's own output order (no
    alignment across exits or segments). Returns (len(quantiles), K, n_seg, S, n_core)."""
    e_est, e_res, count = _core_energies(trace, trace.estimates)
    alpha, beta = recalibration.apply(torch.from_numpy(trace.alpha), torch.from_numpy(trace.beta))
    core = trace.core
    return exit_snr_quantiles(alpha.numpy()[..., core], beta.numpy()[..., core], e_est, e_res, count,
                              trace.p_ref, quantiles)
