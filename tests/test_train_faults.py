"""`press train` under faults: killed (SIGKILL, SIGTERM) inside checkpoint writes and resumed, it ends
bit-identical to a run never interrupted; a truncated file in its corpus stops it with an error
naming the file, or with `data.skip_bad_files=true` is left out, with a warning and a note in run.json.

benchmarks/kill_resume.py kills ten runs at random and forced moments; the chain here is its
bounded version (three kills, about 30 s) and uses its driver and comparison.
"""

import csv
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf
from tiny_training import OVERRIDES, tiny_run_config

import press.io.files as files
from press.cli import main
from press.data.builtin import CORPUS_DIR, load_manifest
from press.data.noisy import SHIPPED, NoisySpeech
from press.errors import PressError
from press.training.loop import prepare_run_dir, train
from press.training.state import load_state

ROOT = Path(__file__).resolve().parents[1]


def kill_resume():
    """benchmarks/kill_resume.py as a module: its driver and its comparison of two runs."""
    spec = importlib.util.spec_from_file_location("kill_resume", ROOT / "benchmarks" / "kill_resume.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def killed_in_subprocess(kr, run: Path, moment: str) -> None:
    """`press train` on `run` (resuming when it can), SIGKILLed by itself at `moment` (FILE:K:PHASE)."""
    proc = subprocess.run(kr.command(run, kr.Kill(signal.SIGKILL, moment=moment)), env=kr.env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_killed_inside_checkpoint_writes_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    kr = kill_resume()
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main(kr.train_argv(straight, resume=False)) == 0
    # checkpoints at steps 5, 10, 14, 15, 20: killed half-way through writing step 10's state
    killed_in_subprocess(kr, run, "last.state.pt:2:partial")
    assert kr.checkpoint_step(run) == 5 and len(kr.temporaries(run)) == 1
    # resumed from 5, SIGTERM between step 14's weights and its state: one line, code 143, no temporaries
    monkeypatch.setattr(files, "publish", files.publish)
    kr.install_hook("last.safetensors:2:renamed", signal.SIGTERM)
    assert main(kr.train_argv(run, resume=True)) == 143
    assert "press train: stopped by SIGTERM; nothing partial was kept" in capsys.readouterr().err
    assert kr.checkpoint_step(run) == 10 and not kr.temporaries(run)
    monkeypatch.undo()
    # resumed from 10, killed between the final weights (step 20) and the final state
    killed_in_subprocess(kr, run, "last.safetensors:3:renamed")
    assert kr.checkpoint_step(run) == 15
    assert main(kr.train_argv(run, resume=True)) == 0
    assert kr.differences(straight, run) == [] and not kr.temporaries(run)


def corpus_copy(tmp_path: Path) -> tuple[Path, Path]:
    """The built-in corpus as links in `tmp_path`, one training utterance truncated: (root, that file)."""
    root = tmp_path / "corpus"
    rows = load_manifest()
    bad = next(r["path"] for r in rows if r["split"] == "train")
    for r in rows:
        target = root / r["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(CORPUS_DIR / r["path"])
    shutil.copy(CORPUS_DIR / "manifest.csv", root / "manifest.csv")
    data = (CORPUS_DIR / bad).read_bytes()
    (root / bad).unlink()
    (root / bad).write_bytes(data[: len(data) // 3])
    return root, root / bad


def test_a_truncated_corpus_file_stops_the_run_naming_it(tmp_path, capsys):
    root, bad = corpus_copy(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "tiny", *OVERRIDES, f"data.root={root}", "--out", str(run), "--no-progress",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"press train: error: {bad}: truncated" in err
    assert len(err.strip().splitlines()) == 1 and not (run / "last.state.pt").exists()


def test_skip_bad_files_trains_without_the_file_and_records_it(tmp_path):
    root, bad = corpus_copy(tmp_path)
    cfg = tiny_run_config(f"data.root={root}", "data.skip_bad_files=true", "train.steps=2", "finetune.steps=0",
                          "train.val_every=2")
    with pytest.warns(UserWarning, match=f"builtin: skipping an unreadable file: {re.escape(str(bad))}: truncated"):
        result = train(cfg, tmp_path / "run", device="cpu", progress=False)
    assert result.step == 2
    session = json.loads((tmp_path / "run" / "run.json").read_text())["sessions"][0]
    assert len(session["skipped_files"]) == 1 and session["skipped_files"][0].startswith(f"{bad}: truncated")


def test_a_resume_may_turn_skip_bad_files_on_but_not_change_the_data(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(tiny_run_config()))
    (run / "last.state.pt").write_bytes(b"")
    (run / ".last.state.pt.x1y2.tmp").write_bytes(b"left by a kill")
    prepare_run_dir(run, tiny_run_config("data.skip_bad_files=true"), resume=True)
    assert not list(run.glob(".*.tmp"))
    with pytest.raises(PressError, match=r"'data' section differs .*data.mode"):
        prepare_run_dir(run, tiny_run_config("data.mode=max"), resume=True)


def test_noisy_corpus_names_or_skips_a_truncated_file(tmp_path):
    root = tmp_path / "noisy"
    shutil.copytree(SHIPPED, root)
    with open(root / "speech.csv", newline="") as f:
        row = next(csv.DictReader(f))
    bad = root / row["path"]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(PressError, match=f"^{re.escape(str(bad))}: "):
        NoisySpeech(root, split=row["split"], sample_rate=8000)
    with pytest.warns(UserWarning, match=f"noisy: skipping an unreadable file: {re.escape(str(bad))}"):
        ds = NoisySpeech(root, split=row["split"], sample_rate=8000, skip_bad_files=True)
    assert len(ds.skipped) == 1 and ds.skipped[0].startswith(str(bad)) and ds[0]["mixture"].numel() > 0


def wsj_corpus(root: Path) -> Path:
    """A two-speaker WSJ0-2mix tree at 8 kHz with four training mixtures; one source WAV truncated."""
    rng = np.random.default_rng(0)
    base = root / "2speakers" / "wav8k" / "min"
    for split in ("tr", "cv"):
        for k in range(4):
            for folder in ("mix", "s1", "s2"):
                path = base / split / folder / f"utt{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000, subtype="FLOAT")
    bad = base / "tr" / "s2" / "utt2.wav"
    bad.write_bytes(bad.read_bytes()[:3000])
    return bad


def test_a_lazily_read_corpus_names_the_file_from_a_dataloader_worker_or_skips_it(tmp_path):
    bad = wsj_corpus(tmp_path)
    data = ["data.name=wsj0-2mix", f"data.root={tmp_path}", "data.options=null", "train.steps=4",
            "finetune.steps=0", "train.batch_size=4", "train.num_workers=1"]
    with pytest.raises(PressError, match=f"^{re.escape(str(bad))}: truncated audio file") as err:
        train(tiny_run_config(*data), tmp_path / "run", device="cpu", progress=False)
    assert "Traceback" not in str(err.value)
    with pytest.warns(UserWarning, match=f"wsj0-2mix: skipping an unreadable file: {re.escape(str(bad))}: truncated"):
        result = train(tiny_run_config(*data, "data.skip_bad_files=true"), tmp_path / "skipping", device="cpu",
                       progress=False)
    assert result.step == 4
    assert json.loads((tmp_path / "skipping" / "run.json").read_text())["sessions"][0]["skipped_files"] == [
        f"{bad}: truncated audio file: the header promises more data than the file holds"]
    assert load_state(tmp_path / "skipping" / "last.state.pt")["step"] == 4
