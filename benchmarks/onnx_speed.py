"""ONNX export of the default model: speed and size against PyTorch eager, and int8 quality.

    PYTHONPATH=$PWD python benchmarks/onnx_speed.py [--seconds 20] [--mixtures 20] [--repeats 3]

Per exit k (every segment run to exit k, the segment runner of `press separate` with default
segment/context): real-time factor (compute time / audio time, best of `repeats`) of PyTorch eager
and of onnxruntime (press.runtime) at 1 and 2 threads, on ~`seconds` s of built-in test mixtures
end to end; graph file sizes (fp32 and int8); SI-SNRi (dB, mean over `mixtures` built-in test
mixtures, each separated whole) per exit for fp32 and int8 graphs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import press
from press.data import get_dataset
from press.engine.policies import Static
from press.export import export_onnx
from press.inference.runner import Separator
from press.io.streaming import ArrayReader
from press.runtime import load


def si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    est, ref = est - est.mean(), ref - ref.mean()
    proj = (est @ ref) / max(ref @ ref, 1e-12) * ref
    return 10 * np.log10(max(proj @ proj, 1e-12) / max((est - proj) @ (est - proj), 1e-12))


def si_snri(est: np.ndarray, refs: np.ndarray, mix: np.ndarray) -> float:
    best = max(itertools.permutations(range(len(refs))),
               key=lambda p: sum(si_snr(est[p[j]], refs[j]) for j in range(len(refs))))
    return float(np.mean([si_snr(est[best[j]], refs[j]) - si_snr(mix, refs[j]) for j in range(len(refs))]))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--mixtures", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = press.load("default", device="cpu")
    net, K = model.model, model.n_exits
    tmp = Path(tempfile.mkdtemp())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = export_onnx(net, tmp / "fp32", recalibration=model.recalibration)
        int8 = export_onnx(net, tmp / "int8", recalibration=model.recalibration, quantize="int8")
    ds = get_dataset("builtin", split="test", sample_rate=8000, n_src=2)
    audio, i = [], 0
    while sum(map(len, audio)) < args.seconds * 8000:
        audio.append(ds[i]["mixture"].numpy())
        i += 1
    x = np.concatenate(audio)
    dur = len(x) / 8000
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rt = load(fp32, threads=threads)
        rq = load(int8, threads=threads)
        for k in range(1, K + 1):
            sep = Separator(net, recalibration=model.recalibration)
            with torch.inference_mode():
                t_torch = best_time(lambda sep=sep, k=k: sep.run(ArrayReader(x), Static(k)), args.repeats)
            t_ort = best_time(lambda rt=rt, k=k: rt.separate(x, exit=k), args.repeats)
            t_q = best_time(lambda rq=rq, k=k: rq.separate(x, exit=k), args.repeats)
            rows[(threads, k)] = (t_torch / dur, t_ort / dur, t_q / dur)
    q = {"fp32": [], "int8": []}
    rt, rq = load(fp32, threads=2), load(int8, threads=2)
    for j in range(args.mixtures):
        item = ds[j]
        mix, refs = item["mixture"].numpy(), item["sources"].numpy()
        for name, m in (("fp32", rt), ("int8", rq)):
            q[name].append([si_snri(m.separate(mix, exit=k, utterance=True).sources, refs, mix)
                            for k in range(1, K + 1)])
    qa, qb = np.mean(q["fp32"], 0), np.mean(q["int8"], 0)
    size = lambda d: sum(f.stat().st_size for f in d.parent.glob("*.onnx")) / 1e6
    params_mb = sum(p.numel() for p in net.parameters()) * 4 / 1e6
    print(f"audio: {dur:.1f} s of built-in test mixtures; load average {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"sizes: fp32 graphs {size(fp32):.2f} MB, int8 graphs {size(int8):.2f} MB, "
          f"torch fp32 parameters {params_mb:.2f} MB")
    print("\n| threads | exit | RTF torch eager | RTF onnxruntime | speed-up | RTF ort int8 | speed-up int8 |")
    print("|---|---|---|---|---|---|---|")
    for (threads, k), (a, b, c) in rows.items():
        print(f"| {threads} | {k} | {a:.4f} | {b:.4f} | {a / b:.2f}x | {c:.4f} | {a / c:.2f}x |")
    print(f"\n| exit | SI-SNRi fp32 (dB) | SI-SNRi int8 (dB) | change (dB) |  ({args.mixtures} mixtures)")
    print("|---|---|---|---|")
    for k in range(K):
        print(f"| {k + 1} | {qa[k]:.2f} | {qb[k]:.2f} | {qb[k] - qa[k]:+.2f} |")


if __name__ == "__main__":
    main()
