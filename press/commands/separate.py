"""`press separate MODEL INPUT... --out DIR`: separate files at a chosen quality target.

Each input gives one WAV per source (`NAME_s1.wav`, `NAME_s2.wav`, ... at the input's sample rate;
a model with named outputs writes `NAME_speech.wav`, `NAME_noise.wav`) and `NAME.json`: the exit taken per block with its probabilities, and the GMAC/s spent. Inputs are
streamed, so any length works with bounded memory. A bad input is reported and skipped; nothing of
it is written; the exit code is 2 if any input failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from press.commands.options import add_device_argument, channel_choice, number, writable_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model's name (default, enhance) or a .safetensors checkpoint; with "
                                 "--backend onnx, the manifest.json written by `press export`")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (any rate libsndfile reads)")
    p.add_argument("--out", required=True, help="folder for the separated sources and reports")
    add_run_options(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options `press separate` and `press enhance` share: quality target, exits, segments, backend."""
    p.add_argument("--target-db", type=number(-100, 100), default=None,
                   help="quality target t in dB of exit-SNR, -100 to 100 (default: the model's recommended "
                        "operating point, which `press info MODEL` shows; 20 for a model without one)")
    p.add_argument("--confidence", type=number(0, 1, low_open=True, high_open=True), default=None,
                   help="probability p in (0, 1) with which the target must hold to exit early (default: the "
                        "model's operating point; 0.9 for a model without one)")
    p.add_argument("--exit", type=number(1, integer=True), default=None,
                   help="run every segment to this exit instead")
    p.add_argument("--budget", type=number(0, low_open=True), default=None,
                   help="aim at a mean compute in GMAC/s instead: a threshold on the expected exit-SNR, "
                        "fitted for it on built-in validation mixtures (docs/exits.md)")
    p.add_argument("--channel", type=channel_choice, default=None,
                   help="for multi-channel input: 'mix' (average) or a channel index")
    p.add_argument("--segment", type=number(0, low_open=True), default=None,
                   help="seconds per compute segment (default: the model's operating point's, as `press info` "
                        "shows; 2 where it names none; a causal model such as enhance-rt runs a file as one "
                        "stream unless given a segment or context)")
    p.add_argument("--context", type=number(0), default=None,
                   help="seconds of context on each side (default: the model's operating point's; 0.25 where it "
                        "names none)")
    p.add_argument("--subtype", choices=["FLOAT", "PCM_16", "PCM_24"], default="FLOAT",
                   help="WAV sample format of the sources: FLOAT (32-bit, the default: twice a 16-bit input's "
                        "size), PCM_16 or PCM_24 (clipped to full scale)")
    p.add_argument("--json", action="store_true", help="print the reports as one JSON list on stdout")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="torch (default) or onnx: run exported graphs with onnxruntime (press.runtime)")
    p.add_argument("--threads", type=number(1, integer=True), default=None,
                   help="onnxruntime threads (--backend onnx)")
    add_device_argument(p)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (--backend torch): tens of seconds once; faster for "
                        "some models and machines, slower for others (docs/results.md)")


def run(args: argparse.Namespace) -> int:
    from press.errors import PressError

    try:
        writable_folder(args.out)
        names, n_exits, separate_one = backend(args)
    except PressError as err:
        print(f"press separate: error: {err}", file=sys.stderr)
        return 2
    return separate_each(args, names, n_exits, separate_one)


