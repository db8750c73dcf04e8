"""Where PRESS spends its time and memory: torch.profiler over inference and one training step.

    python benchmarks/profile_ops.py [--configs default press4-s] [--seconds 4] [--threads 2]
                                     [--top 12] [--train-batch 1] [--train-seconds 4] [--malloc kept|system]

Inference: one forward pass through every exit (begin + every advance, as `press separate` runs
the last exit) on `--seconds` of random audio, after a warm-up. Training: one step exactly as the
loop takes it (forward through every exit, the Student-t loss with shared PIT, backward, AdamW) on
a batch of `--train-batch` × `--train-seconds`. For each, the ops that take the most self CPU time
and the ones that allocate the most memory (profile_memory), as the profiler's tables print them.
Models are randomly initialised from their configs: time and memory do not depend on the weights.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile


def build(name: str):
    from press.model import PressNet, load_config, model_config
    from press.training.config import resolve_config

    cfg = resolve_config(load_config(name))
    torch.manual_seed(0)
    return PressNet(model_config(cfg)), cfg


def inference(name: str, seconds: float, top: int) -> None:
    model, cfg = build(name)
    model.eval()
    x = torch.randn(1, int(seconds * cfg.model.sample_rate)) * 0.1
    with torch.inference_mode():
        model(x)                                                           # warm-up
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(x)
    print(f"\n## {name}: inference, 1 x {seconds:g} s, every exit")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    print(prof.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=top // 2))


def training(name: str, batch: int, seconds: float, top: int) -> None:
    from press.training.loss import TrainingLoss
    from press.training.loop import make_optimizer

    model, cfg = build(name)
    model.train()
    n = int(seconds * cfg.model.sample_rate)
    sources = torch.randn(batch, cfg.model.n_src, n) * torch.rand(batch, cfg.model.n_src, 1)
    mixture = sources.sum(1)
    loss_fn = TrainingLoss(cfg.model.block, cfg.loss.objective, cfg.loss.pit, cfg.loss.sisnr_weight)
    optimizer = make_optimizer(model, cfg)

    def step() -> None:
        loss_fn(model(mixture), sources, mixture).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()                                                                 # warm-up
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    print(f"\n## {name}: one training step, {batch} x {seconds:g} s")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    print(prof.key_averages().table(sort_by="self_cpu_memory_usage", row_limit=top // 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["default", "press4-s"])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--train-batch", type=int, default=1)
    p.add_argument("--train-seconds", type=float, default=4.0)
    p.add_argument("--malloc", choices=("kept", "system"), default="kept",
                   help="kept: freed memory stays in the process, as the `press` command runs (press.allocator)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.malloc == "kept":
        from press.allocator import keep_freed_memory

        keep_freed_memory()
    for name in args.configs:
        inference(name, args.seconds, args.top)
        training(name, args.train_batch, args.train_seconds, args.top)


if __name__ == "__main__":
    main()
