"""`press train`: overrides anywhere on the line, records in RUN_DIR, paths printed, clear refusals."""

import json

import torch
from safetensors.torch import load_file
from tiny_training import OVERRIDES

from press.cli import main

SHORT = [*OVERRIDES, "train.steps=3", "finetune.steps=1", "train.val_every=2", "train.tensorboard=true"]


def test_press_train_writes_records_and_says_where(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tiny", "--out", str(run), "--device", "cpu", "--no-progress", *SHORT]) == 0
    out = capsys.readouterr().out
    assert "finished at step 4" in out
    for name in ("last.safetensors", "best.safetensors", "last.state.pt", "log.csv", "curves.png", "config.yaml",
                 "run.json", "tensorboard"):
        assert str(run / name) in out and (run / name).exists(), name
    assert any((run / "tensorboard").iterdir())
    info = json.loads((run / "run.json").read_text())
    assert info["press_version"] and info["git_commit"] and info["sessions"][0]["from_step"] == 0
    assert "sample_rate: 2000" in (run / "config.yaml").read_text()
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert header.startswith("step,stage,crop_minutes,lr,loss") and rows[-1].startswith("4,finetune")
    # crop_minutes: the crop stage's wall time, growing through it and frozen once fine-tuning starts
    minutes = [(r.split(",")[1], float(r.split(",")[2])) for r in rows]
    crop = [m for stage, m in minutes if stage == "train"]
    assert crop == sorted(crop) and crop[0] > 0
    tuned = {m for stage, m in minutes if stage == "finetune"}
    assert len(tuned) == 1 and tuned.pop() >= crop[-1]
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"

    # continuing for more steps with --resume; a second run into the same folder is refused
    assert main(["train", "tiny", "--out", str(run), "--resume", "--device", "cpu", "--no-progress", *SHORT,
                 "finetune.steps=2"]) == 0
    assert "finished at step 5" in capsys.readouterr().out
    assert json.loads((run / "run.json").read_text())["sessions"][1]["from_step"] == 4
    assert main(["train", "tiny", "--out", str(run), "--device", "cpu", *SHORT]) == 2
    assert "--resume" in capsys.readouterr().err


def test_snapshots_keep_every_validated_model_for_averaging(tmp_path, capsys):
    from press.model.checkpoint import load_model

    run = tmp_path / "run"
    assert main(["train", "tiny", "--out", str(run), "--device", "cpu", "--no-progress", *SHORT,
                 "train.snapshots=true"]) == 0
    snaps = sorted((run / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == ["step-000002.safetensors", "step-000004.safetensors"]
    first, _, extra = load_model(snaps[0])
    assert extra["step"] == 2 and len(extra["val_si_snri"]) == first.n_exits
    last = load_model(run / "last.safetensors")[0]
    assert all(torch.equal(a, b) for a, b in zip(load_model(snaps[1])[0].state_dict().values(),
                                                   last.state_dict().values()))
    assert main(["average", str(run / "mean.safetensors"), *map(str, snaps)]) == 0
    assert (run / "mean.safetensors").exists()


def test_malformed_override_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "tiny", "--out", str(tmp_path / "r"), "train.lr"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_train_init_starts_from_an_earlier_model(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "tiny", "--out", str(first), "--device", "cpu", "--no-progress", *SHORT]) == 0
    source = load_file(str(first / "best.safetensors"))
    # zero steps of crops and one of fine-tuning at lr 0: the continued model is the source, unchanged
    assert main(["train", "tiny", "--out", str(second), "--device", "cpu", "--no-progress", *SHORT,
                 f"train.init={first / 'best.safetensors'}", "train.steps=1", "train.lr=0", "finetune.lr=0",
                 "finetune.steps=0"]) == 0
    continued = load_file(str(second / "last.safetensors"))
    assert continued.keys() == source.keys()
    assert all(torch.equal(continued[k], source[k]) for k in source)
    capsys.readouterr()
    # a model of another architecture cannot be continued
    assert main(["train", "tiny", "--out", str(tmp_path / "third"), "--device", "cpu", "--no-progress", *SHORT,
                 f"train.init={first / 'best.safetensors'}", "model.dim=24"]) == 2
    assert "architecture" in capsys.readouterr().err
    # the same tensors run causally with another likelihood block: a causal model may start from them
    assert main(["train", "tiny", "--out", str(tmp_path / "causal"), "--device", "cpu", "--no-progress", *SHORT,
                 f"train.init={first / 'best.safetensors'}", "model.causal=true", "model.block=200",
                 "train.steps=1", "train.lr=0", "finetune.lr=0", "finetune.steps=0"]) == 0
    assert "causal False -> True" in capsys.readouterr().err
    causal = load_file(str(tmp_path / "causal" / "last.safetensors"))
    assert all(torch.equal(causal[k], source[k]) for k in source)


def test_train_init_takes_a_shipped_models_name(tmp_path, capsys):
    """`train.init=default` continues the shipped weights: with lr 0 the run's model is them, unchanged."""
    from press.model.pretrained import resolve

    assert main(["train", "default", "--out", str(tmp_path / "r"), "--device", "cpu", "--no-progress",
                 "train.init=default", "train.steps=1", "train.lr=0", "finetune.steps=0", "train.batch_size=1",
                 "train.crop_seconds=0.5", "data.val_examples=1", "data.val_max_seconds=0.5"]) == 0
    shipped, continued = load_file(str(resolve("default"))), load_file(str(tmp_path / "r" / "last.safetensors"))
    assert all(torch.equal(continued[k], shipped[k]) for k in shipped)
    capsys.readouterr()
    assert main(["train", "tiny", "--out", str(tmp_path / "t"), "--device", "cpu", "--no-progress",
                 "train.init=no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_resume_keeps_the_runs_own_overrides_and_refuses_a_changed_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tiny", "--out", str(run), "--device", "cpu", "--no-progress", *SHORT]) == 0
    capsys.readouterr()
    # nothing repeated: the run's 2 kHz model, 3 crop steps and 1 fine-tuning step hold; one more step asked
    assert main(["train", "tiny", "--out", str(run), "--resume", "--device", "cpu", "--no-progress",
                 "finetune.steps=2"]) == 0
    captured = capsys.readouterr()
    assert "finished at step 5" in captured.out
    assert "finetune.steps: 1 -> 2" in captured.err and "model.sample_rate" in captured.err
    assert main(["train", "tiny", "--out", str(run), "--resume", "--device", "cpu", "--no-progress",
                 "model.dim=32"]) == 2
    assert "model.dim" in capsys.readouterr().err
