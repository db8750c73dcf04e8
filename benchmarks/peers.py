"""PRESS beside Asteroid's Conv-TasNet, DPRNN-TasNet and SuDoRM-RF, measured in one run.

    python benchmarks/peers.py --venv PEERS_VENV [--seconds 4] [--threads 2 1] [--repeats 5]
        [--train-batch 4] [--train-seconds 2] [--train-steps 3] [--models ...] [--compile]

Asteroid is not a PRESS dependency: it lives in a virtual environment of its own that sees the
installed torch and PRESS (benchmarks/README.md and docs/results.md, "Beside Asteroid's separators",
have the commands). `--venv DIR` (or the environment variable PRESS_PEERS_VENV) names it: the script
runs itself again with DIR/bin/python, and stops with the install commands when DIR has no Python or
no asteroid. Run with that environment's Python directly, `--venv` is not needed. This script
installs nothing; with no `--venv` and no asteroid it says how to install it and measures PRESS alone.

For every model, each measurement runs in a fresh subprocess so that thread settings and memory peaks
do not mix:
  * MACs: one counter for all models, torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2), on
    one forward pass of `--seconds` of 8 kHz audio. oneDNN is switched off while counting, because the
    fused oneDNN LSTM (aten.mkldnn_rnn_layer) has no FLOP formula and counts zero; without oneDNN the
    LSTM runs as plain matmuls that the counter sees. Element-wise work (norms, gates, PRESS's scan and
    S x S attention) is not counted by it. For PRESS, `press info`'s own count (press.model.compute.
    exit_costs, all exits, with one MAC per channel and frame for the scan) is shown beside it.
  * real-time factor: forward only, under inference_mode, best of `--repeats` after `--warmup` passes,
    at each thread count of `--threads` (oneDNN on, as torch runs by default); PRESS runs every exit.
    With `--compile`, every model is timed after torch.compile (inductor), the compiling pass untimed.
  * achieved GMAC/s = counted MACs / forward time, and its fraction of the float32 matmul peak measured
    in this same run at the same thread count (benchmarks/model_speed.py's matmul_gmacs, best of 1024²
    and 2048² square matmuls, measured before and after the models; the higher is used).
  * memory: every worker first calls press.allocator.keep_freed_memory, as the `press` command does
    (freed activations are reused from the heap instead of faulted in again from the kernel); it helps
    every model, so all of them get it. `--malloc system` keeps glibc's default for all of them.
  * training: one step = forward, negative SI-SNR (fixed source order; for PRESS the mean over all
    exits), backward; no optimiser. Best of `--train-steps` after one warm-up step, on
    `--train-batch` x `--train-seconds`; audio-seconds per second and the peak resident memory the
    step adds (ru_maxrss after the steps minus ru_maxrss once model and batch exist).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SAMPLE_RATE = 8000
PRESS_MODELS = ("PRESS default", "PRESS press4-s")
ASTEROID_MODELS = ("Conv-TasNet", "DPRNN-TasNet", "SuDoRM-RF")
ROOT = Path(__file__).resolve().parents[1]
VENV_VARIABLE = "PRESS_PEERS_VENV"
INSTALL = """Install Asteroid in a virtual environment of its own that sees the installed torch and PRESS
(--no-deps, so that pip cannot pull another torch):
    python -m venv --system-site-packages {venv}
    {venv}/bin/pip install --no-deps asteroid asteroid-filterbanks
    {venv}/bin/pip install requests torchmetrics huggingface_hub pyyaml soundfile  # those not installed yet
