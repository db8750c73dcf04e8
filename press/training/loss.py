"""The training loss on PRESS-Net's exits: the paper's likelihood (`press.prob.likelihood`) fed from
the network.

`press.prob` knows distributions and tensors, not the network, and `press.model` knows nothing of
the loss; this is where the two meet. The network's conventions enter the likelihood here: the
level it normalises its input by (`input_scale`) and the variance floor it puts under every exit's
β/α (`VARIANCE_FLOOR`), which the likelihood also adds to the error energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from press.model import ExitOutput
from press.model.heads import VARIANCE_FLOOR
from press.model.press_net import input_scale
from press.prob.likelihood import ExitPrediction, LossResult, Objective, PitMode, PressLoss


class TrainingLoss(torch.nn.Module):
    """`PressLoss` over every exit of a batch, at the network's input level and variance floor."""

    def __init__(self, block: int, objective: Objective = "student_t", pit: PitMode = "shared",
                 sisnr_weight: float = 0.0) -> None:
        super().__init__()
        self.likelihood = PressLoss(block, objective, pit, sisnr_weight, variance_floor=VARIANCE_FLOOR)

    def forward(self, outputs: Sequence[ExitOutput], targets: torch.Tensor, mixture: torch.Tensor,
                lengths: torch.Tensor | None = None) -> LossResult:
        """outputs: one ExitOutput per exit; targets: (B, S, L); mixture: (B, L); lengths: (B,),
        all of L when None."""
        B, _, L = targets.shape
        if lengths is None:
            lengths = torch.full((B,), L, device=targets.device)
        predictions = [ExitPrediction(o.estimate, o.alpha, o.beta) for o in outputs]
        return self.likelihood(predictions, targets, input_scale(mixture, lengths), lengths)
