"""`press-runtime separate MANIFEST INPUT... --out DIR`: `press separate --backend onnx` without torch.

The same command as press-sep's: its options, outputs (NAME_s1.wav, ... or NAME_speech.wav and
NAME_noise.wav, and NAME.json), reports and exit codes, because press_runtime.commands.separate is
press.commands.separate. Only the backend is fixed: press-runtime has the ONNX one, so the options that
choose or tune the torch backend (--backend, --device, --compile) are not offered.
"""

from __future__ import annotations

import argparse
import sys

from press_runtime.commands import separate
from press_runtime.commands.signals import run_cleanly
from press_runtime.version import __version__

TORCH_OPTIONS = {"backend", "device", "compile"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="press-runtime",
        description="PRESS's torch-free runtime: separate or enhance audio with a model exported by "
                    "`press export` (ONNX graphs and manifest.json), with probabilistic early exits.",
    )
    parser.add_argument("--version", action="version", version=f"press-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    help_text = "separate audio files at a quality target (dB, confidence) with an exported model"
    p = sub.add_parser("separate", help=help_text, description=help_text)
    p.add_argument("model", metavar="MANIFEST", help="the manifest.json written by `press export` (or its folder)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (any rate libsndfile reads)")
    p.add_argument("--out", required=True, help="folder for the separated sources and reports")
    separate.add_run_options(p)
    p.set_defaults(backend="onnx")
    for action in p._actions:   # argparse has no public way to leave out an option another module added
        if action.dest in TORCH_OPTIONS:
            action.help = argparse.SUPPRESS
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    if args.backend != "onnx":
        parser.error("press-runtime runs exported ONNX graphs only; the torch backend is press-sep's `press separate`")
    return run_cleanly(f"press-runtime {args.command}", lambda: separate.run(args))


if __name__ == "__main__":
    sys.exit(main())
