"""The training sections of a configuration, typed: `loss`, `train`, `finetune` and `data`.

They sit beside `press.model.ModelConfig` in one `RunConfig`. Every key has its default here and
nowhere else, so a YAML needs only a `model:` section and what it changes (docs/training.md), and
the loop reads `cfg.train.lr` rather than `cfg.train.get("lr", ...)` with a default of its own. A
misspelt key (`train.warmup=0`) would otherwise be a silent default and a wasted run: it is refused,
from a YAML as from a `key=value` override, with the nearest valid key named
(`press.model.config.typed_merge`). Only training reads these sections (the `data` section names the
corpus to train and validate on; evaluation takes its data on the command line), so their schema
lives here, above the model in the layers.
"""

from __future__ import annotations

import copy
import math
import typing
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from press.data.augment import Recipe
from press.errors import PressError
from press.model.config import ModelConfig, merge_overrides, typed_merge
from press.prob.likelihood import Objective, PitMode

AMP_MODES = ("auto", "bf16", "off")
FINETUNE_TRAINABLE = ("all", "heads")


def _require(checks: list[tuple[bool, str]]) -> None:
    for ok, msg in checks:
        if not ok:
            raise PressError(msg)


@dataclass
class LossConfig:
    """`press.prob.likelihood.PressLoss`, through `press.training.loss`. Defaults are the paper's loss, as
    every shipped config uses."""

    objective: str = "student_t"        # student_t | gaussian | sisnr
    pit: str = "shared"                 # shared: one permutation for all exits | per_exit (ablation) | fixed (enhancement)
    sisnr_weight: float = 0.0           # [ours] + weight x (-SI-SNR dB) per sample (`default` uses 0.2)

    def __post_init__(self) -> None:
        _require([
            (self.objective in typing.get_args(Objective),
             f"loss.objective must be one of {', '.join(typing.get_args(Objective))}, got {self.objective!r}"),
            (self.pit in typing.get_args(PitMode),
             f"loss.pit must be one of {', '.join(typing.get_args(PitMode))}, got {self.pit!r}"),
            (self.sisnr_weight >= 0, f"loss.sisnr_weight must be >= 0, got {self.sisnr_weight}"),
            (self.sisnr_weight == 0 or self.objective != "sisnr",
             "loss.sisnr_weight adds an SI-SNR term to a likelihood objective; it must be 0 with objective sisnr"),
        ])


