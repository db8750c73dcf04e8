"""The training objective: the Student-t block likelihood over all exits, with shared PIT.

Per exit i, speaker j and likelihood block b of n samples, with error energy E = ||x - x̂||²:
    x | x̂, σ² ~ N(x̂, σ² I_n),  σ² ~ InvGamma(α, β)   =>   x ~ Student-t(ν = 2α, x̂, β/α I_n)
    log p = lnΓ(α + n/2) - lnΓ(α) + α ln β - (α + n/2) ln(β + E/2) - (n/2) ln 2π        (the paper)
The loss is minus that log-likelihood summed over blocks, speakers and every exit (unweighted),
under one speaker permutation shared by all exits, chosen to minimise the summed loss. It is
computed on level-normalised audio and divided by the number of valid source samples [ours], so
that it reads in nats per sample and does not depend on the utterance length or level; neither
changes the optimum. [ours] E there is the error energy plus n × `variance_floor` (the network's
−40 dB floor on level-normalised audio): see `PressLoss.pairwise` for why the network's own floor
is not enough.

The level is the one the network normalised by: one per item (B,), the mixture RMS, or one per
likelihood block (B, nb), a causal network's running level (the root of the block's mean squared
frame level, what it scales the block's β by). Block b of every signal is divided by its level s_b
and β by s_b². That is a change of variables within each block: if x ~ Student-t(2α, x̂, β/α I_n),
then x/s_b ~ Student-t(2α, x̂/s_b, β/(α s_b²) I_n), and since −α log1p(E/2β) is unchanged and
−(n/2) ln(β + E/2) gains n ln s_b, log p gains n ln s_b, which depends on the input alone: the
optimum and the gradients are those of the likelihood in input units, except through the floors.
Those are relative to s_b², so the loss's energy floor, n × `variance_floor` × s_b² in input
units, lines up block by block with the network's own β ≥ α × floor × s_b². The SI-SNR terms
are per utterance; they are scale invariant and work on audio divided by one level per item (with
per-block levels, the root of the mean squared level over the item's valid samples).

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
Pair = tuple[torch.Tensor, torch.Tensor]   # (estimates, targets), both (B, S, L)


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
        (est, tgt), utterance = self._normalised(out.estimate[..., :targets.shape[-1]], targets, scale, lengths)
        if self.objective == "sisnr":
            return -self._pair_sisnr(*utterance, lengths).double()
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
        beta = (out.beta / self._block_level(scale).pow(2))[:, :, None]
        # a block of padding scores nothing, but a causal network's β there is 0 (no frame, no
        # level), whose terms are not finite and would make the product with 0 and its gradient NaN
        # (n depends on the item and the block alone)
        beta = torch.where(n[:, :, :1] > 0, beta, 1.0)
        loglik = student_t_loglik if self.objective == "student_t" else gaussian_loglik
        nll = -(loglik(alpha, beta, energy, n) * (n > 0)).sum(-1)              # (B, S, S)
        if self.sisnr_weight:
            # in nats per sample like the likelihood: weight x (-SI-SNR in dB) x the item's samples
            pair = self._pair_sisnr(*utterance, lengths).double()
            nll = nll - self.sisnr_weight * pair * lengths[:, None, None].double()
        return nll

    def _normalised(self, estimate: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor,
                    lengths: torch.Tensor) -> tuple[Pair, Pair]:
        """(estimate, targets) (B, S, L) divided by their level, for the likelihood (every block by
        its own) and for SI-SNR (by one level per item: SI-SNR is scale invariant, its epsilon is not).
        With one level per item (B,) the two are the same tensors."""
        if scale.dim() == 1:
            s = scale[:, None, None]
            levelled = estimate / s, targets / s
            return levelled, levelled
        s = scale.repeat_interleave(self.block, dim=-1)[:, None, :targets.shape[-1]]   # (B, 1, L)
        start = torch.arange(scale.shape[1], device=scale.device) * self.block
        count = (lengths[:, None] - start).clamp(0, self.block).to(scale.dtype)   # (B, nb) valid samples
        # the root of the mean squared level over the item's valid samples
        u = ((scale.pow(2) * count).sum(1) / count.sum(1).clamp_min(1.0)).sqrt()[:, None, None]
        return (estimate / s, targets / s), (estimate / u, targets / u)

    @staticmethod
    def _block_level(scale: torch.Tensor) -> torch.Tensor:
        """The level of every block, to broadcast against (B, S, nb): (B, 1, 1) or (B, 1, nb)."""
        return scale[:, None, None] if scale.dim() == 1 else scale[:, None, :]

    @staticmethod
    def _pair_sisnr(est: torch.Tensor, tgt: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """SI-SNR in dB of every (estimate j, target k) pair (B, S, S)."""
        B, S, L = est.shape
        e = est[:, :, None].expand(B, S, S, L).reshape(B, S * S, L)
        t = tgt[:, None, :].expand(B, S, S, L).reshape(B, S * S, L)
        return si_snr(e, t, lengths).reshape(B, S, S)

    def forward(self, predictions: Sequence[ExitPrediction], targets: torch.Tensor, scale: torch.Tensor,
                lengths: torch.Tensor) -> LossResult:
        """predictions: one per exit; targets: (B, S, L); scale: the level the network normalised
        by, (B,) one per item or (B, nb) one per likelihood block (nb = ceil(L / block));
        lengths: (B,) valid samples per item."""
        B, S, L = targets.shape
        if scale.shape not in ((B,), (B, -(-L // self.block))):
            raise ValueError(f"the level must be (B,) or (B, blocks), got {tuple(scale.shape)} for targets {(B, S, L)}")
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
