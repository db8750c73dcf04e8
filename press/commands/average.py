"""`press average OUT CKPT CKPT ...`: one checkpoint whose weights are the mean of several of one run."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="the averaged checkpoint to write (.safetensors)")
    p.add_argument("checkpoints", nargs="+", help="checkpoints of one model config (e.g. a run's snapshots)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from press.errors import PressError
    from press.model.checkpoint import average_checkpoints, save_model

    if Path(args.out).suffix != ".safetensors":
        raise PressError(f"{args.out}: the output must be a .safetensors file")
    if Path(args.out).resolve() in {Path(c).resolve() for c in args.checkpoints}:
        raise PressError(f"{args.out} is one of the inputs; write the average to a new file")
    model, cfg, extra = average_checkpoints(args.checkpoints)
    save_model(args.out, model, cfg, {**extra, "averaged": [Path(c).name for c in args.checkpoints]})
    print(f"wrote the mean of {len(args.checkpoints)} checkpoints to {args.out}")
    return 0
