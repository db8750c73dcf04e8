"""Training throughput: optimiser steps per second, audio seconds per second, and peak memory,
beside the code of another commit in the same run.

Each config trains at its own recipe (batch size x crop length from its `train:` section) on random
mixtures of that shape: data loading is not measured (the built-in corpus mixes a 4 s crop in well
under a millisecond, see data_throughput.py). A step is forward through every exit, the loss, backward,
gradient clipping and AdamW, exactly as in press.training.loop. Every measurement runs in a fresh
process so that peak resident memory (CPU) is its own; on a GPU the peak is torch's allocated memory.

`--against REF` (a commit or branch; `merge-base`: the merge-base of HEAD with main, the code a
branch started from; default `none`, this tree alone) checks REF out into a temporary `git worktree`
(so it needs a git clone) and measures its code (this script, with REF's tree
first on PYTHONPATH: the same measurement for both), alternating with this tree's, `--rounds`
times; each side's best round is kept and the table ends with this tree's ratio to REF. Machines
are shared and differ: read the ratios, not the absolute times. On a loaded machine wall time
swings by 2x from one minute to the next; `--threads 1 --clock cpu` times each step by the
process's own CPU time, which other jobs barely move. `--set key=value` overrides this tree's
config only (e.g. `train.checkpoint_blocks=true`), so an option REF does not have can be measured
against it; `--amp` and `--compile` are this tree's too, REF training as its `press train` did by
default (float32, eager): the speed a user had before against the speed they can have now. Each
code runs with the memory policy its own `press train` had: this tree keeps freed memory in the
process (press.allocator; `--malloc system` measures it without), a REF from before that module ran
on glibc's default.

Run:  python benchmarks/train_throughput.py [--configs default press4-s] [--steps 3] [--rounds 2]
      [--against REF|merge-base|none] [--set train.checkpoint_blocks=true] [--device cpu|cuda] [--threads 2] [--clock wall|cpu]
      [--amp off|bf16] [--compile] [--malloc kept|system]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, device: str, steps: int, warmup: int, amp: str, compile_: bool, overrides: list[str],
            clock: str, malloc: str) -> dict:
    import resource

    import torch

    import press
    # a REF from before press.allocator ran on glibc's default, as its `press train` did (look in its own
    # tree: an editable install of this tree would otherwise serve `press.allocator` to REF's package)
    kept = False
    if malloc == "kept" and (Path(press.__file__).parent / "allocator.py").is_file():
        from press.allocator import keep_freed_memory

        kept = keep_freed_memory()
    from press.model import PressNet, load_config, model_config
    from press.training.loss import TrainingLoss
    from press.training.config import resolve_config
    from press.training.loop import float_outputs, make_optimizer

    cfg = resolve_config(load_config(name, [f"train.amp={amp}", *overrides]))
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_flush_denormal(True)   # as the training loop does
    torch.manual_seed(0)
    model = PressNet(model_config(cfg)).to(dev).train()
    if cfg.train.get("checkpoint_blocks", False):   # .get: a REF from before the key measures without it
        model.checkpoint_blocks(True)
    net = torch.compile(model) if compile_ else model
    optimizer = make_optimizer(model, cfg)
    loss_fn = TrainingLoss(int(cfg.model.block), str(cfg.loss.objective), str(cfg.loss.pit), float(cfg.loss.sisnr_weight))
    try:                                            # the tree's own choice, as its `press train` makes it
        from press.training.loop import precision_for
        precision = precision_for(cfg, dev)
    except ImportError:                             # a REF from before it: float32 unless bf16 is asked
        precision = "bf16" if amp == "bf16" else "float32"
    amp_ctx = ((lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if precision == "bf16"
               else contextlib.nullcontext)
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
    now = time.process_time if clock == "cpu" else time.perf_counter
    start = now()
    for _ in range(steps):
        step()
    sync()
    elapsed = (now() - start) / steps
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": name, "code": str(Path(press.__file__).parents[1]), "device": device, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "batch": f"{batch} x {seconds:g} s", "s_per_step": elapsed, "steps_per_s": 1 / elapsed,
            "audio_s_per_s": batch * seconds / elapsed, "peak_gib": peak / 2**30, "malloc": "kept" if kept else "system"}


def run_one(tree: Path, name: str, args: argparse.Namespace, overrides: list[str], options: bool) -> dict:
    """One measurement of `tree`'s code by this script, in a fresh process (with --amp and --compile if `options`)."""
    cmd = [sys.executable, __file__, "--one", name, "--device", args.device, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--amp", args.amp if options else "off",
           "--clock", args.clock, "--malloc", args.malloc]
    cmd += ["--compile"] if args.compile and options else []
    cmd += [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, check=False)
    if out.returncode:
        raise SystemExit(f"measuring {name} in {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def checkout(ref: str) -> Path:
    """REF in a temporary detached worktree (removed by `remove`)."""
    path = Path(tempfile.mkdtemp(prefix="press-ref-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(path), ref], cwd=ROOT, check=True)
    return path


def remove(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)


def row(label: str, r: dict) -> str:
    return (f"{label:<30}{r['device']:>7}{r['params_m']:>8.2f}M{r['batch']:>11}{r['s_per_step']:>9.3f}"
            f"{r['steps_per_s']:>9.2f}{r['audio_s_per_s']:>11.2f}{r['peak_gib']:>10.2f}  {r.get('malloc', 'system')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["default", "press4-s"])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of REF and this tree; best kept")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (at most the cores you have)")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "auto"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the process's CPU time per step (steadier on a loaded machine with --threads 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for this tree only (repeatable)")
    parser.add_argument("--against", default="none",
                        help="commit to measure beside this tree: a ref, merge-base (with main) or none (default)")
    parser.add_argument("--malloc", choices=("kept", "system"), default="kept",
                        help="this tree's memory policy: kept (press.allocator, as `press train`) or glibc's default")
    parser.add_argument("--one", help=argparse.SUPPRESS)   # internal: measure one config, print JSON
    args = parser.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.one, args.device, args.steps, args.warmup, args.amp, args.compile, args.set,
                                 args.clock, args.malloc)))
        return
    ref = args.against
    if ref != "none":
        spec = ["merge-base", "HEAD", "main"] if ref == "merge-base" else ["rev-parse", "--verify", f"{ref}^{{commit}}"]
        found = subprocess.run(["git", *spec], cwd=ROOT, capture_output=True, text=True, check=False)
        if found.returncode:
            raise SystemExit(f"--against {ref}: no such commit in {ROOT} ({found.stderr.strip() or 'not a git clone'});"
                             " --against none measures this tree alone")
        ref = found.stdout.strip()
    ref_tree = None if ref == "none" else checkout(ref)
    print(f"{'config':<30}{'device':>7}{'params':>9}{'batch':>11}{'s/step':>9}{'steps/s':>9}{'audio s/s':>11}"
          f"{'peak GiB':>10}  malloc", flush=True)
    try:
        for name in args.configs:
            best: dict[str, dict] = {}
            for _ in range(args.rounds):
                sides = [("this", ROOT, args.set)] + ([("ref", ref_tree, [])] if ref_tree else [])
                for side, tree, overrides in sides:
                    r = run_one(tree, name, args, overrides, options=side == "this")
                    extra = [o for o, on in (("bf16", args.amp == "bf16"), ("compiled", args.compile)) if on and side == "this"]
                    print(row(f"{name} ({', '.join([side, *extra])})", r), flush=True)
                    if side not in best or r["audio_s_per_s"] > best[side]["audio_s_per_s"]:
                        best[side] = r
            if ref_tree:
                new, old = best["this"], best["ref"]
                assert (new["code"], old["code"]) == (str(ROOT), str(ref_tree)), "measured the wrong code"
                print(f"{name}: this tree / {ref[:12]} ({args.clock} time): audio-s/s x{new['audio_s_per_s'] / old['audio_s_per_s']:.2f}, "
                      f"peak memory x{new['peak_gib'] / old['peak_gib']:.2f} (best of {args.rounds})", flush=True)
    finally:
        if ref_tree:
            remove(ref_tree)


if __name__ == "__main__":
    main()
