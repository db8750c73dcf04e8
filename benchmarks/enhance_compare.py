"""PRESS `enhance` beside the enhancement peers: the same files, the same scorer, one table.

    python benchmarks/noisy_testset.py --root NOISY --split test --n 200 --out DATA
    PEERS/bin/python benchmarks/enhance_peers.py run --noisy DATA/noisy --out RUNS     # the peers' outputs
    python benchmarks/enhance_compare.py --data DATA --runs RUNS --model enhance [--targets 10,15 --confidence 0.9]
    PEERS/bin/python benchmarks/enhance_peers.py dnsmos DATA/noisy RUNS/* --out RUNS/dnsmos.json    # (or
        RUNS/dnsmos-press.json for PRESS's folders alone: both files are read)
    python benchmarks/enhance_compare.py --data DATA --runs RUNS --table              # the table, with DNSMOS
    python benchmarks/enhance_compare.py --data DATA --runs RUNS --groups press-exit3,dtln  # where each wins

The first call writes PRESS's outputs (each exit, and the dynamic rule at each target) to RUNS/press-*
with a timing.json like the peers' (one thread, wall time inside the model, GMAC/s from the reports);
then every folder of RUNS is scored on DATA/clean (RTF: one thread, in process CPU time, which other
jobs on the machine inflate far less than wall time): each output is aligned to its reference (the lag of
the cross-correlation peak within ±100 ms: RNNoise and DeepFilterNet delay their output), then SI-SNRi,
PESQ-WB and STOI (press.evaluation.metrics), and DNSMOS P.835 OVRL where RUNS/dnsmos.json has it.
PRESS's segment-wise model is offline (it sees seconds of future audio); every peer is causal.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from press.evaluation.metrics import aligned_si_snri, pesq_score, stoi_score

RATE = 16000
MAX_LAG = int(0.1 * RATE)


def align(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """estimate shifted by the lag (|lag| <= MAX_LAG) that maximises its cross-correlation with the reference."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(estimate, size)), size)
    lags = np.concatenate([xc[: MAX_LAG + 1], xc[-MAX_LAG:]])
    lag = int(np.argmax(lags))
    lag = lag if lag <= MAX_LAG else lag - len(lags)   # estimate[t - lag] matches reference[t]
    out = np.zeros(n, dtype=np.float32)
    if lag >= 0:
        out[lag:] = estimate[: n - lag]
    else:
        out[: n + lag] = estimate[-lag:n]
    return out


def run_press(data: Path, runs: Path, model_name: str, targets: list[float], confidence: float) -> None:
    import press

    torch.set_num_threads(1)
    model = press.load(model_name, device="cpu")
    speech = model.source_names.index("speech")
    files = sorted((data / "noisy").glob("*.wav"))
    settings = [(f"press-exit{k}", {"exit": k}) for k in range(1, model.n_exits + 1)]
    settings += [(f"press-t{t:g}-p{confidence:g}", {"target_db": t, "confidence": confidence}) for t in targets]
    for name, options in settings:
        out = runs / name
        out.mkdir(parents=True, exist_ok=True)
        wall = cpu = audio = macs = 0.0
        for f in files:
            x, sr = sf.read(f, dtype="float32")
            tic, cpu_tic = time.perf_counter(), time.process_time()
            result = model.separate(x, sample_rate=sr, **options)
            wall += time.perf_counter() - tic
            cpu += time.process_time() - cpu_tic
            seconds = len(x) / sr
            audio += seconds
            macs += result.report["gmacs_per_second"] * seconds
            sf.write(out / f.name, result.sources[speech], sr)
        timing = {"audio_seconds": audio, "wall_seconds": wall, "rtf_1thread": wall / audio,
                  "cpu_seconds": cpu, "rtf_cpu_1thread": cpu / audio, "gmacs_per_s": macs / audio,
                  "causal": False, "latency_ms": None,
                  "latency_source": "offline: segments of seconds with context on both sides", **options}
        (out / "timing.json").write_text(json.dumps(timing, indent=1))
        print(f"{name}: RTF {wall / audio:.3f} at 1 thread ({cpu / audio:.3f} in CPU time), {macs / audio:.3f} GMAC/s")


def item_si_snri(data: Path, folder: Path) -> dict[str, float]:
    """{file name: SI-SNRi} of a folder of outputs against DATA/clean (aligned first)."""
    out = {}
    for clean_path in sorted((data / "clean").glob("*.wav")):
        if (folder / clean_path.name).exists():
            clean, est, noisy = _aligned(data, folder, clean_path.name)
            out[clean_path.name] = aligned_si_snri(est[None], clean[None], noisy)
    return out


