"""The `press` command line: a thin shell over the library.

Each sub-command lives in its own module under `press.commands` (or next to the code it drives)
and exposes `add_arguments(parser)` and `run(args) -> int`. Command modules keep their heavy
imports (torch, the model) inside `run`, so that `press --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from press.allocator import tune_process
from press.commands.signals import run_cleanly

# (name, module, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("info", "press.commands.info", "parameters and GMAC/s per exit of a model"),
    ("data", "press.commands.data", "corpora: rebuild the built-in one (synth), render the recorded enhancement one "
                                    "(noisy), describe (info)"),
    ("train", "press.commands.train", "train a model (crops, then full-length fine-tuning); resume exactly"),
    ("separate", "press.commands.separate", "separate audio files at a quality target (dB, confidence)"),
    ("enhance", "press.commands.enhance", "remove noise from speech (the shipped enhance model) at a quality target"),
    ("stream", "press.commands.stream", "enhance a live stream (a file, raw PCM on stdin, a microphone) with a causal "
                                        "model, chunk by chunk"),
    ("average", "press.commands.average", "average the weights of several checkpoints of one run (SWA)"),
    ("export", "press.commands.export", "export a model to ONNX graphs and a manifest for press.runtime"),
    ("demo", "press.commands.demo", "enhance built-in noisy test recordings (or separate mixtures) at a few targets"),
    ("evaluate", "press.commands.evaluate", "SI-SNRi/SDRi/PESQ/STOI per exit and dynamic, strategies, calibration"),
    ("serve", "press.commands.serve", "a local web page: separate a recording, listen to each speaker, see the exits"),
    ("kernels", "press.commands.kernels", "build the compiled CPU kernels ahead of time, or see their status"),
]


def build_parser() -> argparse.ArgumentParser:
    from press.version import __version__

    parser = argparse.ArgumentParser(
        prog="press",
        description="PRESS: speech separation and enhancement with probabilistic early exits.",
    )
    parser.add_argument("--version", action="version", version=f"press {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def joined_negative_values(argv: list[str]) -> list[str]:
    """`--target-db -1e9` as `--target-db=-1e9`. argparse reads a token that starts with '-' as an
    option unless it looks like -5 or -.5, so a negative value in exponent form would be refused with
    "expected one argument" instead of being read (and range-checked) as the number it is."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and token.startswith("-") and _is_number(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may follow options (`press train tiny --out run train.lr=1e-3`): argparse
    # hands positionals after an option back as unknown, so they join the command's `overrides`.
    args, extra = parser.parse_known_args(joined_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 1
    # The command line owns its process: subnormal floats flushed to zero (near-silent audio is
    # otherwise many times slower) and freed activations kept in the heap. The library leaves both
    # to its caller. Before the command runs anything in torch: threads inherit the flush mode.
    tune_process()
    return run_cleanly(f"press {args.command}", lambda: importlib.import_module(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
