"""Atomic file writes: a result appears under its name complete, or not at all.

Checkpoints, run records, streamed separations and command outputs are written to a temporary
file in the target's folder and renamed into place once finished, so a crash or a kill never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file to its final name, with the permissions a new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp creates 0600
    os.replace(tmp, path)


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path) and move the result to `path` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks: what export manifests record and runtimes check."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