then pass --venv {venv} (or set {variable}={venv})."""
INSTALL_HINT = "asteroid is not installed for this Python ({python}); only PRESS is measured.\n" + INSTALL


def in_venv(venv: str | None) -> None:
    """Run this script (sys.argv) again with `venv`'s Python unless it is the one running; stop with the
    install commands when `venv` has no Python or its Python has no asteroid. None: keep this Python."""
    if not venv:
        return
    path = Path(venv).expanduser().absolute()
    python = path / "bin" / "python"
    install = INSTALL.format(venv=venv, variable=VENV_VARIABLE)
    if Path(sys.prefix).resolve() == path.resolve() or os.environ.get("PRESS_PEERS_VENV_RUNNING"):
        if importlib.util.find_spec("asteroid") is None:
            raise SystemExit(f"--venv {venv}: asteroid is not installed for {sys.executable}.\n{install}")
        return
    if not python.exists():
        raise SystemExit(f"--venv {venv}: no Python at {python}.\n{install}")
    env = {**os.environ, "PRESS_PEERS_VENV_RUNNING": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    sys.stdout.flush()
    os.execve(python, [str(python), os.path.abspath(sys.argv[0]), *sys.argv[1:]], env)


# --- models (imported inside the worker processes only) ---------------------------------------------

def build(name: str):
    """The model called `name`, in eval mode, with seeded random init where it has no weights."""
    import torch

    torch.manual_seed(0)
    if name == "PRESS default":
        from press.model.pretrained import load

        return load("default")[0].eval()
    if name == "PRESS press4-s":
        from press.model import PressNet, load_config, model_config

        return PressNet(model_config(load_config("press4-s"))).eval()
    from asteroid.models import ConvTasNet, DPRNNTasNet, SuDORMRFNet

    cls = {"Conv-TasNet": ConvTasNet, "DPRNN-TasNet": DPRNNTasNet, "SuDoRM-RF": SuDORMRFNet}[name]
    return cls(n_src=2, sample_rate=SAMPLE_RATE).eval()  # every other argument at its default


def estimates(model, mixture):
    """List of (B, 2, L) source estimates: one per PRESS exit, one for an Asteroid model."""
    out = model(mixture)
    return [o.estimate for o in out] if isinstance(out, list) else [out]


# --- measurements (each runs in its own subprocess) -------------------------------------------------

def measure_peak(threads: int) -> dict:
    """Float32 matmul GMAC/s at `threads`: best of 1024² and 2048² square matmuls, three tries each."""
    import torch
    from model_speed import matmul_gmacs  # benchmarks/ is on sys.path: this script lives there

    torch.set_num_threads(threads)
    best = max(matmul_gmacs(n, repeats) for n, repeats in ((1024, 20), (2048, 4)) for _ in range(3))
    return {"threads": threads, "peak_gmacs": best}


def measure_macs(name: str, seconds: float) -> dict:
    """Parameters, FlopCounterMode MACs per second of audio, and (PRESS) press info's count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build(name)
    x = torch.randn(1, round(seconds * SAMPLE_RATE))
    result = {"params": sum(p.numel() for p in model.parameters())}
    no_kernels = contextlib.nullcontext
    if name.startswith("PRESS"):      # the counter has no formula for PRESS's compiled kernels (the
        from press.model import kernels  # depthwise convolution): count the PyTorch code they replace
        no_kernels = kernels.disabled
    for onednn in (True, False):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=onednn), counter, no_kernels():
            model(x)
        result["gmacs_onednn" if onednn else "gmacs"] = counter.get_total_flops() / 2 / seconds / 1e9
    if name.startswith("PRESS"):
        from press.model.compute import exit_costs

        result["press_info_gmacs"] = exit_costs(model, seconds)[-1].gmacs_per_second
    return result


def measure_rtf(name: str, seconds: float, threads: int, warmup: int, repeats: int, compile: bool) -> dict:
    """Best forward wall time over `repeats` passes after `warmup`, at `threads` torch threads;
    with `compile`, every model goes through inductor first (PRESS by its own `compile_inference`,
    the peers by `torch.compile`), and the compiling pass is one of the warm-ups."""
    import torch

    torch.set_num_threads(threads)
    model = build(name)
    if compile and name in PRESS_MODELS:
        model.compile_inference()
    elif compile:
        model = torch.compile(model)
    x = torch.randn(1, round(seconds * SAMPLE_RATE))
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return {"threads": threads, "seconds": min(times), "rtf": min(times) / seconds}


