"""The built-in corpus's manifest: one CSV row per recorded or rendered utterance.

Kept apart from the renderer (press.corpus, which needs TTS engines and Debian packages) so that
reading the shipped corpus imports nothing of it; the renderer writes its manifests with this module.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from press.errors import PressError
from press.io.files import atomic_write

SAMPLE_RATE = 8000  # the corpus's rate: every utterance is stored at 8 kHz
MANIFEST_FIELDS = ("id", "path", "speaker", "talent", "kind", "engine", "split", "seconds", "sha256", "licence", "text")


def pcm_sha256(pcm: np.ndarray) -> str:
    """The manifest's `sha256`: a checksum of the int16 samples (not of the FLAC bytes, which depend on
    the encoder version)."""
    return hashlib.sha256(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).hexdigest()


def read_manifest(path: Path) -> list[dict]:
    """The manifest's rows as dicts (every value a string)."""
    if not path.exists():
        raise PressError(
            f"{path}: corpus manifest missing; render it with `press data synth {path.parent} --full` (the full "
            f"training corpus; without --full, the shipped one), which names the Debian packages it needs"
        )
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_manifest(path: Path, rows: list[dict], fields: tuple[str, ...] = MANIFEST_FIELDS) -> None:
    """Write a manifest CSV (the built-in corpus's columns unless `fields` are given) atomically: a crash
    mid-write leaves the previous one in place."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)
