"""press.training.loop with `train.amp=bf16` and/or `train.compile=true`, end to end, against eager float32.

Not a test because torch.compile is slow to build on a CPU. Measured on a shared 2-core CPU,
`--modes compile --steps 1 --finetune-steps 1 --threads 1`: eager 2.1 s + 1.0 s per step; compiled
51.8 s for the crop step (the compilation) and 490.3 s for the fine-tuning step (recompiled for its
variable lengths), losses within 2.1e-7 of eager float32. With 2 crop steps and 1 fine-tuning step
it had not finished after 15 minutes. Each mode runs the real loop (crop stage, fine-tuning with
variable lengths, validation, checkpoints) for a few steps of the `tiny` config at 2 kHz (the
settings of tests/tiny_training.py) in a fresh process, and reports the wall time of every step
(the first compiled steps include the compilation) and its logged loss next to the eager float32
run's. It fails (exit status 1) if a run fails, a loss is not finite, or a loss strays more than
--tolerance (relative) from float32's.

Run:  python benchmarks/train_amp_compile.py [--modes bf16 compile bf16+compile] [--device cpu|cuda]
      [--steps 2] [--finetune-steps 1] [--threads 2] [--tolerance 0.02] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

OVERRIDES = [
    "model.sample_rate=2000", "train.crop_seconds=0.5", "train.batch_size=2", "train.warmup_steps=3",
    "finetune.max_seconds=3.0", "finetune.batch_size=3", "finetune.max_batch_seconds=7.0",
    "train.log_every=1", "train.ckpt_every=100", "train.tensorboard=false", "data.options.epoch_size=12",
    "data.val_examples=4", "data.val_max_seconds=1.0", "data.val_batch_size=2",
]
MODES = {"fp32": ["train.amp=off"], "bf16": ["train.amp=bf16"],
         "compile": ["train.amp=off", "train.compile=true"],
         "bf16+compile": ["train.amp=bf16", "train.compile=true"]}


def measure(mode: str, device: str, steps: int, finetune_steps: int, threads: int) -> dict:
    import tempfile

    import torch

    from press.model import load_config
    from press.training.loop import train

    torch.set_num_threads(threads)
    total = steps + finetune_steps
    cfg = load_config("tiny", OVERRIDES + MODES[mode] + [
        f"train.steps={steps}", f"finetune.steps={finetune_steps}", f"train.val_every={total}"])
    rows, times = [], []
    tic = time.perf_counter()

    def on_step(step: int, row: dict) -> None:
        times.append(time.perf_counter() - tic)
        rows.append(row)

    with tempfile.TemporaryDirectory() as d:
        train(cfg, f"{d}/run", device=device, progress=False, on_step=on_step)
    step_seconds = [round(b - a, 3) for a, b in zip([0.0] + times, times)]
    return {"mode": mode, "device": device, "seconds": round(times[-1], 2), "step_seconds": step_seconds,
            "loss": [r["loss"] for r in rows], "val_loss": rows[-1].get("val_loss")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=["bf16", "compile", "bf16+compile"], choices=list(MODES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=2, help="crop-stage steps")
    p.add_argument("--finetune-steps", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.02, help="largest relative loss gap to float32")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per mode")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.steps, args.finetune_steps, args.threads)))
        return 0
    ok, reference = True, None
    for mode in ["fp32", *[m for m in args.modes if m != "fp32"]]:
        cmd = [sys.executable, __file__, "--one", mode, "--device", args.device, "--steps", str(args.steps),
               "--finetune-steps", str(args.finetune_steps), "--threads", str(args.threads)]
        tic = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(json.dumps({"mode": mode, "error": f"no result within {args.timeout:.0f} s"}), flush=True)
            ok = False
            continue
        if done.returncode != 0:
            print(json.dumps({"mode": mode, "error": done.stderr.strip().splitlines()[-1:],
                              "seconds": round(time.perf_counter() - tic, 1)}), flush=True)
            ok = False
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        losses = result["loss"] + [result["val_loss"]]
        if reference is None:
            reference = losses
        result["max_relative_gap_to_fp32"] = max(abs(a - b) / abs(b) for a, b in zip(losses, reference))
        result["ok"] = all(math.isfinite(v) for v in losses) and result["max_relative_gap_to_fp32"] <= args.tolerance
        ok &= result["ok"]
        print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
