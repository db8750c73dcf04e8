"""Model configuration: every architecture size in one typed, YAML-backed record.

A named configuration is a plain YAML file in `press/configs/`. Its `model:` section maps onto
`ModelConfig`; other sections (`loss`, `train`, `data`) belong to the code that reads them. OmegaConf
gives typed validation (a misspelt key is an error, not a silent default) and `key=value` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from press.errors import PressError


@dataclass
class ModelConfig:
    """Every size that defines a PRESS-Net. Defaults are the small CPU configuration."""

    sample_rate: int = 8000
    n_src: int = 2                      # S: speakers, or (speech, noise) for enhancement
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
    scan_chunk: int = 8                 # chunk length of the parallel scan (8 was fastest on CPU)
    # exit heads
    ig_hidden: int = 64                 # width of the inverse-gamma head (GLU -> Snake -> Linear)
    cumulative: bool = False            # alpha_i = sum_k alpha~_k, beta_i = 1 / sum_k beta~_k
    name: str = "custom"

    def __post_init__(self) -> None:
        checks = [
            (self.n_src >= 1, "n_src must be >= 1"),
            (self.block % self.patch == 0, "block must be a multiple of patch"),
            (self.n_exits >= 1 and self.n_dec_blocks % self.n_exits == 0,
             "n_dec_blocks must be a positive multiple of n_exits"),
            (set(self.enc_pattern) <= {"R", "C"} and self.enc_pattern != "",
             "enc_pattern may only use R and C"),
            (set(self.dec_pattern) <= {"R", "C", "A"} and self.dec_pattern != "",
             "dec_pattern may only use R, C and A"),
            (self.dim % self.attn_heads == 0, "dim must be divisible by attn_heads"),
            (self.conv_kernel % 2 == 1, "conv_kernel must be odd"),
        ]
        for ok, msg in checks:
            if not ok:
                raise PressError(f"invalid model config: {msg}")

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
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    if "model" not in cfg:
        raise PressError(f"config {name_or_path} has no 'model' section")
    return cfg


def model_config(cfg: DictConfig | dict[str, Any]) -> ModelConfig:
    """The typed model section of a full configuration (unknown keys are an error)."""
    section = cfg["model"] if "model" in cfg else cfg
    schema = OmegaConf.structured(ModelConfig)
    try:
        merged = OmegaConf.merge(schema, section)
    except Exception as err:  # omegaconf raises several validation error types
        raise PressError(f"invalid model config: {err}") from err
    return ModelConfig(**OmegaConf.to_container(merged))  # type: ignore[arg-type]
