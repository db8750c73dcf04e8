"""A causal PRESS model streamed beside the causal peers: latency, GMAC/s, one-thread RTF, SI-SNRi, PESQ-WB, STOI.

    python benchmarks/stream_compare.py --data DATA --runs RUNS --model runs/enhance-rt/enhance-rt.safetensors \
        [--backend torch|onnx] [--targets 5] [--confidence 0.9] [--catch-up lazy,reset,hold] [--limit N] \
        [--peers-venv PEERS --peers rnnoise,deepfilternet3,gtcrn,dtln,nsnet2]

DATA is what benchmarks/noisy_testset.py writes (noisy/ and clean/). Each file streams through the
model as a live input would: chunks of one likelihood block pushed one after the other, every block
at its exit (each fixed exit, then the exit rule at each target with each catch-up policy asked
for: lazy, exact, by default), one thread.
Timed is the model's work per file (process CPU time and wall time); GMAC/s is what the stream
counted (catch-up included); the latency is the algorithmic one, the block (its first sample waits
for its last; the look-ahead lies inside the block), as DTLN's 32 ms block is its latency. Outputs and a timing.json like the peers' go to RUNS/press-rt-*.
With --peers-venv the causal peers run in the same invocation (benchmarks/enhance_peers.py run, in
their own venv, one thread), so every RTF in the table comes from one run on one machine. Then every
causal folder of RUNS is scored with benchmarks/enhance_compare.py's scorer (aligned, SI-SNRi,
PESQ-WB, STOI) and one table is printed and written to RUNS/stream_scores.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enhance_compare import score_folder

CAUSAL_PEERS = "rnnoise,deepfilternet3,gtcrn,dtln,nsnet2"


def open_model(spec: str, backend: str):
    """(start(options) -> a stream with push/end/macs, n_exits, rate, block, speech index)."""
    if backend == "onnx":
        from press.runtime import load

        model = load(spec, threads=1)
        names = model.source_names
        return (lambda options: model.stream(**options)), model.n_exits, model.sample_rate, model.block, \
            names.index("speech") if "speech" in names else 0
    import torch

    from press.engine.backend import exit_scales
    from press.engine.stream_rule import StreamRule
    from press.model.pretrained import load
    from press.model.stream_exits import BlockStream
    from press.prob.calibration import Recalibration

    torch.set_num_threads(1)
    net, _, extra = load(spec, device="cpu")
    scales = exit_scales(extra.get("recalibration") or Recalibration().to_dict(), net.n_exits)
    point = extra.get("operating_point") or {}

    def start(options: dict):
        if "exit" in options:
            k = options["exit"]
            return BlockStream(net, lambda block, exit, *signals: exit >= k, "hold", 0)
        t = options.get("target_db", point.get("target_db", 20.0))
        p = options.get("confidence", point.get("confidence", 0.9))
        return BlockStream(net, StreamRule(t, p, scales), options.get("catch_up", "lazy"))

    names = net.cfg.source_names
    return start, net.n_exits, net.cfg.sample_rate, net.cfg.block, names.index("speech") if "speech" in names else 0


def run_press(data: Path, runs: Path, spec: str, backend: str, targets: list[float], confidence: float,
              catch_ups: list[str], limit: int) -> None:
    import contextlib

    start, n_exits, rate, block, speech = open_model(spec, backend)
    files = sorted((data / "noisy").glob("*.wav"))[:limit or None]
    chunk = block   # the unit the exits are decided in: a shorter chunk adds nothing but its own wait
    settings = [(f"press-rt-exit{k}", {"exit": k}) for k in range(1, n_exits + 1)]
    settings += [(f"press-rt-t{t:g}-p{confidence:g}" + ("" if c == "lazy" else f"-{c}"),
                  {"target_db": t, "confidence": confidence, "catch_up": c}) for t in targets for c in catch_ups]
    if backend == "torch":
        import torch
        no_grad = torch.inference_mode
    else:
        no_grad = contextlib.nullcontext
    for name, options in settings:
        out = runs / name
        out.mkdir(parents=True, exist_ok=True)
        cpu = wall = audio = macs = catch_up = 0.0
        exits: list[int] = []
        for f in files:
            x, sr = sf.read(f, dtype="float32")
            if sr != rate:
                raise SystemExit(f"{f}: {sr} Hz, the model's rate is {rate}")
            stream = start(options)
            pieces = []
            with no_grad():
                tic, tic_cpu = time.perf_counter(), time.process_time()
                for i in range(0, len(x), chunk):
                    pieces += stream.push(x[None, i:i + chunk] if backend == "onnx" else _tensor(x[None, i:i + chunk]))
                pieces += stream.end()
                wall, cpu = wall + time.perf_counter() - tic, cpu + time.process_time() - tic_cpu
            y = np.concatenate([np.asarray(p.estimate[0, speech]) for p in pieces])
            exits += [p.exit for p in pieces]
            total, extra = stream.macs()
            audio, macs, catch_up = audio + len(x) / rate, macs + total, catch_up + extra
            sf.write(out / f.name, y, rate, subtype="FLOAT")
        counts = np.bincount(exits, minlength=n_exits + 1)[1:] / max(len(exits), 1)
        latency = block / rate * 1000
        timing = {"peer": name, "backend": backend, "threads": 1, "causal": True, "files": len(files),
                  "latency_ms": round(latency, 2),
                  "latency_source": f"one likelihood block of {block} samples, pushed whole (the look-ahead lies "
                                    "inside it)",
                  "audio_seconds": audio, "cpu_seconds": cpu, "wall_seconds": wall,
                  "rtf_1thread": wall / audio, "rtf_cpu_1thread": cpu / audio, "gmacs_per_s": macs / audio / 1e9,
                  "catch_up_share": catch_up / max(macs, 1), "exit_shares": [round(float(c), 4) for c in counts],
                  **options}
        (out / "timing.json").write_text(json.dumps(timing, indent=1))
        print(f"{name}: RTF {cpu / audio:.3f} (CPU) {wall / audio:.3f} (wall) at 1 thread, "
              f"{macs / audio / 1e9:.3f} GMAC/s, exits {timing['exit_shares']}", flush=True)


def _tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def table(data: Path, runs: Path, jobs: int = 1) -> None:
    """Every causal folder of RUNS, scored (`jobs` folders at once, after all timing): one row each."""
    from concurrent.futures import ProcessPoolExecutor

    folders = []
    for folder in sorted(p for p in runs.iterdir() if p.is_dir() and (p / "timing.json").exists()):
        timing = json.loads((folder / "timing.json").read_text())
        if timing.get("causal"):
            folders.append((folder, timing))
    with ProcessPoolExecutor(jobs) as pool:
        scores = list(pool.map(score_folder, [data] * len(folders), [f for f, _ in folders]))
    print(f"{'method':<24}{'latency ms':>11}{'GMAC/s':>8}{'RTF 1T':>8}{'SI-SNRi':>9}{'PESQ-WB':>9}{'STOI':>7}")
    results = {}
    for (folder, timing), s in zip(folders, scores):
        results[folder.name] = s | {"timing": timing}
        rtf = timing.get("rtf_cpu_1thread", timing.get("rtf_1thread", float("nan")))
        print(f"{folder.name:<24}{timing.get('latency_ms') or float('nan'):>11.1f}"
              f"{timing.get('gmacs_per_s', float('nan')):>8.3f}{rtf:>8.3f}{s['si_snri']:>9.2f}{s['pesq']:>9.2f}"
              f"{s['stoi']:>7.3f}")
    (runs / "stream_scores.json").write_text(json.dumps(results, indent=1))
    print("\nRTF 1T: process CPU time / audio time at one thread, measured in this run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="noisy/ and clean/ (benchmarks/noisy_testset.py)")
    ap.add_argument("--runs", required=True, type=Path, help="output folders, one per method")
    ap.add_argument("--model", help="a causal checkpoint or shipped name (torch), or a streaming export's manifest (onnx)")
    ap.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    ap.add_argument("--targets", default="5", help="targets in dB for the exit rule (comma-separated; '' for none)")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--catch-up", default="lazy", help="catch-up policies for the exit rule (comma-separated)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (sorted by name)")
    ap.add_argument("--peers-venv", type=Path, default=None, help="run the causal peers too, with this venv's python")
    ap.add_argument("--peers", default=CAUSAL_PEERS)
    ap.add_argument("--jobs", type=int, default=1, help="folders scored at once (after all timing)")
    args = ap.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.model:
        targets = [float(t) for t in args.targets.split(",") if t]
        run_press(args.data, args.runs, args.model, args.backend, targets, args.confidence,
                  args.catch_up.split(","), args.limit)
    if args.peers_venv:
        subprocess.run([str(args.peers_venv / "bin" / "python"), str(Path(__file__).parent / "enhance_peers.py"),
                        "run", "--noisy", str(args.data / "noisy"), "--out", str(args.runs), "--peers", args.peers,
                        "--limit", str(args.limit)], check=True)
    table(args.data, args.runs, args.jobs)


if __name__ == "__main__":
    main()
