"""Learning-rate schedule: linear warm-up then cosine decay, per stage, as a pure function of step.

Being a function of the global step alone, the schedule needs no state of its own in a checkpoint:
restoring the step restores the learning rate exactly. The fine-tuning stage restarts the schedule
at its own peak (`finetune.lr`) with its own warm-up [ours: the paper does not say].

A crop stage cut short by `train.max_minutes` ends at the step it reached, `crop_steps`, which the
run's state records; the fine-tuning stage then starts there. The crop stage's own schedule is
still the one planned for `train.steps` (its cosine stops where the time ran out).
"""

from __future__ import annotations

import math

from omegaconf import DictConfig


def total_steps(cfg: DictConfig, crop_steps: int | None = None) -> int:
    return (int(cfg.train.steps) if crop_steps is None else crop_steps) + int(cfg.finetune.steps)


def stage_at(cfg: DictConfig, step: int, crop_steps: int | None = None) -> tuple[str, int]:
    """(stage name, step within the stage) of the 0-based global `step`; the crop stage has
    `crop_steps` steps if it was cut short, else `train.steps`."""
    n_train = int(cfg.train.steps) if crop_steps is None else crop_steps
    return ("train", step) if step < n_train else ("finetune", step - n_train)


def warmup_cosine(step: int, steps: int, peak: float, warmup: int, final_ratio: float) -> float:
    """lr for 0-based `step` of `steps`: linear from peak/warmup up to peak, cosine down to peak*final_ratio."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return peak * (final_ratio + (1.0 - final_ratio) * cosine)


def lr_at(cfg: DictConfig, step: int, crop_steps: int | None = None) -> float:
    """The learning rate of the 0-based global `step`."""
    stage, k = stage_at(cfg, step, crop_steps)
    section = cfg[stage]
    return warmup_cosine(k, int(section.steps), float(section.lr), int(section.warmup_steps),
                         float(section.final_lr_ratio))
