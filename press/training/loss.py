"""The training loss on PRESS-Net's exits: the paper's likelihood (`press.prob.likelihood`) fed from
the network.

`press.prob` knows distributions and tensors, not the network, and `press.model` knows nothing of
the loss; this is where the two meet. The network's conventions enter the likelihood here: the
level it normalises its input by and the variance floor it puts under every exit's β/α
(`VARIANCE_FLOOR`), which the likelihood also adds to the error energy. The level is the RMS of the
whole input (`input_scale`), or for a causal network its running level, which changes from frame
to frame: the likelihood then takes one level per block, the one the network scaled that block's β
by, so that both floors sit at the same level in every block (`block_level`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from press.model import ExitOutput, ModelConfig
from press.model.heads import VARIANCE_FLOOR
from press.model.level import SCALE_FLOOR, block_power, input_scale, level_decay, level_start, running_level
from press.prob.likelihood import ExitPrediction, LossResult, Objective, PitMode, PressLoss


def block_level(cfg: ModelConfig, mixture: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The level a causal network normalised each likelihood block of mixture (B, L) by: (B, nb).

    The root of the block's mean squared running level, computed as `PressNet.begin` computes it
    (the input padded to whole blocks, samples past `lengths` zeroed and their frames masked), so
    its square is the factor the network multiplied the block's β by. A block of padding only has
    no level (0 in the network); it gets the floor here, a positive level that scores nothing.
    """
    B, L = mixture.shape
    Lp = -(-max(L, 1) // cfg.block) * cfg.block
    valid = torch.arange(Lp, device=mixture.device) < lengths[:, None]
    x = F.pad(mixture, (0, Lp - L)) * valid                                    # (B, Lp)
    n_frames = (lengths + cfg.patch - 1) // cfg.patch
    mask = (torch.arange(Lp // cfg.patch, device=x.device) < n_frames[:, None]).to(x.dtype)   # (B, T)
    level, _ = running_level(x, level_start(B, x), level_decay(cfg.sample_rate, cfg.patch), cfg.patch, mask)
    return block_power(level, mask, cfg.frames_per_block).clamp_min(SCALE_FLOOR ** 2).sqrt()   # (B, nb)


class TrainingLoss(torch.nn.Module):
    """`PressLoss` over every exit of a batch, at the network's level and variance floor."""

    def __init__(self, block: int, objective: Objective = "student_t", pit: PitMode = "shared",
                 sisnr_weight: float = 0.0, *, model: ModelConfig | None = None) -> None:
        """model: the network's config, needed for a causal one (its running level); None, or a
        non-causal config: the level is the input's RMS."""
        super().__init__()
        if model is not None and model.block != block:
            raise ValueError(f"the loss's block ({block}) must be the model's ({model.block})")
        self.causal_model = model if model is not None and model.causal else None   # whose running level
        self.likelihood = PressLoss(block, objective, pit, sisnr_weight, variance_floor=VARIANCE_FLOOR)

    def forward(self, outputs: Sequence[ExitOutput], targets: torch.Tensor, mixture: torch.Tensor,
                lengths: torch.Tensor | None = None) -> LossResult:
        """outputs: one ExitOutput per exit; targets: (B, S, L); mixture: (B, L); lengths: (B,),
        all of L when None."""
        B, _, L = targets.shape
        if lengths is None:
            lengths = torch.full((B,), L, device=targets.device)
        predictions = [ExitPrediction(o.estimate, o.alpha, o.beta) for o in outputs]
        if self.causal_model is None:
            level = input_scale(mixture, lengths)                              # (B,)
        else:
            level = block_level(self.causal_model, mixture, lengths)           # (B, nb)
        return self.likelihood(predictions, targets, level, lengths)
