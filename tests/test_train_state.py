"""The training state on disk: a damaged file is refused with a clear error, and a write that is
interrupted leaves the previous checkpoint whole and no partial file behind."""

import pytest
import torch
from tiny_training import tiny_run_config

from press.errors import PressError
from press.training.loop import train
from press.training.state import capture_rng, load_state, restore_rng, save_state


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(tiny_run_config("train.steps=5", "finetune.steps=0"), run, device="cpu", progress=False)
    return run


def test_truncated_state_is_refused_with_a_clear_error(run_dir, tmp_path):
    data = (run_dir / "last.state.pt").read_bytes()
    for cut in (len(data) // 2, 100, 0):
        (tmp_path / "last.state.pt").write_bytes(data[:cut])
        with pytest.raises(PressError, match="corrupt or truncated training state"):
            load_state(tmp_path / "last.state.pt")


def test_corrupt_state_is_refused(run_dir, tmp_path):
    data = bytearray((run_dir / "last.state.pt").read_bytes())
    data[len(data) // 3: len(data) // 3 + 64] = b"\xff" * 64
    (tmp_path / "last.state.pt").write_bytes(bytes(data))
    with pytest.raises(PressError, match="corrupt or truncated"):
        load_state(tmp_path / "last.state.pt")


def test_foreign_or_incomplete_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(PressError, match="not written by press train"):
        load_state(tmp_path / "plain.pt")
    save_state(tmp_path / "other.pt", {"format": "something-else"})
    with pytest.raises(PressError, match="not a PRESS training state"):
        load_state(tmp_path / "other.pt")
    save_state(tmp_path / "partial.pt", {"step": 3})
    with pytest.raises(PressError, match="lacks"):
        load_state(tmp_path / "partial.pt")
    with pytest.raises(PressError, match="nothing to resume"):
        load_state(tmp_path / "missing.pt")


def test_resume_from_a_damaged_run_fails_cleanly(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    data = (copy / "last.state.pt").read_bytes()
    (copy / "last.state.pt").write_bytes(data[: len(data) - 1000])
    with pytest.raises(PressError, match="corrupt or truncated"):
        train(tiny_run_config("train.steps=8", "finetune.steps=0"), copy, resume=True, device="cpu", progress=False)


def test_interrupted_write_keeps_the_old_checkpoint_and_leaves_no_partial_file(run_dir, tmp_path, monkeypatch):
    path = tmp_path / "last.state.pt"
    save_state(path, {"step": 1})
    before = path.read_bytes()

    real_open = open

    def dying_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode:
            f.write(b"half a checkpoint")   # some bytes reach the disk, then the process dies
            f.close()
            raise KeyboardInterrupt
        return f

    monkeypatch.setattr("builtins.open", dying_open)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.state.pt"]


def test_rng_states_round_trip_through_a_weights_only_load(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    save_state(tmp_path / "s.pt", {"rng": capture_rng(torch.device("cpu"))})
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng(torch.load(tmp_path / "s.pt", weights_only=True)["rng"], torch.device("cpu"))
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_gpu_rng_state_restores_on_a_machine_with_fewer_gpus(monkeypatch):
    # a state saved on a 4-GPU machine (before this format kept only the rank's own generator) and
    # one saved now both restore into the single GPU of the resuming rank
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((int(state[0]), device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU"))
    dev = torch.device("cuda", 0)
    rng = capture_rng(torch.device("cpu"))
    assert rng["cuda"] == []
    for saved in ([torch.full((8,), i, dtype=torch.uint8) for i in range(4)], [torch.full((8,), 7, dtype=torch.uint8)]):
        restore_rng({**rng, "cuda": saved}, dev)
    assert restored == [(0, dev), (7, dev)]
