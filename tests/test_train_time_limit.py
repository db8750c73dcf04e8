"""`train.max_minutes`: the crop stage stops after its wall time, fine-tuning follows and writes the
final weights; the README's one-GPU command runs end to end on the CPU (tiny model, a few steps);
a run cut short by the time limit and killed while fine-tuning resumes bit-identical."""

import csv
import shlex
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_train_resume import Killed, assert_same_tree, kill_at
from tiny_training import OVERRIDES, tiny_run_config

from press.cli import main
from press.training.loop import train
from press.training.state import load_state

README = Path(__file__).resolve().parents[1] / "README.md"
NOW = "train.max_minutes=1e-9"   # spent by the first step, whatever the machine


def gpu_command() -> list[str]:
    """The README's one-GPU command, as arguments after `press`."""
    lines = [ln for ln in README.read_text().splitlines() if ln.startswith("press train press4-s --out runs/gpu ")]
    assert len(lines) == 1, "the README's one-GPU training command is missing or repeated"
    return shlex.split(lines[0])[1:]


def test_readme_gpu_command_trains_then_finetunes_on_cpu(tmp_path, capsys):
    args = gpu_command()
    assert "train.max_minutes=9" in args and args[args.index("--device") + 1] == "cuda"
    # the same command on the tiny model, the CPU, a tmp folder and a few steps (later keys win)
    args[args.index("press4-s")] = "tiny"
    args[args.index("--out") + 1] = str(tmp_path / "gpu")
    args[args.index("--device") + 1] = "cpu"
    args += ["--no-progress", *OVERRIDES, NOW, "train.num_workers=1", "finetune.steps=2", "finetune.warmup_steps=0",
             "finetune.max_seconds=2", "finetune.batch_size=2", "finetune.max_batch_seconds=4", "data.val_examples=2"]
    assert main(args) == 0
    run = tmp_path / "gpu"
    state = load_state(run / "last.state.pt")
    assert (state["step"], state["stage"], state["crop_steps"]) == (4, "finetune", 2)   # checked at log steps (2)
    assert (run / "last.safetensors").is_file() and (run / "best.safetensors").is_file()
    with open(run / "log.csv", newline="") as f:
        assert [r["stage"] for r in csv.DictReader(f)][-1] == "finetune"


def test_time_limited_run_resumes_bit_identical(tmp_path):
    cfg = tiny_run_config(NOW)   # crop stage cut at step 2 (the first logged one); 6 fine-tuning steps;
    straight = train(cfg, tmp_path / "straight", device="cpu", progress=False)   # checkpoints at 2, 5, 8
    assert straight.step == 8
    with pytest.raises(Killed):
        train(cfg, tmp_path / "resumed", device="cpu", progress=False, on_step=kill_at(6))
    assert load_state(tmp_path / "resumed" / "last.state.pt")["step"] == 5
    assert train(cfg, tmp_path / "resumed", resume=True, device="cpu", progress=False).step == 8
    a, b = (load_state(tmp_path / d / "last.state.pt") for d in ("straight", "resumed"))
    assert a["crop_steps"] == b["crop_steps"] == 2
    assert_same_tree(a["model"], b["model"], "model")
    assert_same_tree(a["optimizer"], b["optimizer"], "optimizer")
    assert_same_tree(load_file(tmp_path / "straight" / "last.safetensors"),
                     load_file(tmp_path / "resumed" / "last.safetensors"))