@dataclass
class TrainConfig:
    """The crop stage and everything about the run as a whole. Defaults are the paper's recipe
    (4 s crops, batch 1, AdamW 5e-4, 5000 warm-up steps, cosine, clip 1, up to 4 M steps):
    a YAML that leaves a key out gets what the paper did, not a guess of ours."""

    seed: int = 0                       # model initialisation, crops and data order
    crop_seconds: float = 4.0
    batch_size: int = 1                 # global: the same whatever the number of ranks
    lr: float = 5e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    warmup_steps: int = 5000
    final_lr_ratio: float = 0.0         # the cosine ends at lr * final_lr_ratio
    steps: int = 4_000_000              # crop-stage steps (0: fine-tune only); fine-tuning steps come after them
    grad_clip: float = 1.0
    log_every: int = 10
    val_every: int = 1000
    ckpt_every: int = 1000
    num_workers: int = 0                # DataLoader workers per rank
    amp: str = "auto"                   # auto: bf16 autocast where bf16 is fast (GPUs, CPUs with AVX-512 bf16 / AMX) | bf16 | off
    compile: bool = False               # torch.compile the network
    checkpoint_blocks: bool = False     # recompute each block's forward in backward: far less memory, ~1/3 more time
    tensorboard: bool = True
    init: Optional[str] = None          # weights to start from: a shipped name or .safetensors of the same architecture
    max_minutes: Optional[float] = None  # wall-time cap on the crop stage; fine-tuning follows it (docs/training.md)
    snapshots: bool = False             # also keep the weights of every validation: snapshots/step-NNNNNN.safetensors

    def __post_init__(self) -> None:
        _require([(self.amp in AMP_MODES, f"train.amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")]
                 + [(getattr(self, k) >= 1, f"train.{k} must be >= 1, got {getattr(self, k)}")
                    for k in ("batch_size", "val_every", "ckpt_every", "log_every")]
                 + [(getattr(self, k) >= 0, f"train.{k} must be >= 0, got {getattr(self, k)}")
                    for k in ("steps", "lr", "weight_decay", "warmup_steps", "final_lr_ratio", "num_workers")]
                 + [(self.crop_seconds > 0, f"train.crop_seconds must be > 0, got {self.crop_seconds}"),
                    (self.grad_clip > 0, f"train.grad_clip must be > 0, got {self.grad_clip}"),
                    (self.max_minutes is None or self.max_minutes > 0,
                     f"train.max_minutes must be > 0 (or null), got {self.max_minutes}"),
                    (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                     f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")])


@dataclass
class FinetuneConfig:
    """The full-length stage after the crops (the paper's calibration fix). Off by default (0 steps): the paper gives no
    schedule for it, so a YAML asks for it explicitly; the shipped configs all do."""

    steps: int = 0
    lr: float = 1e-4
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0
    max_seconds: float = 20.0           # utterances longer than this are cut to a random span of it
    batch_size: int = 4
    max_batch_seconds: float = 40.0     # cap on padded audio per batch (items x longest item)
    # [ours] which parameters the stage trains: "all" (the paper), or "heads": only the inverse-gamma
    # heads, so that calibration is fitted to full-length audio while the separation stays exactly as it was
    trainable: str = "all"

    def __post_init__(self) -> None:
        _require([(self.trainable in FINETUNE_TRAINABLE,
                   f"finetune.trainable must be one of {', '.join(FINETUNE_TRAINABLE)}, got {self.trainable!r}")]
                 + [(getattr(self, k) >= 0, f"finetune.{k} must be >= 0, got {getattr(self, k)}")
                    for k in ("steps", "lr", "warmup_steps", "final_lr_ratio")]
                 + [(self.batch_size >= 1, f"finetune.batch_size must be >= 1, got {self.batch_size}")]
                 + [(getattr(self, k) > 0, f"finetune.{k} must be > 0, got {getattr(self, k)}")
                    for k in ("max_seconds", "max_batch_seconds")])


@dataclass
class AugmentConfig(Recipe):
    """`data.augment`: rooms and channels on the training items (`press.data.augment.Recipe`: each
    effect's probability and ranges), keyed by (train.seed, epoch, index). Off by default until an
    equal-budget ablation shows it helps (docs/data.md); validation never sees it."""

    enabled: bool = False


@dataclass
class DataConfig:
    """The corpus to train on and the fixed validation set.

    Validation costs at most `val_examples x val_max_seconds` of audio through every exit, each time
    it runs (every `train.val_every` steps and at the end). The defaults, 100 items of at most 10 s,
    are the `small`/`default` configs' set: 387 s of built-in audio, 2.5-3 minutes of a shared
    2-core CPU for those models, a few per cent of the training between two validations. The
    paper-size configs validate on 500 items of up to 20 s, a GPU's work (hours on a CPU; cut it
    with `data.val_examples=...` for a CPU smoke run). The set is the first `val_examples` items of
    the corpus's validation split, the same at every validation and after a resume, so that the best
    checkpoint is chosen on comparable numbers; it is part of the `data` section, which a resume may
    not change. `val_options` override `options` for validation only: `{subset: real}` chooses the
    best checkpoint on the built-in corpus's recorded speech, the voices a user brings, not on TTS.
    `skip_bad_files` leaves out a corpus file that cannot be read (truncated, corrupt, missing) with a
    warning naming it and a note in run.json, instead of stopping the run with an error naming it; a
    resume may turn it on (it changes nothing while every file reads)."""

    name: str = "builtin"               # press.data.NAMES
    root: Optional[str] = None          # corpus folder (not needed for builtin)
    mode: str = "min"
    options: Optional[Dict[str, Any]] = field(default_factory=dict)  # corpus keywords (press.data.get_dataset)
    val_options: Optional[Dict[str, Any]] = field(default_factory=dict)  # overrides of `options` for validation
    val_examples: int = 100
    val_max_seconds: float = 10.0
    val_batch_size: int = 4
    val_max_batch_seconds: float = 40.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skip_bad_files: bool = False

    def __post_init__(self) -> None:
        _require([(getattr(self, k) >= 1, f"data.{k} must be >= 1, got {getattr(self, k)}")
                  for k in ("val_examples", "val_batch_size")]
                 + [(getattr(self, k) > 0, f"data.{k} must be > 0, got {getattr(self, k)}")
                    for k in ("val_max_seconds", "val_max_batch_seconds")])


@dataclass
class RunConfig:
    """A whole training configuration: the model and how to train it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    data: DataConfig = field(default_factory=DataConfig)


def resolve_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """The config with every section typed and every default filled in, checked key by key.

    It stays a DictConfig (typed by `RunConfig`): the loop reads it by key, and it is written as
    YAML into the run folder and every checkpoint. Resolving a resolved config changes nothing.
    """
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else copy.deepcopy(cfg)
    if "model" not in plain:
        raise PressError("the config has no 'model' section")
    train = plain.get("train")
    if isinstance(train, dict) and isinstance(train.get("amp"), bool):
        # YAML 1.1 reads `off`/`on` (and false/true) as booleans
        train["amp"] = "bf16" if train["amp"] else "off"
    _refuse_mappings_for_lists(RunConfig, plain, "")
    merged = typed_merge(RunConfig, plain)
    try:
        OmegaConf.to_object(merged)  # resolves interpolations and runs every section's __post_init__ checks
    except OmegaConfBaseException as err:   # an interpolation (`${...}`) that does not resolve or fit its key
        keys = err.full_key or ", ".join(f"{k}={v}" for k, v in _interpolations(plain))
        raise PressError(f"config value {keys} does not resolve: {str(err).splitlines()[0]}") from None
    _refuse_non_finite(OmegaConf.to_container(merged, resolve=True), "")
    if int(merged.train.steps) + int(merged.finetune.steps) < 1:
        raise PressError("train.steps and finetune.steps are both 0: there is nothing to train")
    return merged


def _refuse_non_finite(values: Any, where: str) -> None:
    """No setting means anything as NaN or infinity, and most would slip past a range check
    (`nan >= 0` is false, but nothing checks `model.conv_expand`) into a NaN model, or an
    OverflowError where a duration becomes samples; refused by name, corpus options included."""
    if isinstance(values, dict):
        for key, value in values.items():
            _refuse_non_finite(value, f"{where}{key}.")
    elif isinstance(values, list):
        for i, value in enumerate(values):
            _refuse_non_finite(value, f"{where}{i}.")
    elif isinstance(values, float) and not math.isfinite(values):
        raise PressError(f"{where.rstrip('.')} must be a finite number, got {values}")


def _interpolations(values: Any, where: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) of every `${...}` value: the suspects when OmegaConf names no key."""
    if isinstance(values, dict):
        return [found for k, v in values.items() for found in _interpolations(v, f"{where}{k}.")]
    if isinstance(values, list):
        return [found for i, v in enumerate(values) for found in _interpolations(v, f"{where}{i}.")]
    return [(where.rstrip("."), values)] if isinstance(values, str) and "${" in values else []


def _refuse_mappings_for_lists(schema: type, values: Any, where: str) -> None:
    """A mapping where the schema holds a list (`train.betas={a: 1}`) is refused by name: OmegaConf's
    merge fails on it with a TypeError that names no key."""
    if not isinstance(values, dict):
        return
    hints = typing.get_type_hints(schema)
    for key, value in values.items():
        tp, full = hints.get(key), f"{where}{key}"
        kinds = typing.get_args(tp) if typing.get_origin(tp) is typing.Union else (tp,)   # Optional[List[...]]
        if any(typing.get_origin(t) in (list, tuple) for t in kinds) and isinstance(value, dict):
            raise PressError(f"{full} must be a list, got {value!r}")
        if is_dataclass(tp):
            _refuse_mappings_for_lists(tp, value, full + ".")


def resumed_config(run_dir: Path, named: DictConfig, overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """The config a resumed run continues with, and what this resume changes or ignores, as lines.

    A run continues under its own saved config (`RUN_DIR/config.yaml`), not the YAML named on the
    command line: an override given when it started (`train.steps=3`, `data.root=...`) holds without
    being repeated, and settings of the named YAML that differ from the run's are reported, not
    applied. Overrides given now apply on top (more steps, another learning rate for what is left);
    one that changes the model, loss or data is refused by name when the run directory is prepared.
    """
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise PressError(f"nothing to resume in {run_dir} (no config.yaml)")
    # merged before typing, as `load_config` does: YAML reads `train.amp=off` as a boolean
    raw = OmegaConf.load(path)
    saved, cfg = resolve_config(raw), resolve_config(merge_overrides(raw, list(overrides)))
    given = set(dict.fromkeys(o.split("=", 1)[0] for o in overrides))
    notes = sorted(f"{key}: {OmegaConf.select(saved, key)} -> {OmegaConf.select(cfg, key)}" for key in given
                   if OmegaConf.select(saved, key) != OmegaConf.select(cfg, key))
    named = resolve_config(named)
    ignored = [key for key in _leaves(saved) if key not in given
               and not any(key.startswith(g + ".") for g in given)
               and OmegaConf.select(saved, key) != OmegaConf.select(named, key)]
    if ignored:
        notes.append(f"kept from the run ({path}): {', '.join(ignored)}")
    return cfg, notes


def _leaves(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of every value in `cfg` that is not itself a mapping."""
    keys = []
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        keys += _leaves(value, name + ".") if isinstance(value, DictConfig) else [name]
    return keys
