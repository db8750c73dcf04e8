"""The paper's claims, checked at small scale: train every arm of experiments/claims.yaml, score it,
and print the tables and figures of docs/claims.md.

    python experiments/claims.py run OUT --root NOISY [--claims 1 2 3 4 5 6] [--seeds 0 1] [--jobs 2]
    python experiments/claims.py report OUT [--figures DIR]
    python experiments/claims.py passes OUT --root NOISY      # claim 5: why block size moves savings

NOISY is the recorded-noise corpus of `press data noisy` (docs/data.md); the separation arms use
the built-in corpus. Every arm runs `press train` from scratch in its own folder (OUT/ARM/seed-N),
one thread per job, then is scored on its task's held-out test (`score` in claims.yaml) with the
API's segments (2 s, 0.25 s context); claim 4 scores its two arms again on whole files (segments of
30 s) with a recalibration fitted on 100 validation items, since its question is calibration on
inputs longer than the training crops. Claim 6 also scores the shipped models it names.

Everything resumes: a killed `run` continues each unfinished training (`--resume`) and skips what
is done, so the runs can span several sessions. The CPU time of every training is measured (the
child's user + system time, polled every 20 s so that a killed run loses at most that) and
reported beside its scores: equal CPU time per arm is checked, not assumed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

SPEC = Path(__file__).with_name("claims.yaml")
BOOTSTRAP = 2000          # resamples of the files for claim 6's intervals
PIT_BINS = 20
BLOCK_TARGETS = (2.5, 5.0)  # claim 5: the dynamic points (p = 0.9) whose compute and gap the table shows


def load_spec(path: Path = SPEC) -> dict:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- training, with its CPU time

def _cpu_of(pid: int) -> float | None:
    """User + system CPU seconds of a live process and its reaped children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_counted(cmd: list[str], run: Path, threads: int) -> None:
    """Run cmd to completion, adding its CPU time to run/cpu.json (kept across killed sessions)."""
    ledger = run / "cpu.json"
    spent = json.loads(ledger.read_text())["seconds"] if ledger.exists() else 0.0
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run / "train.err", "a") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    done = threading.Event()

    def poll() -> None:
        while not done.wait(20.0):
            now = _cpu_of(proc.pid)
            if now is not None:
                ledger.write_text(json.dumps({"seconds": spent + now}))

    threading.Thread(target=poll, daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    ledger.write_text(json.dumps({"seconds": spent + usage.ru_utime + usage.ru_stime}))
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: see {run / 'train.err'}")


def train(spec: dict, arm: str, seed: int, out: Path, root: str, threads: int) -> Path:
    """Train one arm for one seed (resuming an unfinished run); returns its weights."""
    a = spec["arms"][arm]
    task = spec["tasks"][a["task"]]
    run = out / arm / f"seed-{seed}"
    weights = run / "last.safetensors"
    if (run / "train.done").exists():
        return weights
    run.mkdir(parents=True, exist_ok=True)
    steps = round(task["steps"] * a.get("steps_factor", 1.0))
    overrides = [*task["recipe"], f"train.steps={steps}", f"train.seed={seed}", *a["overrides"]]
    if task["data"] != "builtin":
        overrides.append(f"data.root={root}")
    if "init" in a:
        overrides.append(f"train.init={out / a['init'] / f'seed-{seed}' / 'last.safetensors'}")
    resume = ["--resume"] if (run / "last.state.pt").exists() else []
    run_counted([sys.executable, "-m", "press.cli", "train", task["config"], "--out", str(run), *resume,
                 *overrides], run, threads)
    (run / "train.done").write_text("")
    return weights


# ---------------------------------------------------------------- scoring

def _separator(net, recalibration, long_cfg: dict | None = None):
    """The scoring cut: the API's 2 s segments with 0.25 s of context, or `long_cfg`'s; the context
    holds at least one likelihood block, which segments' speakers are aligned on."""
    from press.engine.operating_point import DEFAULT_CONTEXT, DEFAULT_SEGMENT
    from press.inference.runner import Separator

    block = net.cfg.block / net.cfg.sample_rate
    segment, context = (long_cfg["segment"], long_cfg["context"]) if long_cfg else (DEFAULT_SEGMENT, DEFAULT_CONTEXT)
    return Separator(net, segment=segment, context=max(context, block), recalibration=recalibration)


def block_passes(model: str, spec: dict, task: str, root: str, limit: int, target_db: float,
                 confidence: float = 0.9) -> dict:
    """Why the block size moves the dynamic savings: at exit 1, the share of likelihood blocks whose
    exit probability reaches `confidence` at `target_db`, and the share of segments where every
    block does (what the rule asks before a segment leaves), over the first `limit` test items."""
    import torch

    from press.engine.rule import segment_decision
    from press.evaluation.analysis import analyse
    from press.evaluation.report import dataset_items, resolve_model
    from press.inference.trace import trace_exits
    from press.io.streaming import ArrayReader

    torch.set_num_threads(1)
    net, _, recal, _ = resolve_model(model, "cpu")
    separator, s = _separator(net, recal), spec["tasks"][task]["score"]
    items, _ = dataset_items(s["dataset"], None if s["dataset"] == "builtin" else root, s["split"], net,
                             s.get("subset"), limit)
    blocks, segments = [], []
    with torch.no_grad():
        for item in items:
            mixture = item["mixture"].numpy().astype(np.float32)
            a = analyse(trace_exits(separator, ArrayReader(mixture)), mixture, item["sources"].numpy())
            passing = a.probabilities(target_db, recal)[1][0] >= confidence    # exit 1: (n_seg, n_core)
            blocks += [b[v] for b, v in zip(passing, a.valid)]
            segments += segment_decision(passing, a.valid).tolist()
    return {"blocks_per_segment": float(np.mean([len(b) for b in blocks])),
            "blocks_passing": float(np.concatenate(blocks).mean()), "segments_passing": float(np.mean(segments))}


def score(model: str, spec: dict, task: str, root: str, out: Path, long: bool = False) -> dict:
    """Score a model on its task's test split: the evaluation of `press evaluate` (quality per exit,
    dynamic sweep, calibration) plus PIT histograms, reliability bins and per-file rows; with
    `long`, on whole files and with a recalibration fitted on validation items ("recalibrated")."""
    import torch

    from press.evaluation.evaluate import Options, evaluate, fit_on
    from press.evaluation.report import dataset_items, resolve_model
    from press.prob.calibration import reliability_diagram

    s, long_cfg = spec["tasks"][task]["score"], spec["long_scoring"]
    path = out / ("score-long.json" if long else "score.json")
    if path.exists():
        return json.loads(path.read_text())
    torch.set_num_threads(1)
    net, _, recal, _ = resolve_model(model, "cpu")
    separator = _separator(net, recal, long_cfg if long else None)
    data_root = None if s["dataset"] == "builtin" else root
    fitted = None
    with torch.no_grad():
        if long:
            val, _ = dataset_items(s["dataset"], data_root, "val", net, s.get("subset"), long_cfg["calibrate_limit"])
            fitted = fit_on(separator, val)
        items, _ = dataset_items(s["dataset"], data_root, s["split"], net, s.get("subset"), s["limit"])
        result = evaluate(separator, items, Options(targets=tuple(s["targets"]), confidence=0.9), recal, fitted)
    cal = result.calibration
    summary = {"model": model, **result.summary, "rows": result.rows,
               "pit_hist": {label: [np.histogram(u, PIT_BINS, (0.0, 1.0))[0].tolist() for u in cal.pit_per_exit(label)]
                            for label in cal.pit},
               "reliability": {}}
    for label in cal.reliability:
        d = reliability_diagram(*(torch.from_numpy(x) for x in cal.pooled_reliability(label)))
        summary["reliability"][label] = {"predicted": d.mean_predicted.tolist(), "observed": d.observed.tolist(),
                                         "count": d.count.tolist(), "ece": d.ece}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))
    return summary


