"""Which model to train on this machine: quality per CPU-hour of candidate sizes.

Every candidate is trained from scratch for the same wall time (`train.max_minutes`, validation and
checkpoints included) with the same recipe (AdamW at 1e-3 after 100 warm-up steps, 2 s crops,
batches of 4, no fine-tuning: only the architecture differs), on the same corpus, then scored by
benchmarks/realval.py on the recorded speech of the validation split (and, to report, of the test split). Its
curve is the in-training validation on the validation split's recorded speech (`data.val_options={subset: real}`) against crop-stage minutes.

    default   the shipped architecture: 3 exits after 2, 4, 6 decoder blocks
    deep4     default's blocks, 8 decoder blocks and 4 exits: the first exit is a smaller share
    press4-s  the paper's small model (4 exits, 12 decoder blocks, patch 4)
    wide      default with twice the width (D = 128): 3.5x the parameters, just under Conv-TasNet's GMAC/s

A peer trained by peer_baseline.py at the same budget can be drawn beside them (`--peer DIR`).

    python experiments/recipe_comparison.py OUT --root FULL [--minutes 20] [--threads 1]
        [--candidates default deep4 press4-s] [--peer OUT/conv-tasnet] [--limit 200]

FULL is the full training corpus, rendered once by `press data synth FULL --full --no-languages
--jobs 2`. Runs that exist are resumed or, when finished, only scored; results.json keeps each
candidate's score. Conclusion: docs/experiments.md, "PRESS against a peer at equal training budget".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # realval.py: the shared scorer
from realval import press_separator, score

# name -> (config, overrides beyond the common recipe; val_every keeps ~5 validations in 20 minutes)
CANDIDATES = {
    "default": ("default", ["train.val_every=100"]),
    "deep4": ("default", ["model.n_dec_blocks=8", "model.n_exits=4", "train.val_every=80"]),
    "press4-s": ("press4-s", ["train.val_every=15"]),
    "wide": ("default", ["model.dim=128", "train.val_every=40"]),
}
RECIPE = ["train.crop_seconds=2.0", "train.batch_size=4", "train.lr=1e-3", "train.warmup_steps=100",
          "train.steps=1000000", "train.final_lr_ratio=0.05", "train.log_every=5", "train.ckpt_every=50",
          "finetune.steps=0", "data.val_examples=60", "data.val_options={subset: real}"]


def train(name: str, run: Path, args: argparse.Namespace) -> None:
    config, extra = CANDIDATES[name]
    if (run / "result.done").exists():
        return
    resume = ["--resume"] if (run / "last.state.pt").exists() else []
    subprocess.run([sys.executable, "-m", "press.cli", "train", config, "--out", str(run), *resume, *RECIPE, *extra,
                    f"data.root={args.root}", f"train.max_minutes={args.minutes}"],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    (run / "result.done").write_text("")


def curve(run: Path) -> list[tuple[float, list[float]]]:
    """(crop minutes, validation SI-SNRi per exit) at every validation of a PRESS run."""
    with open(run / "log.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("val_loss")]
    keys = sorted(k for k in rows[0] if k.startswith("val_si_snri_")) if rows else []
    return [(float(r["crop_minutes"]), [float(r[k]) for k in keys]) for r in rows]


def gmacs(run: Path) -> list[float]:
    """GMAC/s per exit of a run's model on the static path (trunk and that exit's heads), press info's count."""
    from press.model.compute import exit_costs
    from press.model.pretrained import load

    model = load(str(run / "last.safetensors"))[0]
    return [c.static_gmacs_per_second for c in exit_costs(model)]


def plot(results: dict, peer: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        pts = r["curve"]
        ax.plot([m for m, _ in pts], [v[-1] for _, v in pts], marker="o", label=f"{name} (last exit)")
    if peer is not None:
        ax.plot(peer["curve"][0], peer["curve"][1], marker="s", ls="--", label=peer["model"])
    ax.set_xlabel("training minutes (crop stage, this machine)")
    ax.set_ylabel("SI-SNRi on recorded validation speech (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--root", required=True, help="corpus folder (data.root), e.g. press data synth --full")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=200, help="mixtures of each final score")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--peer", type=Path, default=None, help="a peer_baseline.py run folder to show beside them")
    args = parser.parse_args()
    done = args.out / "results.json"
    results = json.loads(done.read_text()) if done.exists() else {}
    for name in args.candidates:
        run = args.out / name
        train(name, run, args)
        if name not in results:
            separate = press_separator(str(run / "last.safetensors"))
            results[name] = {"si_snri": score(separate, args.limit), "si_snri_test": score(separate, args.limit, "test"),
                             "gmacs": gmacs(run), "curve": curve(run)}
            done.write_text(json.dumps(results, indent=1))
    peer = None
    if args.peer is not None:
        peer = json.loads((args.peer / "result.json").read_text())
        with open(args.peer / "log.csv") as fh:
            rows = list(csv.DictReader(fh))
        peer["curve"] = ([float(r["minutes"]) for r in rows], [float(r["val_si_snri"]) for r in rows])
    plot(results, peer, args.out / "curves.png")
    print(f"\n{args.minutes:g} minutes each at {args.threads} thread(s); SI-SNRi (dB) on {args.limit} validation "
          "and test mixtures of recorded speech, each exit; GMAC/s per second of audio at each exit")
    print(f"{'model':<14}{'SI-SNRi per exit, val':<30}{'SI-SNRi per exit, test':<30}{'GMAC/s per exit'}")
    for name, r in results.items():
        val, test = (" / ".join(f"{v:.2f}" for v in r[key]) for key in ("si_snri", "si_snri_test"))
        print(f"{name:<14}{val:<30}{test:<30}{' / '.join(f'{g:.2f}' for g in r['gmacs'])}")
    if peer is not None:
        print(f"{peer['model']:<14}{peer['si_snri']:<30.2f}{peer['si_snri_test']:<30.2f}{peer['gmac_per_s']:.2f}"
              f"  ({peer['steps']} steps)")
    print(f"curves: {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
