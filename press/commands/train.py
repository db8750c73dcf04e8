"""`press train CONFIG --out RUN_DIR [--resume] [key=value ...]`: train or continue a run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from press.commands.options import add_device_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a shipped config name (tiny, small, press4-s, press12-m) or a .yaml file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. train.lr=1e-3 train.steps=5000 data.name=libri2mix data.root=/data/Libri2Mix")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for checkpoints, logs and curves")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR exactly where it stopped")
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in batch jobs)")


def run(args: argparse.Namespace) -> int:
    from press.errors import PressError
    from press.model import load_config
    from press.training.config import resumed_config
    from press.training.loop import train

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise PressError(f"overrides must look like key=value, got {' '.join(bad)}")
    cfg = load_config(args.config, args.overrides)
    if args.resume:
        cfg, notes = resumed_config(Path(args.out), cfg, args.overrides)
        if int(os.environ.get("RANK", "0")) == 0:
            for note in notes:
                print(f"press train: resuming: {note}", file=sys.stderr)
    result = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
    print(f"press train: finished at step {result.step}; best validation loss {best}")
    labels = {"last.safetensors": "last weights", "best.safetensors": "best weights (validation loss)",
              "last.state.pt": "resume state", "log.csv": "log (CSV)", "curves.png": "curves",
              "tensorboard": f"TensorBoard (tensorboard --logdir {result.files['tensorboard']})",
              "config.yaml": "resolved config", "run.json": "version, git commit, sessions"}
    for name, path in result.files.items():
        if path.exists():
            print(f"  {labels[name]:<32} {path}")
    return 0
