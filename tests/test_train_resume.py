"""Exact resume: a run killed twice (once in the crop stage, once while fine-tuning, each time
mid-epoch and a few steps past its last checkpoint) and resumed ends bit-identical to a run never
interrupted: weights, optimiser state, data position and the logged curves."""

import csv

import pytest
import torch
from safetensors.torch import load_file
from tiny_training import tiny_run_config

from press.errors import PressError
from press.training.loop import train
from press.training.state import load_state


class Killed(Exception):
    """Raised from the step hook: the run stops the way a kill would stop it."""


def kill_at(step_to_die: int):
    def on_step(step: int, row: dict) -> None:
        if step == step_to_die:
            raise Killed(step)
    return on_step


def assert_same_tree(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def csv_rows(run_dir):
    """The log's rows without `crop_minutes`: wall time is the one field two identical runs differ in."""
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r.pop("crop_minutes")) >= 0 for r in rows)
    return rows


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    train(tiny_run_config(), run, device="cpu", progress=False)
    return run


def test_killed_and_resumed_run_is_bit_identical(uninterrupted, tmp_path):
    cfg = tiny_run_config()
    # 6 crop batches per epoch; checkpoints every 5 steps; the crop stage ends at step 14.
    with pytest.raises(Killed):
        train(cfg, tmp_path, device="cpu", progress=False, on_step=kill_at(13))   # last checkpoint: step 10
    state = load_state(tmp_path / "last.state.pt")
    assert (state["step"], state["stage"], state["epoch"], state["batch"]) == (10, "train", 1, 4)
    with pytest.raises(Killed):
        train(cfg, tmp_path, resume=True, device="cpu", progress=False, on_step=kill_at(18))  # last: step 15
    state = load_state(tmp_path / "last.state.pt")
    assert (state["step"], state["stage"]) == (15, "finetune") and state["batch"] >= 1
    result = train(cfg, tmp_path, resume=True, device="cpu", progress=False)
    assert result.step == 20

    straight, resumed = load_state(uninterrupted / "last.state.pt"), load_state(tmp_path / "last.state.pt")
    assert straight["step"] == resumed["step"] == 20
    assert_same_tree(straight["model"], resumed["model"], "model")
    assert_same_tree(straight["optimizer"], resumed["optimizer"], "optimizer")
    assert_same_tree(straight["rng"], resumed["rng"], "rng")
    for key in ("stage", "epoch", "batch", "best_val"):
        assert straight[key] == resumed[key], key
    assert_same_tree(load_file(uninterrupted / "last.safetensors"), load_file(tmp_path / "last.safetensors"))
    # the log holds each step once, with the same numbers (rows past a checkpoint were replaced)
    assert csv_rows(uninterrupted) == csv_rows(tmp_path)


def test_a_finished_run_is_not_overwritten_without_resume(uninterrupted):
    with pytest.raises(PressError, match="--resume"):
        train(tiny_run_config(), uninterrupted, device="cpu", progress=False)


def test_resume_refuses_a_different_model(uninterrupted):
    with pytest.raises(PressError, match="'model' section differs"):
        train(tiny_run_config("model.dim=32"), uninterrupted, resume=True, device="cpu", progress=False)
