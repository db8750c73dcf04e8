"""A training config small enough for tests: the `tiny` model at 2 kHz on a 12-item built-in epoch.

At 2 kHz (the built-in corpus resamples on load) every tensor is 4x shorter than at 8 kHz, so a
step takes tens of milliseconds while crops, fine-tuning buckets and validation all still run.
"""

from omegaconf import DictConfig

from press.model import load_config
from press.training.config import resolve_config

OVERRIDES = [
    "model.sample_rate=2000", "train.crop_seconds=0.5", "train.batch_size=2", "train.warmup_steps=3",
    "train.steps=14", "finetune.steps=6", "finetune.max_seconds=3.0", "finetune.batch_size=3",
    "finetune.max_batch_seconds=7.0", "train.log_every=2", "train.val_every=5", "train.ckpt_every=5",
    "train.tensorboard=false", "data.options.epoch_size=12", "data.val_examples=4", "data.val_max_seconds=1.0",
    "data.val_batch_size=2",
    # float32 on every machine: `auto` picks bf16 on CPUs with bf16 instructions, and these tests must
    # check the same arithmetic wherever CI runs (test_train_precision trains under bf16 on purpose)
    "train.amp=off",
]


def tiny_run_config(*extra: str) -> DictConfig:
    """Resolved, as `press train` resolves it: every section and default present (the typed configs)."""
    return resolve_config(load_config("tiny", OVERRIDES + list(extra)))


def loss_and_grads(model, loss_fn, batch: dict) -> tuple:
    """The loss of one padded batch and every parameter's gradient: what padding must not change."""
    model.zero_grad()
    res = loss_fn(model(batch["mixture"], batch["lengths"]), batch["sources"], batch["mixture"], batch["lengths"])
    res.loss.backward()
    return res.loss.detach(), [p.grad.clone() for p in model.parameters()]
