"""`press evaluate` end to end on a tiny checkpoint, its files, and its errors."""

import csv
import json

import pytest
import torch

from press.cli import main
from press.evaluation.report import resolve_model
from press.model import PressNet, load_config, model_config
from press.model.checkpoint import load_model, save_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_model(path, PressNet(model_config(cfg)).eval(), cfg)
    return path


def test_evaluate_json_files_and_figures(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", str(checkpoint), "--limit", "3", "--json", "--out", str(out),
               "--segment", "1", "--context", "0.25"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["utterances"] == 3
    assert [e["exit"] for e in summary["exits"]] == [1, 2, 3]
    for e in summary["exits"]:
        for key in ("si_snri", "sdri", "pesq", "stoi", "gmacs_per_second", "rtf", "regret_db"):
            assert key in e
    gmacs = [e["gmacs_per_second"] for e in summary["exits"]]
    assert gmacs == sorted(gmacs) and gmacs[0] > 0
    assert [d["target_db"] for d in summary["dynamic"]] == [10, 15, 20, 25]
    assert all(d["confidence"] == 0.9 and "sdri" in d for d in summary["dynamic"])
    dyn = [d["gmacs_per_second"] for d in summary["dynamic"]]
    assert dyn == sorted(dyn)                                # a higher target never costs less
    assert gmacs[0] - 1e-9 <= min(dyn) and max(dyn) <= gmacs[-1] + 1e-9
    assert len(summary["oracle"]) == 4 and len(summary["uniform"]) == 1
    assert len(summary["output_change"]) >= 2
    assert summary["calibration"]["raw"]["exits"][0]["blocks"] > 0
    assert 0 <= summary["calibration"]["raw"]["ece"] <= 1
    assert json.loads((out / "summary.json").read_text())["exits"] == summary["exits"]
    rows = list(csv.DictReader(open(out / "utterances.csv")))
    assert len(rows) == 3 and {"id", "si_snri_exit1", "sdri_t20", "gmacs_t20"} <= set(rows[0])
    for name in ("exits_example", "quality_vs_compute", "regret_vs_compute", "calibration", "reliability"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_recalibration_is_fitted_saved_and_used(checkpoint, tmp_path, capsys):
    saved = tmp_path / "calibrated.safetensors"
    rc = main(["evaluate", str(checkpoint), "--limit", "1", "--no-quality", "--json",
               "--calibrate-split", "val", "--calibrate-limit", "2", "--save-calibrated", str(saved),
               "--out", str(tmp_path / "eval"), "--segment", "1", "--context", "0.25"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    fitted = summary["fitted_recalibration"]
    assert fitted != {"alpha_scale": 1.0, "beta_scale": 1.0}
    assert set(summary["calibration"]) == {"raw", "recalibrated"}
    _, _, recal, _ = resolve_model(str(saved))
    assert recal.to_dict() == fitted
    model, _, extra = load_model(saved)
    assert extra["recalibration"] == fitted
    # and evaluating the saved model applies it to the dynamic decisions
    main(["evaluate", str(saved), "--limit", "1", "--no-quality", "--json",
          "--out", str(tmp_path / "again"), "--segment", "1", "--context", "0.25"])
    again = json.loads(capsys.readouterr().out)
    assert again["recalibration"] == fitted


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "nosuch"], "unknown dataset"),
    (["--dataset", "wsj0-2mix"], "root"),
    (["--dataset", "wsj0-2mix", "--root", "/no/such/folder"], "does not exist"),
    (["--targets", "10,abc"], "--targets"),
    (["--targets", ","], "--targets"),
    (["--confidence", "1.5"], "--confidence"),
    (["--subset", "real", "--dataset", "wsj0-2mix", "--root", "."], "builtin"),
    (["--save-calibrated", "x.safetensors"], "--calibrate-split"),
])
def test_clear_errors_and_nothing_written(checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "eval"
    rc = main(["evaluate", str(checkpoint), "--limit", "1", "--out", str(out), *extra])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