def _aligned(data: Path, folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, output aligned to it and cut to its length, noisy) of one file."""
    clean, _ = sf.read(data / "clean" / name, dtype="float32")
    noisy, _ = sf.read(data / "noisy" / name, dtype="float32")
    est, _ = sf.read(folder / name, dtype="float32")
    est = align(est[: len(clean)] if len(est) >= len(clean) else np.pad(est, (0, len(clean) - len(est))), clean)
    return clean, est, noisy


def score_folder(data: Path, folder: Path) -> dict:
    """Mean SI-SNRi, PESQ-WB and STOI of a folder of outputs against DATA/clean (aligned first)."""
    rows = []
    for clean_path in sorted((data / "clean").glob("*.wav")):
        if not (folder / clean_path.name).exists():
            continue
        clean, est, noisy = _aligned(data, folder, clean_path.name)
        rows.append({"si_snri": aligned_si_snri(est[None], clean[None], noisy),
                     "pesq": pesq_score(est, clean, RATE), "stoi": stoi_score(est, clean, RATE)})
    return {k: float(np.nanmean([r[k] for r in rows])) for k in ("si_snri", "pesq", "stoi")} | {"n": len(rows)}


def item_groups(item_id: str) -> list[str]:
    """The groups a test item belongs to, read from its id (`noisy-test-000001-snr4.6:SPEAKER-NNNN+NOISE`,
    benchmarks/noisy_testset.py): its input-SNR band, its noise (a generated kind, or the package a
    recorded noise file came from) and its talker."""
    head, _, tail = item_id.partition(":")
    snr = float(head.rsplit("snr", 1)[1])
    band = next(f"{lo:g} to {lo + 5:g} dB" for lo in (-5, 0, 5, 10, 15, 20) if snr < lo + 5 or lo == 20)
    speaker, *noises = tail.split("+")
    noise = noises[0].rsplit("-", 1)[0] if "-" in noises[0] else noises[0]
    return [f"SNR {band}", f"noise: {noise}", f"talker: {speaker.rsplit('-', 1)[0]}"]


def groups(data: Path, runs: Path, folders: list[str], least: int = 5) -> None:
    """Mean SI-SNRi of each folder per input-SNR band, noise and talker (groups of at least `least` items)."""
    import csv
    from collections import defaultdict

    ids = {f"{r['name']}.wav": r["id"] for r in csv.DictReader(open(data / "items.csv"))}
    scores = {f: item_si_snri(data, runs / f) for f in folders}
    members = defaultdict(list)
    for name, item_id in ids.items():
        for group in item_groups(item_id):
            members[group].append(name)
    print("| group | items | " + " | ".join(folders) + " |")
    print("|---|---|" + "---|" * len(folders))
    for group in sorted(members, key=lambda g: (g.split(":")[0].split(" ")[0], g)):
        names = members[group]
        if len(names) >= least:
            print(f"| {group} | {len(names)} | "
                  + " | ".join(f"{np.mean([scores[f][n] for n in names]):.2f}" for f in folders) + " |")


def rtf(timing: dict) -> float:
    """One-thread real-time factor in process CPU time where the run recorded it (the figure other jobs
    on the machine inflate least: shared caches and memory bandwidth still slow it), else in wall time."""
    return timing.get("rtf_cpu_1thread", timing.get("rtf_1thread", float("nan")))


def table(data: Path, runs: Path) -> None:
    dnsmos = json.loads((runs / "dnsmos.json").read_text())["dirs"] if (runs / "dnsmos.json").exists() else {}
    dnsmos |= json.loads((runs / "dnsmos-press.json").read_text())["dirs"] if (runs / "dnsmos-press.json").exists() else {}

    def mos(folder: Path, key: str = "OVRL") -> float:
        entry = {Path(k).resolve(): v for k, v in dnsmos.items()}.get(folder.resolve(), {})
        return float(entry.get("mean", {}).get(key, np.nan))

    if not (data / "clean").is_dir():   # real noisy recordings (benchmarks/real_noisy.py): DNSMOS alone
        print(f"{'method':<22}{'causal':>7}{'GMAC/s':>8}{'RTF 1T':>8}{'SIG':>6}{'BAK':>6}{'OVRL':>6}")
        results = {}
        for folder in [data / "noisy", *sorted(p for p in runs.iterdir() if p.is_dir())]:
            timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else {}
            scores = {k: mos(folder, k) for k in ("SIG", "BAK", "OVRL")}
            results[folder.name] = scores | {"timing": timing}
            name = "noisy input" if folder == data / "noisy" else folder.name
            causal = "" if folder == data / "noisy" else "yes" if timing.get("causal") else "no"
            print(f"{name:<22}{causal:>7}{timing.get('gmacs_per_s', float('nan')):>8.3f}"
                  f"{rtf(timing):>8.3f}"
                  + "".join(f"{scores[k]:>6.2f}" for k in ("SIG", "BAK", "OVRL")))
        (runs / "scores.json").write_text(json.dumps(results, indent=1))
        return

    noisy = {"si_snri": 0.0, "pesq": np.nanmean([pesq_score(sf.read(f)[0], sf.read(data / "clean" / f.name)[0], RATE)
                                                   for f in sorted((data / "noisy").glob("*.wav"))]),
             "stoi": np.mean([stoi_score(sf.read(f)[0], sf.read(data / "clean" / f.name)[0], RATE)
                              for f in sorted((data / "noisy").glob("*.wav"))])}
    print(f"{'method':<22}{'causal':>7}{'GMAC/s':>8}{'RTF 1T':>8}{'SI-SNRi':>9}{'PESQ-WB':>9}{'STOI':>7}{'OVRL':>6}")
    print(f"{'noisy input':<22}{'':>7}{'':>8}{'':>8}{0.0:>9.2f}{noisy['pesq']:>9.2f}{noisy['stoi']:>7.3f}"
          f"{mos(data / 'noisy'):>6.2f}")
    results = {}
    for folder in sorted(p for p in runs.iterdir() if p.is_dir()):
        timing = json.loads((folder / "timing.json").read_text()) if (folder / "timing.json").exists() else {}
        s = score_folder(data, folder)
        results[folder.name] = s | {"timing": timing}
        print(f"{folder.name:<22}{'yes' if timing.get('causal') else 'no':>7}"
              f"{timing.get('gmacs_per_s', float('nan')):>8.3f}{rtf(timing):>8.3f}"
              f"{s['si_snri']:>9.2f}{s['pesq']:>9.2f}{s['stoi']:>7.3f}{mos(folder):>6.2f}")
    (runs / "scores.json").write_text(json.dumps(results, indent=1))


def figure(runs: Path, path: Path) -> None:
    """SI-SNRi against GMAC/s for every method of RUNS/scores.json (written by --table): PRESS's exits
    joined by a line, its dynamic points, and each peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = json.loads((runs / "scores.json").read_text())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    exits = sorted((k for k in scores if k.startswith("press-exit")), key=lambda k: int(k[len("press-exit"):]))
    ax.plot([scores[k]["timing"]["gmacs_per_s"] for k in exits], [scores[k]["si_snri"] for k in exits],
            "o-", color="C0", label="PRESS, exits 1..K")
    dynamic = sorted((k for k in scores if k.startswith("press-t")), key=lambda k: scores[k]["timing"]["gmacs_per_s"])
    ax.plot([scores[k]["timing"]["gmacs_per_s"] for k in dynamic], [scores[k]["si_snri"] for k in dynamic],
            "s", color="C1", ms=5, label="PRESS, dynamic exits (" + ", ".join(k[len("press-"):] for k in dynamic) + ")")
    for k, v in scores.items():
        if not k.startswith("press-") and v.get("timing", {}).get("gmacs_per_s") is not None:
            ax.plot(v["timing"]["gmacs_per_s"], v["si_snri"], "^", color="C2", ms=6)
            ax.annotate(k, (v["timing"]["gmacs_per_s"], v["si_snri"]), fontsize=8, xytext=(4, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("GMAC per second of audio (log)")
    ax.set_ylabel("SI-SNRi of the speech (dB)")
    ax.axhline(0, color="grey", lw=0.6)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path,
                    help="benchmarks/noisy_testset.py output (or benchmarks/real_noisy.py's: no references)")
    ap.add_argument("--runs", required=True, type=Path, help="folder of output folders, one per method")
    ap.add_argument("--model", default=None, help="run this PRESS enhancement model first (e.g. enhance)")
    ap.add_argument("--targets", default="10,15", help="dynamic-exit targets in dB")
    ap.add_argument("--confidence", type=float, default=0.9)
    ap.add_argument("--table", action="store_true", help="score every folder of --runs and print the table")
    ap.add_argument("--groups", default=None,
                    help="comma-separated folders of --runs: their SI-SNRi per input-SNR band, noise and talker")
    ap.add_argument("--figure", type=Path, default=None,
                    help="after --table: SI-SNRi against GMAC/s of every method, as a PNG")
    args = ap.parse_args()
    if args.model:
        run_press(args.data, args.runs, args.model, [float(t) for t in args.targets.split(",")], args.confidence)
    if args.table:
        table(args.data, args.runs)
    if args.groups:
        groups(args.data, args.runs, args.groups.split(","))
    if args.figure:
        figure(args.runs, args.figure)


if __name__ == "__main__":
    main()
