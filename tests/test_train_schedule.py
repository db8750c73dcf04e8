"""The learning rate: linear warm-up to the peak, cosine down to peak * final_lr_ratio, per stage."""

import math

import pytest

from press.errors import PressError
from press.model import load_config
from press.training.config import resolve_config
from press.training.schedule import lr_at, stage_at


def test_warmup_then_cosine_in_each_stage():
    cfg = resolve_config(load_config("tiny", ["train.steps=110", "train.warmup_steps=10", "train.lr=1e-3",
                                             "train.final_lr_ratio=0.1", "finetune.steps=20", "finetune.lr=2e-4",
                                             "finetune.warmup_steps=0", "finetune.final_lr_ratio=0.0"]))
    assert lr_at(cfg, 0) == pytest.approx(1e-4) and lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 60) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(cfg, 109) == pytest.approx(1e-4, rel=0.01)
    assert stage_at(cfg, 109) == ("train", 109) and stage_at(cfg, 110) == ("finetune", 0)
    assert lr_at(cfg, 110) == pytest.approx(2e-4)
    ft = [lr_at(cfg, s) for s in range(110, 130)]
    assert all(a > b for a, b in zip(ft, ft[1:])) and ft[-1] < 0.01 * 2e-4


def test_every_shipped_config_has_the_training_keys():
    for name in ("tiny", "small", "press4-s", "press12-m"):
        cfg = resolve_config(load_config(name))
        assert cfg.data.name == "builtin" and cfg.train.val_every >= 1 and cfg.finetune.steps >= 1


def test_amp_off_and_on_read_as_yaml_booleans_are_understood():
    assert resolve_config(load_config("tiny", ["train.amp=off"])).train.amp == "off"
    assert resolve_config(load_config("tiny", ["train.amp=true"])).train.amp == "bf16"


@pytest.mark.parametrize("fast", [True, False])
def test_amp_auto_is_bf16_exactly_on_cpus_with_bf16_instructions(monkeypatch, fast):
    """`auto` follows the CPU's bf16 instructions (AVX-512 bf16 or AMX), eager or compiled; `bf16`
    and `off` do not."""
    import torch

    from press.training import loop

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: fast)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")

    def precision(amp: str, *more: str) -> str:
        return loop.precision_for(resolve_config(load_config("tiny", [f"train.amp={amp}", *more])), cpu)

    assert precision("auto") == precision("auto", "train.compile=true") == ("bf16" if fast else "float32")
    assert precision("bf16") == "bf16" and precision("off") == "float32"
    with loop.autocast_for(loop.precision_for(resolve_config(load_config("tiny")), cpu), cpu)():
        assert torch.is_autocast_enabled("cpu") == fast


def test_bad_training_values_are_refused():
    with pytest.raises(PressError, match="train.amp"):
        resolve_config(load_config("tiny", ["train.amp=fp8"]))
    with pytest.raises(PressError, match="train.val_every"):
        resolve_config(load_config("tiny", ["train.val_every=0"]))
