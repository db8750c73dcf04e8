"""Model configuration: every architecture size in one typed, YAML-backed record.

A named configuration is a plain YAML file in `press/configs/`. Its `model:` section maps onto
`ModelConfig`; other sections (`loss`, `train`, `finetune`, `data`) belong to the code that reads them
and are typed there (`press.training.config`). OmegaConf gives `key=value` overrides; `typed_merge`
checks every key and type against a dataclass (a misspelt key is an error that names the nearest
valid key, not a silent default).
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from press.errors import PressError


@dataclass
class ModelConfig:
    """Every size that defines a PRESS-Net. Defaults are the small CPU configuration."""

    sample_rate: int = 8000
    n_src: int = 2                      # S: speakers, or (speech, noise) for enhancement
    # names of the outputs when their order is fixed (enhancement: [speech, noise]; trained with loss.pit
    # fixed); None: speakers in no particular order, aligned across segments by permutation
    sources: Optional[List[str]] = None
    block: int = 2000                   # likelihood block length B in samples (250 ms at 8 kHz)
    # encoder head: wide conv on the waveform -> patch downsampling by P -> ShiftNorm -> Linear
    enc_channels: int = 64              # C: channels of the waveform conv (also the mask/decoder basis)
    enc_kernel: int = 16                # conv kernel in samples
    patch: int = 4                      # P: samples per frame
    dim: int = 64                       # D: width of the residual stream
    # separator
    n_enc_blocks: int = 8               # blocks on the single mixture stream
    n_dec_blocks: int = 12              # blocks after the speaker split (shared across speakers)
    n_exits: int = 4                    # evenly spaced along the decoder stack
    enc_pattern: str = "RRC"            # block types, cycled: R linear RNN, C long conv
    dec_pattern: str = "RARRCR"         # R linear RNN, C long conv, A cross-speaker attention
    rnn_expand: float = 4.0             # hidden width of the linear RNN = rnn_expand * D
    conv_expand: float = 2.0            # channels of the long-conv block = conv_expand * D
    conv_kernel: int = 65               # long depthwise conv kernel in frames
    ffn_expand: float = 4.0             # hidden width of the SwiGLU channel MLP = ffn_expand * D
    enc_rnn_expand: Optional[float] = None  # the same for the encoder blocks (None: as decoder)
    enc_ffn_expand: Optional[float] = None
    attn_heads: int = 4
    layer_scale_init: float = 1e-5
    scan_chunk: int = 8                 # chunk length of the scan (8-32 alike on CPU: benchmarks/scan_speed.py)
    # exit heads
    ig_hidden: int = 64                 # width of the inverse-gamma head (GLU -> Snake -> Linear)
    cumulative: bool = False            # alpha_i = sum_k alpha~_k, beta_i = 1 / sum_k beta~_k
    # no output depends on input more than patch - 1 samples ahead (PressNet.lookahead), so the model
    # can run on a live stream: RNNs forward in time, causal convs and filterbanks, a running level
    causal: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        checks = [
            (self.n_src >= 1, "n_src must be >= 1"),
            (self.patch >= 1 and self.block % self.patch == 0, "block must be a positive multiple of patch"),
            (self.n_exits >= 1 and self.n_dec_blocks % self.n_exits == 0,
             "n_dec_blocks must be a positive multiple of n_exits"),
            (set(self.enc_pattern) <= {"R", "C"} and self.enc_pattern != "",
             "enc_pattern may only use R and C"),
            (set(self.dec_pattern) <= {"R", "C", "A"} and self.dec_pattern != "",
             "dec_pattern may only use R, C and A"),
            (self.attn_heads >= 1 and self.dim % self.attn_heads == 0,
             "attn_heads must be >= 1 and divide dim"),
            (self.conv_kernel % 2 == 1, "conv_kernel must be odd"),
            (isinstance(self.causal, bool), f"causal must be true or false, got {self.causal!r}"),
            (self.sources is None or (len(self.sources) == self.n_src and len(set(self.sources)) == self.n_src
                                      and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in self.sources)),
             f"sources must name each of the n_src={self.n_src} outputs once, in lower case, got {self.sources}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise PressError(f"invalid model config: {msg}")

    @property
    def source_names(self) -> list[str]:
        """What each output is: the configured names, else s1, s2, ... (speakers in no fixed order)."""
        return list(self.sources) if self.sources is not None else [f"s{j + 1}" for j in range(self.n_src)]

    @property
    def blocks_per_exit(self) -> int:
        return self.n_dec_blocks // self.n_exits

    @property
    def frames_per_block(self) -> int:
        return self.block // self.patch


def config_names() -> list[str]:
    """Names of the configurations shipped in the package."""
    return sorted(p.name[:-5] for p in resources.files("press.configs").iterdir()
                  if p.name.endswith(".yaml"))


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """Load a full configuration (all sections) by shipped name or YAML path, with overrides.

    Overrides are OmegaConf dot-list strings such as `model.dim=96` or `train.lr=1e-3`.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PressError(f"config file not found: {path}")
        cfg = OmegaConf.load(path)
    elif str(name_or_path) in config_names():
        text = resources.files("press.configs").joinpath(f"{name_or_path}.yaml").read_text()
        cfg = OmegaConf.create(text)
    else:
        raise PressError(f"unknown config {str(name_or_path)!r}; shipped configs: "
                         f"{', '.join(config_names())}, or give a path to a .yaml file")
    if overrides:
        cfg = merge_overrides(cfg, overrides)
    if "model" not in cfg:
        raise PressError(f"config {name_or_path} has no 'model' section")
    return cfg


