"""Model checkpoints: one safetensors file holding the weights and, as metadata, the config.

safetensors stores plain tensors and a string-to-string header, so loading executes no code,
whatever the file holds. The header carries the full YAML config (so the file alone rebuilds
its model), the package version, and any JSON-able extras (e.g. a post-hoc recalibration).
Writes are atomic: a temporary file in the same folder, then os.replace, so a crash mid-write
never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from press.errors import PressError
from press.io.files import atomic_write
from press.model import PressNet, model_config
from press.version import __version__

FORMAT = "press-checkpoint-1"
# How a pickle starts: protocol 2 and later open with PROTO (0x80) and the protocol number; torch.save
# writes a zip archive (holding a pickle) since torch 1.6.
PICKLE_STARTS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


def save_model(path: str | Path, model: PressNet, cfg: DictConfig, extra: dict[str, Any] | None = None) -> None:
    """Write weights + config (+ JSON-able extras) to one safetensors file, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "press_version": __version__, "config": OmegaConf.to_yaml(cfg),
            "extra": json.dumps(extra or {})}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        if is_pickle(path):
            raise PressError(f"{path} is a pickle (a torch.save file, or one renamed), which PRESS does not "
                             "load: unpickling runs whatever code the file holds. PRESS checkpoints are "
                             ".safetensors files written by `press train`") from None
        raise PressError(f"{path} is not a readable safetensors checkpoint ({err})") from err
    if meta.get("format") != FORMAT:
        raise PressError(f"{path} is a safetensors file but not a PRESS checkpoint "
                         f"(no '{FORMAT}' header); was it written by `press train`?")
    return meta


def is_pickle(path: str | Path) -> bool:
    """Whether the file starts as a pickle or a torch.save archive does (read, never unpickled)."""
    with open(path, "rb") as f:
        return f.read(4).startswith(PICKLE_STARTS)


def stored_config(path: Path, meta: dict[str, str]) -> tuple[DictConfig, dict]:
    """The full config and the extras a PRESS header holds. The header is text from a file, so each
    is checked to parse into what the loader needs (a mapping with a model section, a JSON object)."""
    if "config" not in meta:
        raise PressError(f"{path}: the PRESS checkpoint header has no config; the file is damaged")
    try:
        cfg = OmegaConf.create(meta["config"])
    except (yaml.YAMLError, OmegaConfBaseException, ValueError) as err:
        raise PressError(f"{path}: the stored config is not valid YAML ({str(err)[:200]})") from None
    if not isinstance(cfg, DictConfig) or not isinstance(cfg.get("model"), DictConfig):
        raise PressError(f"{path}: the stored config has no model section; the file is damaged")
    try:
        extra = json.loads(meta.get("extra", "{}"))
    except json.JSONDecodeError as err:
        raise PressError(f"{path}: the stored extras are not JSON ({err})") from None
    if not isinstance(extra, dict):
        raise PressError(f"{path}: the stored extras are not a JSON object")
    return cfg, extra


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[PressNet, DictConfig, dict]:
    """(model in eval mode, full config, extras) from a checkpoint written by `save_model`."""
    path = Path(path)
    if not path.is_file():
        raise PressError(f"checkpoint not found: {path}")
    cfg, extra = stored_config(path, read_metadata(path))
    try:
        model = PressNet(model_config(cfg))
    except RuntimeError as err:   # sizes that pass the config's checks but build no network (dim < 0)
        raise PressError(f"{path}: the stored model config builds no network ({str(err)[:200]})") from None
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise PressError(f"{path}: corrupt or truncated checkpoint ({err})") from err
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        raise PressError(f"{path}: weights do not match its config ({str(err)[:300]})") from err
    return model.to(device).eval(), cfg, extra


def average_checkpoints(paths: list[str | Path]) -> tuple[PressNet, DictConfig, dict]:
    """(model, config, extras) whose weights are the mean of the checkpoints' weights.

    Averaging the checkpoints of one run along its trajectory (ESPnet's `average_checkpoints`,
    stochastic weight averaging) is meant to cancel the step-to-step noise of a small-batch run,
    which a model chosen from single checkpoints on a small validation set follows (whether it
    helps is measured per run: docs/experiments.md). The
    checkpoints must share the model's configuration; the first one's config and extras are kept
    (a stored recalibration fitted to one checkpoint does not carry over to the mean, so it is
    dropped).
    """
    if not paths:
        raise PressError("no checkpoints to average")
    model, cfg, extra = load_model(paths[0])
    first = OmegaConf.to_container(cfg.model, resolve=True)
    total = {k: v.double() for k, v in model.state_dict().items() if v.is_floating_point()}
    for path in paths[1:]:
        other, other_cfg, _ = load_model(path)
        if OmegaConf.to_container(other_cfg.model, resolve=True) != first:
            raise PressError(f"{path}: its model config differs from {paths[0]}'s; only one model's "
                             "checkpoints can be averaged")
        for k, v in other.state_dict().items():
            if k in total:
                total[k] += v.double()
    state = model.state_dict()
    model.load_state_dict({k: (total[k] / len(paths)).to(v.dtype) if k in total else v for k, v in state.items()})
    extra = {k: v for k, v in extra.items() if k != "recalibration"}
    return model.eval(), cfg, extra
