"""Typed training sections: a misspelt key or a wrong type is refused with the key named, and a YAML
with only a `model:` section trains on the defaults."""

import pytest
from omegaconf import OmegaConf

from press.cli import main
from press.errors import PressError
from press.model import load_config, model_config
from press.training.config import resolve_config

MISSPELT = [("train", "warmup", "warmup_steps", 10), ("finetune", "max_second", "max_seconds", 2.0),
            ("loss", "objectiv", "objective", "gaussian"), ("data", "val_example", "val_examples", 3)]


@pytest.mark.parametrize("section,wrong,right,value", MISSPELT)
def test_misspelt_key_in_an_override_names_the_nearest_key(section, wrong, right, value):
    with pytest.raises(PressError, match=rf"{section}\.{wrong}: did you mean {section}\.{right}\?"):
        resolve_config(load_config("tiny", [f"{section}.{wrong}={value}"]))


@pytest.mark.parametrize("section,wrong,right,value", MISSPELT)
def test_misspelt_key_in_a_yaml_is_refused_by_press_train(section, wrong, right, value, tmp_path, capsys):
    cfg = OmegaConf.to_container(load_config("tiny"))
    cfg[section][wrong] = value
    path = tmp_path / "typo.yaml"
    path.write_text(OmegaConf.to_yaml(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]) == 2
    assert f"did you mean {section}.{right}?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unknown_section_and_wrong_types_are_clear_errors():
    with pytest.raises(PressError, match=r"unknown config key trian: did you mean train\?"):
        resolve_config(load_config("tiny", ["trian.lr=1e-3"]))
    with pytest.raises(PressError, match=r"train\.lr must be a number, got 'fast'"):
        resolve_config(load_config("tiny", ["train.lr=fast"]))
    with pytest.raises(PressError, match=r"finetune\.steps must be an integer, got 2\.5"):
        resolve_config(load_config("tiny", ["finetune.steps=2.5"]))
    with pytest.raises(PressError, match=r"train\.betas must be a list of numbers"):
        resolve_config(load_config("tiny", ["train.betas=0.9"]))
    with pytest.raises(PressError, match=r"loss\.pit must be one of shared, per_exit"):
        resolve_config(load_config("tiny", ["loss.pit=each"]))
    with pytest.raises(PressError, match=r"unknown config key model\.dimm: did you mean model\.dim\?"):
        model_config(load_config("tiny", ["model.dimm=8"]))
    # corpus keywords are free-form (the corpus checks them), and a resolved config resolves to itself
    cfg = resolve_config(load_config("tiny", ["data.options.epoch_size=12"]))
    assert cfg.data.options.epoch_size == 12 and resolve_config(cfg) == cfg


def test_a_yaml_with_only_a_model_section_trains_on_the_defaults(tmp_path, capsys):
    path = tmp_path / "model_only.yaml"
    path.write_text(OmegaConf.to_yaml({"model": load_config("tiny").model}))
    run = tmp_path / "run"
    # two crop steps; the validation set cut to two items only to keep the test short
    assert main(["train", str(path), "--out", str(run), "--device", "cpu", "--no-progress",
                 "train.steps=2", "data.val_examples=2"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.loss.objective == "student_t" and saved.loss.pit == "shared" and saved.loss.sisnr_weight == 0.0
    assert saved.train.lr == 5e-4 and saved.train.warmup_steps == 5000 and saved.train.crop_seconds == 4.0
    assert saved.finetune.steps == 0 and saved.data.name == "builtin" and saved.data.val_max_seconds == 10.0
    assert (run / "best.safetensors").exists()