def run_all(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    claims = {int(c): spec["claims"][int(c)] for c in args.claims}
    arms = list(dict.fromkeys(a for c in claims.values() for a in c["arms"]))
    arms = [a for a in arms if "init" not in spec["arms"][a]] + [a for a in arms if "init" in spec["arms"][a]]
    long_arms = set(spec["claims"][4]["arms"]) if 4 in claims else set()
    short_arms = {a for n, c in claims.items() if n != 4 for a in c["arms"]}
    futures: dict[tuple[str, int], object] = {}

    def job(arm: str, seed: int) -> None:
        init = spec["arms"][arm].get("init")
        if init is not None:
            futures[init, seed].result()            # its start: submitted, and started, before it
        weights = train(spec, arm, seed, args.out, args.root, args.threads)
        scoring = ["score", str(weights), "--task", spec["arms"][arm]["task"], "--out", str(weights.parent),
                   "--root", args.root, "--spec", str(args.spec)]
        if arm in short_arms:
            _in_child(scoring, args.threads)
        if arm in long_arms:
            _in_child([*scoring, "--long"], args.threads)
        print(f"{time.strftime('%H:%M')} {arm} seed {seed}: done", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        for arm in arms:
            for seed in args.seeds or spec["seeds"]:
                futures[arm, seed] = pool.submit(job, arm, seed)
        for claim in claims.values():            # shipped models scored beside the arms (claim 6)
            for name in claim.get("models", []):
                pool.submit(_in_child, ["score", name, "--task", "enhance", "--out", str(args.out / f"shipped-{name}"),
                                        "--root", args.root, "--spec", str(args.spec)], args.threads)
    for f in futures.values():
        f.result()                               # re-raise a failed arm


def _in_child(argv: list[str], threads: int) -> None:
    """Score in a child process: one torch thread setting per process, and a crash loses one score."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, *argv], check=True, env=env)


# ---------------------------------------------------------------- report

def _weights(out: Path, arm: str) -> list[Path]:
    """The trained weights of an arm's finished seeds, in seed order."""
    return [r / "last.safetensors" for r in sorted((out / arm).glob("seed-*")) if (r / "train.done").exists()]


def _seeds(out: Path, arm: str, name: str = "score.json") -> list[dict]:
    runs = sorted((out / arm).glob("seed-*"))
    found = []
    for r in runs:
        if (r / name).exists():
            s = json.loads((r / name).read_text())
            ledger = r / "cpu.json"
            s["cpu_minutes"] = json.loads(ledger.read_text())["seconds"] / 60 if ledger.exists() else float("nan")
            found.append(s)
    return found


def _ms(values: list[float], fmt: str = "{:.2f}") -> str:
    """mean (min–max) over seeds."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "–"
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(np.mean(v))} ({fmt.format(min(v))}–{fmt.format(max(v))})"


def _exit(s: dict, k: int, metric: str) -> float | None:
    return s["exits"][k][metric] if k < len(s["exits"]) else None


def dynamic_share(s: dict, target: float, confidence: float = 0.9) -> float | None:
    """The dynamic point at (target, confidence): its GMAC/s as a share of the last exit's."""
    last = s["exits"][-1]["gmacs_per_second"]
    for d in s["dynamic_sweep"]:
        if d["confidence"] == confidence and d["target_db"] == target:
            return d["gmacs_per_second"] / last
    return None


def _calibration(s: dict, label: str = "raw") -> dict:
    return s["calibration"].get(label, {"exits": [], "ece": None})


def table(claim: int, spec: dict, out: Path) -> list[str]:
    c = spec["claims"][claim]
    arms = c["arms"]
    lines = [f"### Claim {claim}: {c['title']}", ""]
    if claim in (1, 2, 3, 5):
        k = max((len(s["exits"]) for a in arms for s in _seeds(out, a)), default=0)
        head = ["arm", "seeds", "CPU min"] + [f"SI-SNRi exit {i + 1}" for i in range(k)]
        if claim in (1, 2):
            head += ["PESQ-WB last", "STOI last"]
        if claim in (2, 5):
            head += ["ECE", "KS last exit"]
        if claim == 5:
            head += ["GMAC/s last exit"] + [f"GMAC/s vs last exit, t = {t:g} dB" for t in BLOCK_TARGETS]
            head += [f"gap to static line, t = {t:g} dB" for t in BLOCK_TARGETS]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for a in arms:
            ss = _seeds(out, a)
            if not ss:
                continue
            cells = [a, str(len(ss)), _ms([s["cpu_minutes"] for s in ss], "{:.1f}")]
            cells += [_ms([_exit(s, i, "si_snri") for s in ss]) for i in range(k)]
            if claim in (1, 2):
                cells += [_ms([s["exits"][-1].get("pesq") for s in ss]),
                          _ms([s["exits"][-1].get("stoi") for s in ss], "{:.3f}")]
            if claim in (2, 5):   # an SI-SNR-trained network predicts no variance worth scoring
                no_variance = "loss.objective=sisnr" in spec["arms"][a]["overrides"]
                cells += ["–", "–"] if no_variance else [
                    _ms([_calibration(s)["ece"] for s in ss], "{:.3f}"),
                    _ms([_calibration(s)["exits"][-1]["ks"] for s in ss], "{:.3f}")]
            if claim == 5:
                cells += [_ms([s["exits"][-1]["gmacs_per_second"] for s in ss])]
                cells += [_ms([100 * dynamic_share(s, t) for s in ss], "{:.0f} %") for t in BLOCK_TARGETS]
                gaps = [{g["point"]: g["gap"] for g in dynamic_gaps(s)} for s in ss]    # claim 6's gaps
                cells += [_ms([g.get(f"t = {t:g} dB") for g in gaps], "{:+.2f}") for t in BLOCK_TARGETS]
            lines.append("| " + " | ".join(cells) + " |")
    elif claim == 4:
        head = ["weights", "seeds", "CPU min", "SI-SNRi last exit", "ECE raw", "KS last exit raw",
                "ECE recalibrated", "KS last exit recalibrated"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for a in arms:
            ss = _seeds(out, a, "score-long.json")
            if not ss:
                continue
            lines.append("| " + " | ".join([
                a, str(len(ss)), _ms([s["cpu_minutes"] for s in ss], "{:.1f}"),
                _ms([s["exits"][-1]["si_snri"] for s in ss]),
                _ms([_calibration(s)["ece"] for s in ss], "{:.3f}"),
                _ms([_calibration(s)["exits"][-1]["ks"] for s in ss], "{:.3f}"),
                _ms([_calibration(s, "recalibrated")["ece"] for s in ss], "{:.3f}"),
                _ms([_calibration(s, "recalibrated")["exits"][-1]["ks"] for s in ss], "{:.3f}")]) + " |")
    else:
        head = ["model", "point", "GMAC/s", "SI-SNRi", "static line at that GMAC/s", "gap (95 % CI over files)"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, s in _claim6_models(spec, out):
            for row in dynamic_gaps(s):
                lines.append("| " + " | ".join([name, row["point"], f"{row['gmacs']:.2f}", f"{row['si_snri']:.2f}",
                                                f"{row['line']:.2f}", f"{row['gap']:+.2f} ({row['lo']:+.2f}, {row['hi']:+.2f})"])
                             + " |")
    return lines + [""]


def _claim6_models(spec: dict, out: Path) -> list[tuple[str, dict]]:
    c = spec["claims"][6]
    models = [(f"{a} seed {i}", s) for a in c["arms"] for i, s in enumerate(_seeds(out, a))]
    for name in c.get("models", []):
        p = out / f"shipped-{name}" / "score.json"
        if p.exists():
            models.append((f"shipped `{name}`", json.loads(p.read_text())))
    return models


def dynamic_gaps(s: dict, seed: int = 0) -> list[dict]:
    """Each dynamic point at p = 0.9 against the piecewise-linear line through the static exits,
    at the point's own mean GMAC/s: the gap in SI-SNRi and its 95 % bootstrap interval over files."""
    rows, K = s["rows"], len(s["exits"])
    static_q = np.array([[r[f"si_snri_exit{k}"] for k in range(1, K + 1)] for r in rows])   # (files, K)
    static_c = np.array([[r[f"gmacs_exit{k}"] for k in range(1, K + 1)] for r in rows])
    secs = np.array([r["seconds"] for r in rows])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), (BOOTSTRAP, len(rows)))
    out = []
    for d in s["dynamic"]:
        tag = f"t{d['target_db']:g}"
        q = np.array([r[f"si_snri_{tag}"] for r in rows])
        c = np.array([r[f"gmacs_{tag}"] for r in rows])

        def gap(idx: np.ndarray, q: np.ndarray = q, c: np.ndarray = c) -> tuple[float, float, float, float]:
            w = secs[idx] / secs[idx].sum()           # compute per second of audio: weighted by length
            sq, sc = static_q[idx].mean(0), (static_c[idx] * w[:, None]).sum(0)
            dq, dc = q[idx].mean(), (c[idx] * w).sum()
            line = float(np.interp(dc, sc, sq))
            return dq - line, dq, dc, line

        g, dq, dc, line = gap(np.arange(len(rows)))
        boot = np.array([gap(p)[0] for p in picks])
        out.append({"point": f"t = {d['target_db']:g} dB", "gmacs": dc, "si_snri": dq, "line": line, "gap": g,
                    "lo": float(np.percentile(boot, 2.5)), "hi": float(np.percentile(boot, 97.5))})
    return out


def figures(spec: dict, out: Path, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    # claim 2: PIT histograms (seeds pooled) of the arms with a variance, and their reliability
    arms = [a for a in spec["claims"][2]["arms"] if _seeds(out, a) and "loss.objective=sisnr" not in spec["arms"][a]["overrides"]]
    if arms:
        K = len(_seeds(out, arms[0])[0]["pit_hist"]["raw"])
        fig, axes = plt.subplots(len(arms), K + 1, figsize=(3.2 * (K + 1), 2.4 * len(arms)), squeeze=False)
        edges = np.linspace(0, 1, PIT_BINS + 1)
        for i, a in enumerate(arms):
            ss = _seeds(out, a)
            for k in range(K):
                h = np.sum([s["pit_hist"]["raw"][k] for s in ss], axis=0)
                axes[i, k].bar(edges[:-1], h / h.sum() * PIT_BINS, width=1 / PIT_BINS, align="edge", alpha=0.7)
                axes[i, k].axhline(1.0, color="k", lw=0.8)
                axes[i, k].set_title(f"{a}, exit {k + 1}", fontsize=9)
                axes[i, k].set_xlabel("PIT of the error energy", fontsize=8)
            ax = axes[i, K]
            for j, s in enumerate(ss):
                r = s["reliability"]["raw"]
                ax.plot(r["predicted"], r["observed"], marker="o", ms=3, label=f"seed {j}: ECE {r['ece']:.3f}")
            ax.plot([0, 1], [0, 1], color="k", lw=0.8)
            ax.set_title(f"{a}: reliability", fontsize=9)
            ax.set_xlabel("P(exit-SNR ≥ t)", fontsize=8)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "claims_calibration.png", dpi=110)
        plt.close(fig)
    # claim 6: quality against compute, static exits joined by the line, dynamic points with intervals
    models = _claim6_models(spec, out)
    if models:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for j, (name, s) in enumerate(models):
            color = f"C{j}"
            ax.plot([e["gmacs_per_second"] for e in s["exits"]], [e["si_snri"] for e in s["exits"]],
                    color=color, marker="s", label=f"{name}: static exits")
            g = dynamic_gaps(s)
            ax.errorbar([r["gmacs"] for r in g], [r["si_snri"] for r in g],
                        yerr=[[r["gap"] - r["lo"] for r in g], [r["hi"] - r["gap"] for r in g]],
                        color=color, ls="none", marker="o", capsize=3, label=f"{name}: dynamic, p = 0.9 (95 % CI of the gap)")
        ax.set_xlabel("GMAC per second of audio (spent)")
        ax.set_ylabel("SI-SNRi (dB), held-out real-noise test")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "claims_dynamic_vs_static.png", dpi=110)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train and score the arms")
    r.add_argument("out", type=Path)
    r.add_argument("--root", required=True, help="the `press data noisy` folder")
    r.add_argument("--claims", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    r.add_argument("--seeds", nargs="+", type=int, default=None, help="default: claims.yaml's")
    r.add_argument("--jobs", type=int, default=2, help="arms trained at once")
    r.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p = sub.add_parser("report", help="print the tables, draw the figures")
    p.add_argument("out", type=Path)
    p.add_argument("--claims", nargs="+", type=int, default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--figures", type=Path, default=None, help="folder for the figures (default: OUT)")
    s = sub.add_parser("score", help="score one model (what `run` calls per arm)")
    s.add_argument("model")
    s.add_argument("--task", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--long", action="store_true")
    b = sub.add_parser("passes", help="claim 5: block and segment pass rates of the exit rule at exit 1")
    b.add_argument("out", type=Path)
    b.add_argument("--root", required=True)
    b.add_argument("--claim", type=int, default=5)
    b.add_argument("--limit", type=int, default=30, help="first test items")
    b.add_argument("--target", type=float, default=2.5)
    for command in (r, p, s, b):
        command.add_argument("--spec", type=Path, default=SPEC, help="the arms (default: experiments/claims.yaml)")
    args = parser.parse_args()
    if args.command == "run":
        args.out.mkdir(parents=True, exist_ok=True)
        run_all(args)
    elif args.command == "passes":
        spec = load_spec(args.spec)
        for arm in spec["claims"][args.claim]["arms"]:
            for seed, weights in enumerate(_weights(args.out, arm)):
                r = block_passes(str(weights), spec, spec["arms"][arm]["task"], args.root, args.limit, args.target)
                print(f"{arm} seed {seed}: {r['blocks_per_segment']:.1f} blocks per segment, "
                      f"{100 * r['blocks_passing']:.0f} % of blocks and {100 * r['segments_passing']:.0f} % of "
                      f"segments pass at exit 1 (t = {args.target:g} dB, p = 0.9)")
    elif args.command == "score":
        score(args.model, load_spec(args.spec), args.task, args.root, args.out, args.long)
    else:
        spec = load_spec(args.spec)
        for claim in args.claims:
            print("\n".join(table(claim, spec, args.out)))
        figures(spec, args.out, args.figures or args.out)


if __name__ == "__main__":
    main()
