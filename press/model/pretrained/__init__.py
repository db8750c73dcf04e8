"""Shipped models by name, and one resolver from a name or a path to a loaded model.

A shipped model is a checkpoint in `press/model/pretrained/NAME.safetensors` (weights, config and
any recalibration in one file) with a card `NAME.md` beside it: how it was trained, with which
command, and how it scores.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from omegaconf import DictConfig

from press.errors import PressError
from press.model import PressNet
from press.model.checkpoint import load_model


def shipped_names() -> list[str]:
    return sorted(p.name[: -len(".safetensors")] for p in resources.files("press.model.pretrained").iterdir()
                  if p.name.endswith(".safetensors"))


def resolve(spec: str | Path) -> Path:
    """The checkpoint file behind a shipped model's name or a path."""
    path = Path(spec).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise PressError(f"checkpoint not found: {path}")
        return path
    if str(spec) in shipped_names():
        return Path(str(resources.files("press.model.pretrained").joinpath(f"{spec}.safetensors")))
    names = ", ".join(shipped_names()) or "none"
    raise PressError(f"unknown model {str(spec)!r}: give a shipped model's name ({names}) or the path "
                     "of a .safetensors checkpoint written by `press train`")


def load(spec: str | Path, device: str | torch.device = "cpu") -> tuple[PressNet, DictConfig, dict]:
    """(model in eval mode, its full config, extras) for a shipped name or a checkpoint path."""
    return load_model(resolve(spec), device=device)
