"""The linear-RNN scan alone: time per call by chunk length, and against another commit's scan.

    python benchmarks/scan_speed.py [--shapes 8x2000x192 2x8000x448] [--chunks 8 16 32 64]
                                    [--against main] [--repeats 5] [--threads 2] [--clock wall|cpu]

Shapes are N x T x H as a block's `Scan` sees them (N = batch x speakers streams, T frames,
H channels, half forward and half backward in time): `default` trains on 4 x 2 s crops at 1000
frames/s (8 x 2000 x 192), `press4-s` on 1 x 4 s at 2000 frames/s (2 x 8000 x 448). For each
shape: the forward pass without autograd (inference) and forward + backward (training), best of
`--repeats`, every variant interleaved in the same loop so that a shared machine's load hits them
alike. `--against REF` also times REF's `press/model/scan.py` (read with `git show`), both
directions split and concatenated as its `Scan` module did, and prints each time as a ratio to it.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from press.model.scan import scan

ROOT = Path(__file__).resolve().parents[1]


def load_scan_module(ref: str):
    """REF's press/model/scan.py as a module of its own."""
    source = subprocess.run(["git", "show", f"{ref}:press/model/scan.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "scan_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scan_ref", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_scan(ref, a: torch.Tensor, b: torch.Tensor, half: int) -> torch.Tensor:
    """The reference module's scan as its `Scan` module ran it: two directions, then a cat."""
    return torch.cat([ref.linear_scan(a[..., :half], b[..., :half], 8),
                      ref.linear_scan(a[..., half:], b[..., half:], 8, reverse=True)], dim=-1)


def forward_backward(fn: Callable[[], torch.Tensor], a: torch.Tensor, b: torch.Tensor, g: torch.Tensor) -> None:
    torch.autograd.grad(fn(), (a, b), g)


def best_time(fn: Callable[[], None], repeats: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", default=["8x2000x192", "2x8000x448"])
    p.add_argument("--chunks", nargs="+", type=int, default=[8, 16, 32, 64])
    p.add_argument("--against", help="a git commit or branch whose scan to time beside this one")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: this process's CPU time, steadier than wall time on a loaded machine with --threads 1")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)   # as training and the `press` command run (press.tune_process)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    ref = load_scan_module(args.against) if args.against else None
    for shape in args.shapes:
        N, T, H = (int(v) for v in shape.split("x"))
        # decays as the blocks start out: time constants log-spaced from 2 to 500 frames, jittered
        tau = torch.logspace(0.3, 2.7, H // 2).repeat(2)
        a = torch.sigmoid(torch.logit(1 - 1 / tau) + 0.5 * torch.randn(N, T, H)).requires_grad_()
        b = torch.randn(N, T, H).requires_grad_()
        g = torch.randn(N, T, H)
        half = H // 2
        variants: dict[str, Callable[[], torch.Tensor]] = {}
        if ref is not None:
            variants[f"{args.against} (chunk 8)"] = partial(reference_scan, ref, a, b, half)
        for c in args.chunks:
            variants[f"chunk {c}"] = partial(scan, a, b, half, c)
        results: dict[str, list[float]] = {name: [0.0, 0.0] for name in variants}
        for _ in range(2):  # warm-up round, then the measured one
            for name, fn in variants.items():
                with torch.no_grad():
                    results[name][0] = best_time(fn, args.repeats, clock)
                results[name][1] = best_time(partial(forward_backward, fn, a, b, g), args.repeats, clock)
        base = results[next(iter(variants))]
        print(f"\n{shape} (N x T x H)\n{'variant':<24}{'forward ms':>12}{'ratio':>8}{'fwd+bwd ms':>12}{'ratio':>8}")
        for name, (fwd, both) in results.items():
            print(f"{name:<24}{fwd * 1e3:>12.2f}{fwd / base[0]:>8.2f}{both * 1e3:>12.2f}{both / base[1]:>8.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