def neg_si_snr(estimate, target, eps: float = 1e-8):
    """Mean negative scale-invariant SNR in dB, sources in fixed order."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    target = target - target.mean(-1, keepdim=True)
    proj = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps) * target
    noise = estimate - proj
    return -(10 * (proj.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps).log10()).mean()


def measure_train(name: str, batch: int, seconds: float, threads: int, steps: int) -> dict:
    """Training step time (forward, SI-SNR loss, backward) and the peak memory it adds."""
    import resource

    import torch

    torch.set_num_threads(threads)
    model = build(name).train()
    n = round(seconds * SAMPLE_RATE)
    sources = torch.randn(batch, 2, n) * torch.rand(batch, 2, 1)
    mixture = sources.sum(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for i in range(1 + steps):
        t = time.perf_counter()
        ests = estimates(model, mixture)
        loss = sum(neg_si_snr(e, sources) for e in ests) / len(ests)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i >= 1:
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    best = min(times)
    return {"s_per_step": best, "audio_s_per_s": batch * seconds / best,
            "peak_add_gib": (peak - base) / 2**30, "peak_gib": peak / 2**30}


# --- driver -----------------------------------------------------------------------------------------

def run_worker(args: argparse.Namespace) -> dict:
    kind = args.worker
    if args.malloc == "kept":
        from press.allocator import keep_freed_memory

        keep_freed_memory()
    if kind == "peak":
        return measure_peak(args.threads[0])
    if kind == "macs":
        return measure_macs(args.model, args.seconds)
    if kind == "rtf":
        return measure_rtf(args.model, args.seconds, args.threads[0], max(args.warmup, 1), args.repeats,
                           args.compile)
    return measure_train(args.model, args.train_batch, args.train_seconds, args.threads[0], args.train_steps)


def in_subprocess(args: argparse.Namespace, kind: str, model: str = "", threads: int | None = None) -> dict:
    """Run one measurement in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--model", model,
           "--threads", str(threads or args.threads[0]), "--seconds", str(args.seconds),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--train-batch", str(args.train_batch),
           "--train-seconds", str(args.train_seconds), "--train-steps", str(args.train_steps),
           "--malloc", args.malloc, *(["--compile"] if args.compile else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        print(f"  {model or kind} {kind}: failed ({tail[0]})", file=sys.stderr, flush=True)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def print_table(args, models, results, peaks) -> None:
    t_cols = " | ".join(f"RTF {t}T | GMAC/s {t}T | of peak {t}T" for t in args.threads)
    print(f"\n| model | params (M) | GMAC per s of audio | {t_cols} | train audio-s/s | train peak +GiB |")
    print("|---|---|---|" + "---|---|---|" * len(args.threads) + "---|---|")
    for name in models:
        r = results[name]
        macs = r["macs"].get("gmacs")
        params = r["macs"].get("params")
        cells = [name, fmt(params and params / 1e6, ".2f"),
                 fmt(macs, ".2f") + (f" ({r['macs']['press_info_gmacs']:.2f})" if "press_info_gmacs" in r["macs"] else "")]
        for t in args.threads:
            rtf = r["rtf"][t].get("seconds")
            achieved = macs * args.seconds / rtf if macs is not None and rtf else None
            cells += [fmt(r["rtf"][t].get("rtf"), ".3f"), fmt(achieved, ".1f"),
                      fmt(achieved and achieved / peaks[t], ".0%")]
        cells += [fmt(r["train"].get("audio_s_per_s"), ".2f"), fmt(r["train"].get("peak_add_gib"), ".2f")]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(PRESS_MODELS + ASTEROID_MODELS),
                   choices=PRESS_MODELS + ASTEROID_MODELS)
    p.add_argument("--seconds", type=float, default=4.0, help="input length for MACs and speed")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts to time")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-seconds", type=float, default=2.0)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--malloc", choices=("kept", "system"), default="kept",
                   help="kept: press.allocator.keep_freed_memory in every worker (default); system: glibc's default")
    p.add_argument("--compile", action="store_true",
                   help="time inference of every model after torch.compile (training stays eager)")
    p.add_argument("--venv", default=os.environ.get(VENV_VARIABLE),
                   help=f"the virtual environment with asteroid (default: ${VENV_VARIABLE}); see above")
    p.add_argument("--worker", choices=("peak", "macs", "rtf", "train"), help=argparse.SUPPRESS)
    p.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)))
        return
    in_venv(args.venv)

    import torch

    models = list(args.models)
    if importlib.util.find_spec("asteroid") is None:
        print(INSTALL_HINT.format(python=sys.executable, venv="peers-venv", variable=VENV_VARIABLE), flush=True)
        models = [m for m in models if m in PRESS_MODELS]
    else:
        import asteroid

        print(f"asteroid {asteroid.__version__}", end=", ")
    print(f"torch {torch.__version__}, python {sys.executable}, malloc {args.malloc}"
          f"{', inference compiled' if args.compile else ''}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; {args.seconds:g} s of {SAMPLE_RATE} Hz audio", flush=True)

    before = {t: in_subprocess(args, "peak", threads=t).get("peak_gmacs", float("nan")) for t in args.threads}
    results = {}
    for name in models:
        print(f"measuring {name} ...", flush=True)
        results[name] = {"macs": in_subprocess(args, "macs", name),
                         "rtf": {t: in_subprocess(args, "rtf", name, t) for t in args.threads},
                         "train": in_subprocess(args, "train", name, args.threads[0])}
    after = {t: in_subprocess(args, "peak", threads=t).get("peak_gmacs", float("nan")) for t in args.threads}
    peaks = {t: max(before[t], after[t]) for t in args.threads}

    for t in args.threads:
        print(f"float32 matmul peak, {t} thread(s): {before[t]:.1f} GMAC/s before the models, "
              f"{after[t]:.1f} after; {peaks[t]:.1f} used")
    print_table(args, models, results, peaks)
    print(f"\nGMAC per s of audio: FlopCounterMode with oneDNN off (in brackets for PRESS: press info, which "
          f"also counts the element-wise scan recurrence and attention products). "
          f"Training: {args.train_batch} x {args.train_seconds:g} s, "
          f"{args.threads[0]} threads, forward + SI-SNR + backward, best of {args.train_steps}; "
          f"'peak +GiB' is the ru_maxrss the step adds.")
    for name in models:
        m = results[name]["macs"]
        if m and abs(m["gmacs_onednn"] - m["gmacs"]) > 1e-3 * m["gmacs"]:
            print(f"note: {name} counts {m['gmacs_onednn']:.2f} GMAC/s with oneDNN on (fused ops counted as zero)")
        tr = results[name]["train"]
        if tr:
            print(f"{name}: {tr['s_per_step']:.2f} s per training step, resident peak {tr['peak_gib']:.2f} GiB")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
