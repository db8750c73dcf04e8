"""Forward time, real-time factor and achieved GMAC/s per exit, next to this machine's matmul speed.

    python benchmarks/model_speed.py [--config press4-s | --weights default] [--seconds 4] [--threads 2]
                                     [--repeats 5] [--malloc kept|system] [--compile] [--amp bf16]

Per exit k: the wall time of running the model to exit k (begin + k advances, every earlier exit's
heads included, as dynamic inference pays), its real-time factor (time / audio duration), and the
MACs it did per second of wall time. The float32 matmul throughput of the same machine and thread
count makes model efficiency a ratio to the hardware. Memory is kept by the process as the `press` command
keeps it (press.allocator); `--malloc system` measures glibc's default instead. `--compile` times the model after
`PressNet.compile_inference` (inductor; the compiling passes are warm-ups, not timed). `--amp bf16` runs
the model under bf16 autocast (the forget gates and the exits' heads stay float32) and prints the
bf16 matmul throughput: a CPU with AVX-512 bf16 or AMX does twice the float32 rate or more. With
either, it prints how far the last exit lies from eager float32's (SNR against it): a speed is only
worth reporting for the same outputs. The header says whether PRESS's compiled CPU kernels ran
(press.model.kernels); `PRESS_KERNELS=0 python benchmarks/model_speed.py ...` measures the PyTorch code.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from press.allocator import keep_freed_memory
from press.model import PressNet, kernels, load_config, model_config
from press.model.compute import exit_costs
from press.model.pretrained import load


def matmul_gmacs(n: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="press4-s")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--malloc", choices=("kept", "system"), default="kept")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp", choices=("off", "bf16"), default="off")
    p.add_argument("--weights", help="trained weights (a shipped name or .safetensors) instead of the config's random init")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.malloc == "kept":
        keep_freed_memory()
    if args.weights:
        model = load(args.weights)[0].eval()
        args.config = args.weights
    else:
        model = PressNet(model_config(load_config(args.config))).eval()
    costs = exit_costs(model)
    x = torch.randn(1, round(args.seconds * model.cfg.sample_rate))
    with torch.inference_mode():
        ref = model(x)[-1].estimate             # eager float32: what --compile and --amp must give
    if args.compile:
        model.compile_inference()
    times = [[] for _ in range(model.n_exits)]
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.amp == "bf16" else contextlib.nullcontext
    with torch.inference_mode(), amp():
        last = model(x)[-1].estimate.float()  # warm-up (and, with --compile, compilation)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            state = model.begin(x)
            for k in range(model.n_exits):
                _, state = model.advance(state)
                times[k].append(time.perf_counter() - t0)
    peak = matmul_gmacs()
    print(f"{args.config}: {args.seconds:g} s of {model.cfg.sample_rate} Hz audio, {args.threads} threads, "
          f"median of {args.repeats}, malloc {args.malloc}{', compiled' if args.compile else ''}"
          f"{', bf16 autocast' if args.amp == 'bf16' else ''}, "
          f"CPU kernels {'on' if kernels.available() else 'off (PRESS_KERNELS=0 or no compiler)'}")
    print(f"machine float32 matmul: {peak:.1f} GMAC/s")
    if args.amp == "bf16":
        print(f"machine bfloat16 matmul: {matmul_gmacs(dtype=torch.bfloat16):.1f} GMAC/s")
    if args.amp == "bf16" or args.compile:
        snr = 10 * torch.log10(ref.pow(2).sum() / (last - ref).pow(2).sum().clamp_min(1e-30)).item()
        print(f"last exit against eager float32: {snr:.1f} dB SNR")
    print(f"{'exit':>4} {'GMAC/s audio':>12} {'time (s)':>9} {'RTF':>7} {'achieved GMAC/s':>16} {'of matmul':>9}")
    for k, c in enumerate(costs):
        t = sorted(times[k])[len(times[k]) // 2]
        achieved = c.gmacs_per_second * args.seconds / t
        print(f"{k + 1:>4} {c.gmacs_per_second:>12.2f} {t:>9.3f} {t / args.seconds:>7.3f} "
              f"{achieved:>16.2f} {achieved / peak:>9.1%}")


if __name__ == "__main__":
    main()
