"""`press evaluate MODEL --dataset NAME [--root DIR] --split SPLIT --out DIR [--json]`.

Writes to --out: summary.json, utterances.csv and the figures (exits_example.png,
quality_vs_compute.png, regret_vs_compute.png, calibration.png, reliability.png); prints a table,
or with --json the summary as one JSON object on stdout. With --calibrate-split, a post-hoc
recalibration is fitted on that split first, reported before/after, and with --save-calibrated
written into a copy of the checkpoint, which `Separator` then applies.
"""

from __future__ import annotations

import argparse
import json
import sys

from press.commands.options import add_device_argument
from press.errors import PressError


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise PressError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise PressError(f"{what} must hold at least one number, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model's name (default) or a checkpoint .safetensors")
    p.add_argument("--dataset", default="builtin", help="corpus name (builtin needs no --root)")
    p.add_argument("--root", default=None, help="folder holding the corpus")
    p.add_argument("--split", default="test", help="train / val / test (default: test)")
    p.add_argument("--subset", default=None, help="builtin only: all, real (recorded speech) or tts")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N utterances")
    p.add_argument("--targets", default="10,15,20,25", help="exit-SNR targets t in dB (comma-separated)")
    p.add_argument("--confidence", type=float, default=0.9, help="confidence p of the dynamic rule")
    p.add_argument("--quantile", type=float, default=1.0,
                   help="share of a segment's blocks that must reach p before it leaves an exit (default 1: "
                        "every block; docs/exits.md)")
    p.add_argument("--segment", type=float, default=None,
                   help="compute segment in seconds (default: the model's operating point's, 2.0 "
                        "where it names none)")
    p.add_argument("--context", type=float, default=None,
                   help="context on each side in seconds (default: the model's operating point's, "
                        "0.25 where it names none)")
    p.add_argument("--batch-size", type=int, default=8, help="segments per batch")
    p.add_argument("--no-quality", action="store_true", help="skip SDRi, PESQ and STOI (faster)")
    p.add_argument("--calibrate-split", default=None,
                   help="fit a post-hoc recalibration on this split first (e.g. val)")
    p.add_argument("--calibrate-limit", type=int, default=50, help="utterances to fit it on")
    p.add_argument("--calibrate-method", choices=("crps", "likelihood"), default="crps",
                   help="fit criterion: mean CRPS of the error power in dB (default) or the likelihood")
    p.add_argument("--calibrate-pooled", action="store_true",
                   help="fit one pair of scales for all exits instead of one pair per exit")
    p.add_argument("--save-calibrated", default=None, metavar="PATH",
                   help="write the checkpoint with the fitted recalibration to PATH")
    p.add_argument("--out", required=True, help="folder for the CSV, JSON and figures")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from press.evaluation.report import Request, run_request

    targets = _floats(args.targets, "--targets")
    if not 0.0 <= args.confidence <= 1.0:
        raise PressError(f"--confidence must be in [0, 1], got {args.confidence}")
    if not 0.0 < args.quantile <= 1.0:
        raise PressError(f"--quantile must be in (0, 1], got {args.quantile}")
    if args.limit is not None and args.limit < 1:
        raise PressError(f"--limit must be at least 1, got {args.limit}")
    if args.save_calibrated and not args.calibrate_split:
        raise PressError("--save-calibrated needs --calibrate-split (the split to fit on)")
    summary = run_request(Request(
        model=args.model, dataset=args.dataset, out=Path(args.out), targets=targets, confidence=args.confidence,
        quantile=args.quantile,
        quality=not args.no_quality, root=args.root, split=args.split, subset=args.subset, limit=args.limit,
        device=args.device, segment=args.segment, context=args.context, batch_size=args.batch_size,
        calibrate_split=args.calibrate_split, calibrate_limit=args.calibrate_limit,
        calibrate_method=args.calibrate_method, calibrate_pooled=args.calibrate_pooled,
        save_calibrated=args.save_calibrated))
    if args.json:
        json.dump(summary, sys.stdout)
        print()
    else:
        _print_table(summary)
    return 0


def _print_table(summary: dict) -> None:
    print(f"{summary['utterances']} utterances, {summary['audio_seconds']:.1f} s of audio")
    print(f"{'':>14} {'SI-SNRi':>8} {'SDRi':>7} {'PESQ':>6} {'STOI':>6} {'GMAC/s':>8} {'RTF':>7}")

    def line(name: str, d: dict) -> None:
        cells = [f"{d[k]:>{w}.{p}f}" if d.get(k) is not None else f"{'-':>{w}}"
                 for k, w, p in (("si_snri", 8, 2), ("sdri", 7, 2), ("pesq", 6, 2), ("stoi", 6, 3),
                                 ("gmacs_per_second", 8, 3), ("rtf", 7, 4))]
        print(f"{name:>14} " + " ".join(cells))

    for e in summary["exits"]:
        line(f"exit {e['exit']}", e)
    for d in summary["dynamic"]:
        line(f"t={d['target_db']:g} p={d['confidence']:g}", d)
    for label, c in summary["calibration"].items():
        ks = ", ".join(f"{e['ks']:.3f}" for e in c["exits"] if e["ks"] is not None)
        print(f"calibration ({label}): ECE {c['ece']:.3f}, KS per exit {ks}")
