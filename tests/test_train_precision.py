"""`train.amp=bf16` trains through press.training.loop on a CPU: the network runs under bf16 autocast (the
losses move off the float32 run's, by little), the loss and weights stay float32 and finite.

`train.compile=true` is not tested here: on the shared 2-core CPU, one crop step took 52 s (the
compilation) and the first fine-tuning step 490 s more (recompiled for its new shapes), against
2.1 s + 1.0 s eager; benchmarks/train_amp_compile.py runs it (and bf16) instead."""

import math

import torch
from safetensors.torch import load_file
from tiny_training import tiny_run_config

from press.training.loop import train

STEPS = ["train.steps=2", "finetune.steps=1", "train.log_every=1", "train.val_every=3"]


def run(tmp_path, name, *extra):
    rows = []
    train(tiny_run_config(*STEPS, *extra), tmp_path / name, device="cpu", progress=False,
          on_step=lambda step, row: rows.append(row))
    return rows


def test_bf16_autocast_trains_a_few_steps(tmp_path):
    bf16 = run(tmp_path, "bf16", "train.amp=bf16")
    fp32 = run(tmp_path, "fp32", "train.amp=off")
    assert len(bf16) == len(fp32) == 3 and "val_loss" in bf16[-1]
    for b, f in zip(bf16, fp32):
        assert all(math.isfinite(v) for v in b.values())
        # the same data, seed and steps: only the network's precision differs
        assert b["loss"] != f["loss"] and abs(b["loss"] - f["loss"]) < 1e-2 * abs(f["loss"])
    weights = load_file(str(tmp_path / "bf16" / "last.safetensors"))
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in weights.values())
