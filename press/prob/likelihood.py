"""The training objective: the Student-t block likelihood over all exits, with shared PIT.

Per exit i, speaker j and likelihood block b of n samples, with error energy E = ||x - x̂||²:
    x | x̂, σ² ~ N(x̂, σ² I_n),  σ² ~ InvGamma(α, β)   =>   x ~ Student-t(ν = 2α, x̂, β/α I_n)
    log p = lnΓ(α + n/2) - lnΓ(α) + α ln β - (α + n/2) ln(β + E/2) - (n/2) ln 2π        (the paper)
The loss is minus that log-likelihood summed over blocks, speakers and every exit (unweighted),
under one speaker permutation shared by all exits, chosen to minimise the summed loss. It is
computed on level-normalised audio (divided by `scale`, the mixture RMS the network sees) and
divided by the number of valid source samples [ours], so that it reads in nats per sample and
does not depend on the utterance length or level; neither changes the optimum. [ours] E there is
the error energy plus n × `variance_floor` (the network's −40 dB floor on level-normalised audio):
see `PressLoss.pairwise` for why the network's own floor is not enough.

The loss works on plain tensors (`ExitPrediction`, targets, the level, lengths), not on the
network's output type: the level and the floor are the network's conventions, and
`press.training.loss` passes them in with each batch's exits.

Ablations of the paper: `objective="gaussian"` (σ² = β/α, no inverse-gamma mixing),
`objective="sisnr"` (negative SI-SNR, no uncertainty), `pit="per_exit"` (each exit its own
permutation). `pit="fixed"` is for enhancement: estimate k is scored against source k, so that the
first output is always the speech and the second the noise.

[ours] `sisnr_weight` > 0 adds `sisnr_weight × (−SI-SNR in dB)` per exit and speaker (counted per
sample, like the likelihood) to the likelihood. On short CPU runs the likelihood alone first finds
"one stream = the mixture, the other = silence": its error in every block is the quieter talker,
which a per-block log-error loss rates well, and leaving it takes long training; the utterance-level
SI-SNR term makes separating pay from the first step. The inverse-gamma heads are still trained by
the likelihood alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from press.prob.energy import block_energy
from press.prob.permutation import best_permutation
from press.prob.sisnr import si_snr

Objective = Literal["student_t", "gaussian", "sisnr"]
PitMode = Literal["shared", "per_exit", "fixed"]
LOG_2PI = math.log(2 * math.pi)


def student_t_loglik(alpha: torch.Tensor, beta: torch.Tensor, energy: torch.Tensor,
                     n: torch.Tensor) -> torch.Tensor:
    """log p of a block under the Student-t above, in float64, for any shapes that broadcast.

    Rearranged so that no large terms cancel: α ln β - (α + n/2) ln(β + E/2)
    = -α log1p(E / 2β) - (n/2) ln(β + E/2); the lnΓ difference is taken in float64, where it
    stays accurate for α up to ~1e12.
    """
    a, b, e, n = (t.double() for t in (alpha, beta, energy, n))
    return (torch.lgamma(a + n / 2) - torch.lgamma(a) - a * torch.log1p(e / (2 * b))
            - (n / 2) * torch.log(b + e / 2) - (n / 2) * LOG_2PI)


def gaussian_loglik(alpha: torch.Tensor, beta: torch.Tensor, energy: torch.Tensor,
                    n: torch.Tensor) -> torch.Tensor:
    """log p of a block under N(x̂, σ² I) with σ² = β/α (the Student-t's scale), in float64."""
    var = beta.double() / alpha.double()
    return -(n / 2) * (LOG_2PI + torch.log(var)) - energy.double() / (2 * var)


@dataclass(frozen=True)
class ExitPrediction:
    """One exit's predictive distribution of the sources, in the units of the input audio: per speaker
    and likelihood block, x ~ Student-t(2α, estimate, β/α I_n)."""

    estimate: torch.Tensor    # (B, S, L) the location: the separated sources
    alpha: torch.Tensor       # (B, S, nb) inverse-gamma shape per likelihood block
    beta: torch.Tensor        # (B, S, nb) inverse-gamma scale, in squared input units


@dataclass
class LossResult:
    loss: torch.Tensor          # scalar to minimise
    perm: torch.Tensor          # (B, S) target index for each estimate (last exit's under per_exit)
    nll: torch.Tensor           # (n_exits,) detached, nats per sample (SI-SNR objective: -SI-SNR)
    si_snr: torch.Tensor        # (n_exits,) detached, mean SI-SNR in dB under the permutation


class PressLoss(torch.nn.Module):
    """-sum over exits, speakers and blocks of the block log-likelihood, shared PIT."""

    def __init__(self, block: int, objective: Objective = "student_t", pit: PitMode = "shared",
                 sisnr_weight: float = 0.0, *, variance_floor: float) -> None:
        """variance_floor: the white-noise variance per sample (on level-normalised audio) added to
        every block's error energy: the network's floor on β/α, which press.training.loss passes in."""
        super().__init__()
        if objective not in ("student_t", "gaussian", "sisnr"):
            raise ValueError(f"unknown objective {objective!r}")
        if pit not in ("shared", "per_exit", "fixed"):
            raise ValueError(f"unknown pit mode {pit!r}")
        if sisnr_weight < 0 or (sisnr_weight > 0 and objective == "sisnr"):
            raise ValueError("sisnr_weight adds an SI-SNR term to a likelihood objective; it must be >= 0")
        self.block, self.objective, self.pit = block, objective, pit
        self.sisnr_weight, self.variance_floor = sisnr_weight, variance_floor

    def pairwise(self, out: ExitPrediction, targets: torch.Tensor, scale: torch.Tensor,
                 lengths: torch.Tensor) -> torch.Tensor:
        """Loss of every (estimate j, target k) pair for one exit: (B, S, S), summed over blocks."""
        L = targets.shape[-1]
        s = scale[:, None, None]
        est, tgt = out.estimate[..., :L] / s, targets / s                        # (B, S, L)
        if self.objective == "sisnr":
            return -self._pair_sisnr(est, tgt, lengths).double()
        energy, n = block_energy(est[:, :, None] - tgt[:, None, :], self.block,  # (B, S, S, nb)
                                 lengths=lengths[:, None, None])
        # [ours] The error is scored as if it carried white noise at the variance floor: E + n·floor.
        # The network's floor (β ≥ α·floor) bounds the scale β/α but not β: on a block whose error
        # lies below the floor (digital silence, a paused talker) the likelihood then grows without
        # bound as α -> 0 (about 5 nats/sample at E = 0 for α = 1e-3 against α = 100), and training
        # on the full corpus drove α to its 1e-3 floor in most quiet blocks, ruining calibration
        # (docs/experiments.md). With the floored energy the best α on such a block is the largest.
        energy = energy + n * self.variance_floor
        alpha = out.alpha[:, :, None]                                          # (B, S, 1, nb)
        beta = (out.beta / s.pow(2))[:, :, None]
        loglik = student_t_loglik if self.objective == "student_t" else gaussian_loglik
        nll = -(loglik(alpha, beta, energy, n) * (n > 0)).sum(-1)              # (B, S, S)
        if self.sisnr_weight:
            # in nats per sample like the likelihood: weight x (-SI-SNR in dB) x the item's samples
            pair = self._pair_sisnr(est, tgt, lengths).double()
            nll = nll - self.sisnr_weight * pair * lengths[:, None, None].double()
        return nll

    @staticmethod
    def _pair_sisnr(est: torch.Tensor, tgt: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, S, L = est.shape
        e = est[:, :, None].expand(B, S, S, L).reshape(B, S * S, L)
        t = tgt[:, None, :].expand(B, S, S, L).reshape(B, S * S, L)
        return si_snr(e, t, lengths).reshape(B, S, S)

    def forward(self, predictions: Sequence[ExitPrediction], targets: torch.Tensor, scale: torch.Tensor,
                lengths: torch.Tensor) -> LossResult:
        """predictions: one per exit; targets: (B, S, L); scale: (B,) the level each item
        is scored at (the network's input level); lengths: (B,) valid samples per item."""
        B, S, L = targets.shape
        pairs = torch.stack([self.pairwise(o, targets, scale, lengths) for o in predictions])  # (X, B, S, S)
        with torch.no_grad():
            if self.pit == "fixed":  # enhancement: estimate k is source k (speech first), no permutation
                perms = torch.arange(S, device=pairs.device).expand(len(predictions), B, S)
            elif self.pit == "shared":
                perms = best_permutation(pairs.sum(0)).expand(len(predictions), B, S)
            else:
                perms = torch.stack([best_permutation(p) for p in pairs])          # (X, B, S)
        chosen = pairs.gather(-1, perms.unsqueeze(-1)).squeeze(-1)                # (X, B, S)
        # likelihoods: nats per source sample; SI-SNR: mean over utterances and speakers
        count = B * S if self.objective == "sisnr" else lengths.sum().double() * S
        per_exit = chosen.sum((1, 2)) / count                                      # (X,)
        with torch.no_grad():
            idx = perms.unsqueeze(-1).expand(-1, -1, -1, L)                       # (X, B, S, L)
            snr = torch.stack([si_snr(o.estimate[..., :L], targets.gather(1, idx[i]), lengths).mean()
                               for i, o in enumerate(predictions)])
        return LossResult(loss=per_exit.sum().float(), perm=perms[-1], nll=per_exit.detach().float(),
                          si_snr=snr)
