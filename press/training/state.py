"""Training state on disk: everything an exact resume needs, in one atomically written file.

`last.state.pt` holds the model weights, the optimiser state, the step and stage, the position in
the data plan (epoch and batches consumed), the best validation loss and every RNG state (torch
CPU and CUDA, NumPy, Python). The weights are in it as well as in `last.safetensors`: one file
written by one atomic rename is consistent whatever moment a run is killed at, whereas a pair of
files could be caught between their two renames. It is read with `torch.load(weights_only=True)`,
which unpickles tensors and plain containers only, never code. torch's zip format does not check
its own CRCs (a flipped byte in a tensor loads silently as a wrong number), so the file ends with a
SHA-256 footer of everything before it, verified before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from press.errors import PressError
from press.io.files import atomic_write

FORMAT = "press-train-state-1"
FOOTER = b"PRESS-SHA256"   # followed by the 32-byte digest of the payload
REQUIRED = ("format", "step", "stage", "epoch", "batch", "model", "optimizer", "rng", "best_val", "window",
            "window_steps", "config")


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Every global RNG state, as tensors and plain Python values (loadable with weights_only).

    Of the GPUs, only `device`'s generator (the one this rank draws from): a state that listed every
    GPU of the machine could not be restored on a machine with fewer (a 4-GPU run resumed on 1).
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(rng: dict[str, Any], device: torch.device) -> None:
    """Restore what `capture_rng` saved, the GPU generator into `device`'s (states written before
    this format listed every GPU of the saving machine: the first is the one rank 0 drew from)."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"][0], device)
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write the training state atomically (a temporary file, then one rename)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    payload = buffer.getvalue()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(payload + FOOTER + hashlib.sha256(payload).digest())
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def load_state(path: str | Path) -> dict[str, Any]:
    """The training state written by `save_state`; a clear PressError for a missing, truncated,
    corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise PressError(f"no training state at {path}: nothing to resume (was the run started with --out there?)")
    data = path.read_bytes()
    payload, footer, digest = data[:-44], data[-44:-32], data[-32:]
    if len(data) < 44 or footer != FOOTER:
        raise PressError(f"{path}: corrupt or truncated training state, or a file not written by press train "
                         "(no checksum footer); cannot resume")
    if hashlib.sha256(payload).digest() != digest:
        raise PressError(f"{path}: corrupt or truncated training state (checksum mismatch); cannot resume")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as err:
        raise PressError(f"{path}: corrupt or truncated training state, cannot resume ({str(err)[:200]})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PressError(f"{path} is not a PRESS training state (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise PressError(f"{path}: training state lacks {', '.join(missing)}; it is damaged or from another version")
    return state