def backend(args: argparse.Namespace) -> tuple[list[str], int, SeparateOne]:
    """(the model's output names, its number of exits, a function separating one file) for args.backend:
    torch (press.api) or onnx (press.runtime: exported graphs, no torch); both stream and report alike."""
    from press.errors import PressError

    if args.compile and args.backend == "onnx":
        raise PressError("--compile applies to --backend torch; onnxruntime optimises its graphs itself")
    if args.backend == "onnx":
        from press.runtime import load as load_onnx

        model = load_onnx(args.model, threads=args.threads)
    else:
        from press.api import load

        model = load(args.model, device=args.device)
        if args.compile:
            model.compile()

    def separate_one(name: str, outputs: list[Path | None], options: dict) -> dict:
        return model.separate_file(name, outputs, target_db=args.target_db, confidence=args.confidence,
                                   exit=args.exit, budget=args.budget, channel=args.channel,
                                   progress=not args.json and sys.stderr.isatty(), subtype=args.subtype,
                                   **options)

    return model.source_names, model.n_exits, separate_one


SeparateOne = Callable[[str, list[Path | None], dict], dict]


def separate_each(args: argparse.Namespace, names: list[str], n_exits: int, separate_one: SeparateOne,
                  keep: set[str] | None = None, command: str = "separate") -> int:
    """Separate every input with `separate_one` into NAME_<source>.wav (only the sources in `keep`, when
    given), write its report, print a line; a bad input is reported and skipped."""
    from press.errors import PressError
    from press.io.files import atomic_write

    out = Path(args.out)
    options = {k: v for k, v in (("segment", args.segment), ("context", args.context)) if v is not None}
    reports, failed = [], 0
    for name, stem in zip(args.inputs, output_stems(args.inputs)):
        outputs = [out / f"{stem}_{n}.wav" if keep is None or n in keep else None for n in names]
        try:
            report = separate_one(name, outputs, options)
        except PressError as err:
            print(f"press {command}: error: {err}", file=sys.stderr)
            failed += 1
            continue
        written = [p for p in outputs if p is not None]
        report = {"input": str(name), "outputs": [str(p) for p in written], **report}
        text = json.dumps(report, indent=1)
        try:
            atomic_write(out / f"{stem}.json", lambda tmp: Path(tmp).write_text(text))
        except OSError as err:
            print(f"press {command}: error: cannot write {out / f'{stem}.json'}: {err.strerror or err}",
                  file=sys.stderr)
            failed += 1
            continue
        reports.append(report)
        if report["note"]:
            print(f"press {command}: note: {name}: {report['note']}", file=sys.stderr)
        if not args.json:
            print(f"{name}: {report['gmacs_per_second']:.3f} GMAC/s ({report['saving']:.0%} saved against "
                  f"exit {n_exits}), exits per {'block' if report['run'] == 'stream' else 'segment'} "
                  f"{report['exit_histogram']} -> "
                  f"{', '.join(str(p) for p in written)}")
    if args.json:
        print(json.dumps(reports))
    return 2 if failed else 0


def output_stems(inputs: list[str]) -> list[str]:
    """The name each input's outputs start with: its file name without extension, widened with its
    parent folders (`a_x`, `b_x` for `a/x.wav b/x.wav`), then with its extension (`x_wav`, `x_flac`),
    only where different files would otherwise share one, so that no input overwrites another's
    results. The same file given twice keeps one name."""
    paths = [Path(name).resolve() for name in inputs]
    stems = _widened(paths, [p.with_suffix("").parts[1:] for p in paths])   # parts without the root
    if len(set(stems)) < len(set(paths)):
        stems = _widened(paths, [(*p.parts[1:-1], p.name.replace(".", "_")) for p in paths])
    return stems


def _widened(paths: list[Path], parts: list[tuple[str, ...]]) -> list[str]:
    """Join the last parts of each path, taking one more part for every name that different files share."""
    depth = [1] * len(paths)
    while True:
        stems = ["_".join(n[-d:]) for n, d in zip(parts, depth)]
        files_of: dict[str, set[Path]] = {}
        for stem, path in zip(stems, paths):
            files_of.setdefault(stem, set()).add(path)
        widen = [i for i, stem in enumerate(stems) if len(files_of[stem]) > 1 and depth[i] < len(parts[i])]
        if not widen:
            return stems
        for i in widen:
            depth[i] += 1
