"""Where a model runs: one resolver from what a user typed to a torch device.

Every entry point (`press.load`, `press separate/evaluate/demo/train --device`) goes through
`resolve_device`, so "auto" means the same everywhere: the local GPU when torch sees one, else
the CPU.
"""

from __future__ import annotations

import torch

from press.errors import PressError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """'auto' (or None) -> the local GPU if there is one, else the CPU; 'cuda' requires a GPU.

    A torch.device or a string such as 'cuda:1' is taken as it is, after the same GPU check.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PressError(f"device {name!r} asked for, but torch sees no GPU (use --device cpu or auto)")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank)
    if name != "cpu":
        raise PressError(f"unknown device {name!r}; expected {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock reading covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
