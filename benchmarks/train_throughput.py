"""Training throughput: optimiser steps per second, audio seconds per second, and peak memory.

Each config trains at its own recipe (batch size x crop length from its `train:` section) on random
mixtures of that shape: data loading is not measured (the built-in corpus mixes a 4 s crop in well
under a millisecond, see data_throughput.py). A step is forward through every exit, the loss, backward,
gradient clipping and AdamW, exactly as in press.training.loop. Each config runs in a fresh process so that
peak resident memory (CPU) is its own; on a GPU the peak is torch's allocated memory.

Run:  python benchmarks/train_throughput.py [--configs tiny small press4-s] [--steps 5] [--device cpu|cuda]
      [--threads 2] [--amp off|bf16] [--compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def measure(name: str, device: str, steps: int, warmup: int, amp: str, compile_: bool) -> dict:
    import resource

    import torch

    from press.model import PressNet, load_config, model_config
    from press.prob.likelihood import PressLoss
    from press.training.config import resolve_config
    from press.training.loop import autocast_for, float_outputs, make_optimizer

    cfg = resolve_config(load_config(name, [f"train.amp={amp}"]))
    dev = torch.device(device)
    torch.manual_seed(0)
    model = PressNet(model_config(cfg)).to(dev).train()
    net = torch.compile(model) if compile_ else model
    optimizer = make_optimizer(model, cfg)
    loss_fn = PressLoss(int(cfg.model.block), str(cfg.loss.objective), str(cfg.loss.pit), float(cfg.loss.sisnr_weight))
    amp_ctx = autocast_for(cfg, dev)
    batch, seconds = int(cfg.train.batch_size), float(cfg.train.crop_seconds)
    n = int(seconds * int(cfg.model.sample_rate))
    sources = torch.randn(batch, int(cfg.model.n_src), n, device=dev) * torch.rand(batch, int(cfg.model.n_src), 1, device=dev)
    mixture = sources.sum(1)

    def step() -> None:
        with amp_ctx():
            outputs = net(mixture)
        loss_fn(float_outputs(outputs), sources, mixture).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.train.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    elapsed = (time.perf_counter() - start) / steps
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": name, "device": device, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "batch": f"{batch} x {seconds:g} s", "s_per_step": elapsed, "steps_per_s": 1 / elapsed,
            "audio_s_per_s": batch * seconds / elapsed, "peak_gib": peak / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "press4-s"])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (at most the cores you have)")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "auto"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)   # internal: measure one config, print JSON
    args = parser.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.one, args.device, args.steps, args.warmup, args.amp, args.compile)))
        return
    print(f"{'config':<10}{'device':>7}{'params':>9}{'batch':>11}{'s/step':>9}{'steps/s':>9}{'audio s/s':>11}{'peak GiB':>10}")
    for name in args.configs:
        cmd = [sys.executable, __file__, "--one", name, "--device", args.device, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--amp", args.amp]
        cmd += ["--compile"] if args.compile else []
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        print(f"{r['config']:<10}{r['device']:>7}{r['params_m']:>8.2f}M{r['batch']:>11}{r['s_per_step']:>9.3f}"
              f"{r['steps_per_s']:>9.2f}{r['audio_s_per_s']:>11.1f}{r['peak_gib']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
