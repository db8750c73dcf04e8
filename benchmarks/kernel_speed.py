"""PRESS's compiled CPU kernels against the PyTorch code they replace, one block at a time.

    python benchmarks/kernel_speed.py [--threads 2] [--repeats 5] [--clock wall|cpu]
                                      [--configs default press4-s]

For each named config, its four kernel-backed modules at the shapes that config trains and infers
on (N = batch x speakers streams of T frames of D channels: `default` 4 x 2 s at 1000 frames/s for
training and 1 x 4 s for inference, `press4-s` 1 x 4 s at 2000 frames/s for both): the linear-RNN
mixer with its projections, the long-convolution mixer with its projections, the SwiGLU MLP and an
RMSNorm. Each is timed forward without autograd (inference) and forward + backward of a sum
(training), kernels on and then off (`press.model.kernels.disabled`), interleaved in one loop so
that a shared machine's load hits both alike; best of `--repeats` after one warm-up. Prints the
times and each ratio (PyTorch / kernel: above 1 is the kernel's gain).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from press.allocator import keep_freed_memory
from press.model import kernels, load_config, model_config
from press.model.blocks import LinearRNN, LongConv, RMSNorm, SwiGLU

# (streams, frames) for inference and for a training step, per config
SHAPES = {"default": {"inference": (2, 4000), "training": (8, 2000)},
          "press4-s": {"inference": (2, 8000), "training": (2, 8000)}}


def modules(name: str) -> dict[str, torch.nn.Module]:
    """The config's kernel-backed modules at its sizes, randomly initialised."""
    cfg = model_config(load_config(name))
    D = cfg.dim
    return {"LinearRNN": LinearRNN(D, round(cfg.rnn_expand * D), cfg.scan_chunk),
            "LongConv": LongConv(D, round(cfg.conv_expand * D), cfg.conv_kernel),
            "SwiGLU": SwiGLU(D, round(cfg.ffn_expand * D)),
            "RMSNorm": RMSNorm(D)}


def call(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return module(x, mask) if isinstance(module, (LinearRNN, LongConv)) else module(x)


def timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(SHAPES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = p.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    if not kernels.available():
        raise SystemExit("the kernels could not be built here (see the warning): nothing to compare")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.clock} clock, best of {args.repeats}; "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| config | module | streams x frames | forward: PyTorch -> kernel | ratio "
          "| forward + backward: PyTorch -> kernel | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in args.configs:
        torch.manual_seed(0)
        D = model_config(load_config(name)).dim
        for label, module in modules(name).items():
            row = []
            for mode in ("inference", "training"):
                N, T = SHAPES[name][mode]
                x = torch.randn(N, T, D, requires_grad=mode == "training")
                mask = torch.ones(N, T, 1)

                def run(off: bool, mode=mode, module=module, x=x, mask=mask) -> None:
                    with kernels.disabled() if off else torch.enable_grad():
                        if mode == "inference":
                            with torch.inference_mode():
                                call(module, x, mask)
                        else:
                            call(module, x, mask).sum().backward()

                times = {False: [], True: []}
                for _ in range(args.repeats + 1):          # the first round warms both up
                    for off in (False, True):
                        times[off].append(timed(lambda off=off: run(off), clock))
                on, off = min(times[False][1:]), min(times[True][1:])
                row.append((N, T, off, on))
            (Ni, Ti, fi_off, fi_on), (Nt, Tt, ft_off, ft_on) = row
            shapes = f"{Ni} x {Ti}" if (Ni, Ti) == (Nt, Tt) else f"{Ni} x {Ti} / {Nt} x {Tt}"
            print(f"| {name} | {label} | {shapes} | {fi_off * 1e3:.1f} -> {fi_on * 1e3:.1f} ms | x{fi_off / fi_on:.2f} "
                  f"| {ft_off * 1e3:.1f} -> {ft_on * 1e3:.1f} ms | x{ft_off / ft_on:.2f} |")


if __name__ == "__main__":
    main()
