"""Which training data helps: equal-budget runs on cumulative data variants, scored on
the recorded speech of the validation split.

Every run trains the same model from the same weights with the same recipe for the same number of
steps (equal compute; the wall time of each run is printed beside it, and data loading is a few per
cent of a step, see benchmarks/data_throughput.py and augment_throughput.py), then its last weights are scored
on the validation split's recorded speakers (the mixtures of `press evaluate --split val --subset
real`, speakers no variant trains on), each mixture separated whole. The variants add one thing at a
time to the previous one:

    shipped      the shipped corpus (44 minutes of training speech, 8 recorded talkers)
    +recorded    all recorded training speech of the full corpus (3.5 h, 31 talkers)
    +transformed its WORLD-transformed voices
    +languages   the synthetic voices in 30 languages (= the full corpus)
    +rooms       the full corpus with rooms and channels (data.augment.enabled=true)
and, asked for by name, +transformed+rooms: rooms and channels on the +transformed data.

The full corpus must be rendered first (`press data synth FULL --full --jobs 2`). Each variant's
manifest is the full one filtered by kind and voice, beside a link to its audio, so nothing is copied.

Run:  python experiments/data_ablation.py FULL OUT [--steps 600] [--init default] [--limit 200] [--threads 2]
Conclusion: docs/experiments.md, "Which data helps"; the table in docs/data.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # realval.py: the shared scorer
from realval import press_separator, score

from press.corpus.voices import all_voices
from press.data.manifest import read_manifest, write_manifest

# variant -> (how much of the full corpus's training data: 0 shipped, 1 + recorded, 2 + transformed, 3 + languages;
# rooms and channels on)
VARIANTS = {"shipped": (0, False), "+recorded": (1, False), "+transformed": (2, False), "+languages": (3, False),
            "+rooms": (3, True), "+transformed+rooms": (2, True)}


def keep(row: dict, variant: str, shipped_speakers: set[str], shipped_ids: set[str]) -> bool:
    """Whether a manifest row of the full corpus belongs to a variant's training data."""
    if row["split"] != "train":
        return True                                  # validation, test and babble: always the shipped ones
    level = VARIANTS[variant][0]
    if row["kind"] == "real":
        return level >= 1 or row["id"] in shipped_ids
    if row["kind"] == "transformed":
        return level >= 2
    return level >= 3 or row["speaker"] in shipped_speakers     # synthetic voices


def make_variant(full: Path, out: Path, variant: str, shipped_ids: set[str]) -> Path:
    root = out / "data" / variant.strip("+")
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "audio").exists():
        os.symlink(full / "audio", root / "audio")
    shipped_speakers = {v.speaker for v in all_voices(0)}
    rows = [r for r in read_manifest(full / "manifest.csv") if keep(r, variant, shipped_speakers, shipped_ids)]
    write_manifest(root / "manifest.csv", rows)
    return root


def train_and_score(root: Path, run: Path, variant: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    overrides = [
        f"data.root={root}", f"train.steps={args.steps}", "finetune.steps=0", f"train.init={args.init}",
        f"train.warmup_steps={args.steps // 10}", f"train.lr={args.lr}", f"train.val_every={args.steps}",
        f"train.ckpt_every={max(50, args.steps // 10)}", "data.val_examples=40",
        f"data.augment.enabled={'true' if VARIANTS[variant][1] else 'false'}",
    ]
    start = time.perf_counter()
    if not (run / "last.safetensors").exists() or _step(run) < args.steps:   # a killed ablation resumes its run
        resume = ["--resume"] if (run / "last.state.pt").exists() else []
        subprocess.run([sys.executable, "-m", "press.cli", "train", args.config, "--out", str(run), *resume,
                        *overrides], check=True, env=env)
    minutes = (time.perf_counter() - start) / 60
    return {"minutes": minutes, "si_snri": score(press_separator(str(run / "last.safetensors")), args.limit)}


def _step(run: Path) -> int:
    log = run / "log.csv"
    if not log.exists():
        return 0
    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    return int(rows[-1]["step"]) if rows else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("full", type=Path, help="the rendered full corpus (press data synth FULL --full)")
    parser.add_argument("out", type=Path, help="folder for variant manifests, runs and results")
    parser.add_argument("--config", default="default")
    parser.add_argument("--init", default=None, help="weights to start from (default: the shipped default model)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--limit", type=int, default=200, help="validation mixtures scored")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:5], choices=list(VARIANTS))
    args = parser.parse_args()
    before = score(press_separator(args.init or "default"), args.limit)
    print(f"{Path(args.init or 'default').name} before training: SI-SNRi per exit", before, flush=True)
    if args.init is None:
        from press.model.pretrained import resolve

        args.init = str(resolve("default"))
    shipped_ids = {r["id"] for r in read_manifest(Path(__file__).parents[1] / "press/data/builtin/manifest.csv")}
    done = args.out / "results.json"
    results = json.loads(done.read_text()) if done.exists() else {}    # earlier variants stay in the table
    for variant in args.variants:
        root = make_variant(args.full, args.out, variant, shipped_ids)
        results[variant] = train_and_score(root, args.out / "runs" / variant.strip("+"), variant, args)
        done.write_text(json.dumps(results, indent=1))
        print(variant, results[variant], flush=True)
    rows = {v: read_manifest(args.out / "data" / v.strip("+") / "manifest.csv") for v in results}
    print(f"\n{args.config}, {args.steps} steps from {Path(args.init).name}; SI-SNRi (dB) on {args.limit} validation "
          "mixtures of recorded speech")
    exits = "  ".join(f"exit {k + 1}" for k in range(3))
    print(f"{'variant':<14}{'train h (real/xf/tts)':>24}{'minutes':>9}  {exits}")
    for v, r in results.items():
        hours = {k: sum(float(x["seconds"]) for x in rows[v] if x["split"] == "train" and x["kind"] == k) / 3600
                 for k in ("real", "transformed", "tts")}
        split = "/".join(f"{hours[k]:.2f}" for k in ("real", "transformed", "tts"))
        print(f"{v:<14}{split:>24}{r['minutes']:>9.1f}  " + "  ".join(f"{x:6.2f}" for x in r["si_snri"]))


if __name__ == "__main__":
    main()
