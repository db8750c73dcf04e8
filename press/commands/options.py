"""Command-line options that several sub-commands share, defined once, and the checks on their values.

Every number a command takes is checked where argparse reads it: NaN, infinities and values outside
the option's range are refused with the range in the message, before any model is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from press.errors import PressError


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """`--device auto|cpu|cuda|cuda:N`, resolved by `press.model.device.resolve_device`."""
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (a GPU if torch sees one, else the CPU), cpu, cuda or cuda:N (default: auto)")


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, integer: bool = False) -> Callable[[str], float | int]:
    """An argparse `type` accepting a finite number in [low, high] (an end is excluded when `*_open`)."""
    lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
    kind = "an integer" if integer else "a number"
    wanted = (f"{kind} in {lo}, {hi}" if low is not None and high is not None else
              f"{kind} {'>' if low_open else '>='} {low:g}" if low is not None else
              f"{kind} {'<' if high_open else '<='} {high:g}" if high is not None else kind)

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (
                low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value

    return parse


def channel_choice(value: str) -> str | int:
    """`--channel mix|N`: which channel of a multi-channel input to run (press.io.audio.select_channel)."""
    if value == "mix":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected 'mix' or a channel index (0, 1, ...)") from None


def writable_folder(path: str | Path) -> Path:
    """Prove that files can be written in `path` before any work is done (a read-only or full output
    folder would otherwise fail only after the first input was separated). Folders made for the
    probe are removed again: they appear with the first output, as they would without it."""
    out = Path(path)
    made = [d for d in (out, *out.parents) if not d.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise PressError(f"cannot write to the output folder {out}: {err.strerror or err}") from None
    finally:
        for d in made:   # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
    return out
