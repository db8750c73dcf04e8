"""Command-line options that several sub-commands share, defined once."""

from __future__ import annotations

import argparse


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """`--device auto|cpu|cuda|cuda:N`, resolved by `press.model.device.resolve_device`."""
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (a GPU if torch sees one, else the CPU), cpu, cuda or cuda:N (default: auto)")
