"""`press enhance INPUT... --out DIR`: remove noise from speech with the shipped `enhance` model.

Each input gives `NAME_speech.wav` (and `NAME_noise.wav` with `--noise`), at the input's sample rate,
and `NAME.json`: the exit each block took, its probabilities and the compute spent. The options are
`press separate`'s: a quality target in dB with a confidence, a fixed exit or a compute budget.
`press separate enhance ...` does the same and writes both sources.
"""

from __future__ import annotations

import argparse
import sys

from press.commands.options import writable_folder
from press.commands.separate import add_run_options, backend, separate_each


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="noisy speech files (any rate libsndfile reads)")
    p.add_argument("--out", required=True, help="folder for the enhanced speech and reports")
    p.add_argument("--model", default="enhance",
                   help="an enhancement model: a shipped name (enhance), a .safetensors checkpoint whose outputs "
                        "are named speech and noise, or with --backend onnx its manifest.json")
    p.add_argument("--noise", action="store_true", help="also write the removed noise (NAME_noise.wav)")
    add_run_options(p)


def run(args: argparse.Namespace) -> int:
    from press.errors import PressError

    try:
        writable_folder(args.out)
        names, n_exits, separate_one = backend(args)
        if "speech" not in names:
            raise PressError(f"{args.model} is not an enhancement model (its outputs are {', '.join(names)}, "
                             "not speech and noise); use `press separate`")
    except PressError as err:
        print(f"press enhance: error: {err}", file=sys.stderr)
        return 2
    keep = {"speech", "noise"} if args.noise else {"speech"}
    return separate_each(args, names, n_exits, separate_one, keep=keep, command="enhance")