def merge_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """`cfg` with `key=value` overrides merged in; an override YAML or OmegaConf cannot take (a parse
    error, a key under a list or an interpolation, a mapping onto a list) is a PressError naming it."""
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except (yaml.YAMLError, OmegaConfBaseException, TypeError, ValueError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PressError(f"cannot apply the overrides {' '.join(overrides)}: {first}") from None


def model_config(cfg: DictConfig | dict[str, Any]) -> ModelConfig:
    """The typed model section of a full configuration (unknown keys are an error)."""
    section = cfg["model"] if "model" in cfg else cfg
    return ModelConfig(**OmegaConf.to_container(typed_merge(ModelConfig, section, "model")))  # type: ignore[arg-type]


def typed_merge(schema: type, values: Any, where: str = "") -> DictConfig:
    """`values` (a mapping, or None for empty) merged onto the defaults of the dataclass `schema`.

    Every key is checked against the schema's fields, sections inside sections too: a misspelt key
    (`train.warmup` for `train.warmup_steps`) would otherwise be a silent default and a wasted run,
    so it is refused with the nearest valid key named. A value of the wrong type is refused with the
    type expected. `where` is the dotted path of `values` in the full config, for the messages.
    The result is a typed DictConfig (assigning a wrong type or a new key to it fails too); the
    dataclasses' own checks (`__post_init__`) run when it is turned into objects (`OmegaConf.to_object`).
    """
    plain = _plain(values, where)
    _check_keys(schema, plain, where)
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), plain)
    except OmegaConfBaseException as err:  # a value that does not convert to its field's type
        key = str(err.full_key or "")
        full = f"{where}.{key}" if where and key else (key or where)
        expected = _describe(_field_type(schema, key.split("."))) if key else "another type"
        got = _lookup(plain, key.split(".")) if key else values
        raise PressError(f"{full} must be {expected}, got {got!r}") from err


def _plain(values: Any, where: str) -> dict:
    if values is None:
        return {}
    if isinstance(values, DictConfig):
        return OmegaConf.to_container(values, resolve=False)  # type: ignore[return-value]
    if isinstance(values, dict):
        return dict(values)
    raise PressError(f"{where or 'the config'} must be a section of key: value lines, got {values!r}")


def _check_keys(schema: type, values: dict, where: str) -> None:
    """Refuse unknown keys, naming the nearest valid one; recurse into sub-sections (an empty one,
    `train:` with nothing under it, reads as None and means the defaults)."""
    hints = typing.get_type_hints(schema)
    names = [f.name for f in fields(schema)]
    for key in list(values):
        full = f"{where}.{key}" if where else str(key)
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            if near:
                hint = f"did you mean {where + '.' if where else ''}{near[0]}?"
            else:
                hint = f"the keys of {where or 'a config'} are {', '.join(names)}"
            raise PressError(f"unknown config key {full}: {hint}")
        if is_dataclass(hints[key]):
            values[key] = _plain(values[key], full)
            _check_keys(hints[key], values[key], full)


def _field_type(schema: Any, path: list[str]) -> Any:
    for part in path:
        if not (isinstance(schema, type) and is_dataclass(schema)):
            return Any
        schema = typing.get_type_hints(schema).get(part, Any)
    return schema


def _lookup(values: Any, path: list[str]) -> Any:
    for part in path:
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _describe(tp: Any) -> str:
    """A field's type in words, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_describe(inner[0])} or null" if len(inner) == 1 else "one of several types"
    if origin in (list, tuple):
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(args[0], 'values')}" if args else "a list"
    if origin is dict or (isinstance(tp, type) and is_dataclass(tp)):
        return "a section of key: value lines"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, "another type")
