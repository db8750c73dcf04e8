"""Typed training sections: a misspelt key or a wrong type is refused with the key named, a YAML with
only a `model:` section trains on the defaults, and validation runs on a fixed, capped set."""

import contextlib

import pytest
import torch
from omegaconf import OmegaConf
from tiny_training import tiny_run_config

from press.cli import main
from press.errors import PressError
from press.model import PressNet, load_config, model_config
from press.training.config import resolve_config
from press.training.data import val_loader
from press.training.distributed import Dist
from press.training.loop import evaluate
from press.training.loss import TrainingLoss

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
    with pytest.raises(PressError, match=r"finetune\.trainable must be one of all, heads, got 'trunk'"):
        resolve_config(load_config("tiny", ["finetune.trainable=trunk"]))
    with pytest.raises(PressError, match=r"train\.steps and finetune\.steps are both 0"):
        resolve_config(load_config("tiny", ["train.steps=0", "finetune.steps=0"]))
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


def test_the_default_validation_set_is_capped():
    cfg = resolve_config({"model": OmegaConf.to_container(load_config("tiny").model)})
    assert (cfg.data.val_examples, cfg.data.val_max_seconds) == (100, 10.0)
    loader = val_loader(cfg, rank=0, world=1)
    batches = list(loader.batch_sampler)
    assert sum(len(b) for b in batches) == 100
    longest = max(loader.dataset[i]["mixture"].shape[-1] for b in batches for i in b)
    assert longest <= 10.0 * cfg.model.sample_rate


def test_validation_covers_exactly_the_capped_items_the_same_every_time(capsys):
    cfg = resolve_config(tiny_run_config("data.val_examples=5", "data.val_max_seconds=0.75"))
    torch.manual_seed(0)
    model = PressNet(model_config(cfg))
    loss = TrainingLoss(int(cfg.model.block), str(cfg.loss.objective), str(cfg.loss.pit))
    dist = Dist(rank=0, world=1, device=torch.device("cpu"))
    first = evaluate(model, val_loader(cfg, 0, 1), loss, dist, contextlib.nullcontext, progress=True)
    assert first.items == 5
    assert 0 < first.seconds <= 5 * 0.75
    assert "validation" in capsys.readouterr().err   # the progress bar
    again = evaluate(model, val_loader(cfg, 0, 1), loss, dist, contextlib.nullcontext)
    assert again == first
    assert capsys.readouterr().err == ""


def test_val_options_choose_the_validation_voices_and_leave_training_alone():
    """`data.val_options={subset: real}`: the best checkpoint is chosen on recorded speech only, while
    training still draws from every voice."""
    from press.data.builtin import load_manifest
    from press.training.data import build_dataset

    cfg = resolve_config(load_config("tiny", ["data.val_options={subset: real}"]))
    kinds = {r["speaker"]: r["kind"] for r in load_manifest(None)}
    val, train = build_dataset(cfg, "val"), build_dataset(cfg, "train")
    assert {kinds[s] for s in val._speaker_names} == {"real"}
    assert {kinds[s] for s in train._speaker_names} >= {"real", "tts"}
    plain = build_dataset(resolve_config(load_config("tiny")), "val")
    assert {kinds[s] for s in plain._speaker_names} >= {"real", "tts"}
