"""Full-length fine-tuning step time: the whole network against the variance heads alone
(`finetune.trainable=heads`), on the same batches, alternating in one run.

Both run `press.training.loop.train` from the same weights with `train.steps=0`, so every step is a
fine-tuning step on padded full-length utterances (the config's `finetune` batches); validation and
checkpoints are pushed out of the timed steps. A step's time is the gap between two calls of the
step hook; the first `--skip` steps (allocator and caches warming) are left out and the median of the
rest is kept, best of `--rounds`. Read the ratio: machines differ.

Run:  python benchmarks/finetune_heads_speed.py [--config default] [--init default] [--root DIR]
      [--steps 25] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from press.model import load_config
from press.training.loop import train


def step_time(args: argparse.Namespace, trainable: str) -> float:
    """Median seconds per fine-tuning step of one fresh run."""
    stamps: list[float] = []
    overrides = [f"train.init={args.init}", "train.steps=0", f"finetune.steps={args.steps}",
                 f"finetune.trainable={trainable}", "data.val_examples=1", "data.val_max_seconds=1",
                 f"train.val_every={10 * args.steps}", f"train.ckpt_every={10 * args.steps}", "train.tensorboard=false"]
    if args.root:
        overrides.append(f"data.root={args.root}")
    with tempfile.TemporaryDirectory() as tmp:
        train(load_config(args.config, overrides), f"{tmp}/run", device="cpu", progress=False,
              on_step=lambda step, row: stamps.append(time.monotonic()))
    gaps = [b - a for a, b in zip(stamps[args.skip:-2], stamps[args.skip + 1:-1])]   # the last step validates
    return statistics.median(gaps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="default")
    p.add_argument("--init", default="default", help="weights to start from (a shipped name or .safetensors)")
    p.add_argument("--root", default=None, help="corpus folder for data.root (default: the config's)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--skip", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.steps < args.skip + 3:
        p.error("--steps must exceed --skip by at least 3")
    torch.set_num_threads(args.threads)
    best: dict[str, float] = {}
    for r in range(args.rounds):
        for trainable in ("all", "heads"):
            t = step_time(args, trainable)
            best[trainable] = min(t, best.get(trainable, t))
            print(f"round {r + 1}  finetune.trainable={trainable:5}  median step {t:.3f} s", flush=True)
    print(f"best: all {best['all']:.3f} s, heads {best['heads']:.3f} s; heads-only steps are "
          f"{best['all'] / best['heads']:.2f}x faster")


if __name__ == "__main__":
    main()
