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
    assert summary["utterances"] == 3 and summary["split"] == "test" and summary["subset"] is None
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
    # one pair of scales per exit (the default fit), and not the identity: some scale moved
    assert len(fitted["alpha_scale"]) == len(fitted["beta_scale"]) == 3
    assert any(abs(s - 1.0) > 1e-3 for s in fitted["alpha_scale"] + fitted["beta_scale"])
    assert set(summary["calibration"]) == {"raw", "recalibrated"}
    _, _, recal, _ = resolve_model(str(saved))
    assert recal.to_dict() == fitted
    model, _, extra = load_model(saved)
    assert extra["recalibration"] == fitted


def test_stored_recalibration_drives_the_dynamic_exits(checkpoint, tmp_path, capsys):
    """The same weights saved with two extreme recalibrations: beta x 1e-6 predicts errors 60 dB
    smaller (every target met at exit 1), beta x 1e6 60 dB larger (none met before the last).
    Evaluating each must move the dynamic rows' exits and compute, and nothing else."""
    model, cfg, _ = load_model(checkpoint)
    summaries = {}
    for beta_scale in (1e-6, 1e6):
        path = tmp_path / f"beta{beta_scale:g}.safetensors"
        recal = {"alpha_scale": 1.0, "beta_scale": beta_scale}
        save_model(path, model, cfg, extra={"recalibration": recal})
        assert main(["evaluate", str(path), "--limit", "1", "--no-quality", "--json", "--segment", "1",
                     "--context", "0.25", "--out", str(tmp_path / f"eval{beta_scale:g}")]) == 0
        summaries[beta_scale] = json.loads(capsys.readouterr().out)
        assert summaries[beta_scale]["recalibration"] == recal
    sure, doubtful = summaries[1e-6], summaries[1e6]
    # calibration of the probabilities the exits were decided by, beside the raw heads'
    assert set(sure["calibration"]) == set(doubtful["calibration"]) == {"raw", "stored"}
    assert sure["calibration"]["raw"] == doubtful["calibration"]["raw"]
    assert sure["calibration"]["stored"]["exits"][0]["crps_db"] != doubtful["calibration"]["stored"]["exits"][0]["crps_db"]
    gmacs = [e["gmacs_per_second"] for e in sure["exits"]]
    assert [d["exit_shares"] for d in sure["dynamic"]] == [[1.0, 0.0, 0.0]] * 4
    assert [d["exit_shares"] for d in doubtful["dynamic"]] == [[0.0, 0.0, 1.0]] * 4
    assert all(d["gmacs_per_second"] == pytest.approx(gmacs[0]) for d in sure["dynamic"])
    assert all(d["gmacs_per_second"] == pytest.approx(gmacs[-1]) for d in doubtful["dynamic"])
    for key in ("exits", "output_change", "uniform"):                 # the weights are the same
        assert [{k: v for k, v in row.items() if k != "rtf"} for row in sure[key]] == \
               [{k: v for k, v in row.items() if k != "rtf"} for row in doubtful[key]]


def test_a_lower_quantile_never_leaves_later(checkpoint, tmp_path, capsys):
    """Fewer of a segment's blocks must pass at a lower quantile, so each target's dynamic point
    can only move to earlier exits and less compute; the static exits do not move."""
    summaries = {}
    for q in ("1", "0.5"):
        assert main(["evaluate", str(checkpoint), "--limit", "2", "--no-quality", "--json", "--segment", "2",
                     "--context", "0.25", "--targets", "0,5,10,20", "--quantile", q,
                     "--out", str(tmp_path / f"q{q}")]) == 0
        summaries[q] = json.loads(capsys.readouterr().out)
        assert summaries[q]["quantile"] == float(q)
    strict, loose = summaries["1"], summaries["0.5"]
    assert [e["si_snri"] for e in strict["exits"]] == [e["si_snri"] for e in loose["exits"]]
    for a, b in zip(strict["dynamic_sweep"], loose["dynamic_sweep"]):
        assert (a["target_db"], a["confidence"]) == (b["target_db"], b["confidence"])
        assert b["gmacs_per_second"] <= a["gmacs_per_second"] + 1e-9


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "nosuch"], "unknown dataset"),
    (["--dataset", "wsj0-2mix"], "root"),
    (["--dataset", "wsj0-2mix", "--root", "/no/such/folder"], "does not exist"),
    (["--targets", "10,abc"], "--targets"),
    (["--targets", ","], "--targets"),
    (["--confidence", "1.5"], "--confidence"),
    (["--quantile", "0"], "--quantile"),
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
