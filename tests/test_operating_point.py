"""A model's recommended operating point: stored with it, used when the caller names no target."""

import json

import numpy as np
import pytest
import soundfile as sf

import press
from press.cli import main
from press.engine.operating_point import OperatingPoint
from press.errors import PressError
from press.model.checkpoint import load_model, save_model


def test_point_resolves_each_value_separately_and_checks_its_range():
    point = OperatingPoint(2.5, 0.7)
    assert point.resolve(None, None) == (2.5, 0.7)
    assert point.resolve(10, None) == (10.0, 0.7) and point.resolve(None, 0.5) == (2.5, 0.5)
    assert OperatingPoint.from_dict(None) == OperatingPoint(20.0, 0.9)
    assert OperatingPoint.from_dict(point.to_dict()) == point
    for bad in ({"target_db": float("nan"), "confidence": 0.9}, {"target_db": 5, "confidence": 1.0},
                {"target_db": 5}):
        with pytest.raises(PressError):
            OperatingPoint.from_dict(bad)


def test_the_shipped_default_runs_at_its_cards_point():
    assert press.load("default").operating_point == OperatingPoint(2.5, 0.9)


def test_cli_and_api_use_the_checkpoints_point_unless_told(tiny_checkpoint, tmp_path, capsys):
    net, cfg, extra = load_model(tiny_checkpoint)
    pointed = tmp_path / "pointed.safetensors"
    save_model(pointed, net, cfg, {**extra, "operating_point": {"target_db": 3.0, "confidence": 0.6}})
    wav = tmp_path / "x.wav"
    sf.write(wav, (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32), 8000)
    for model, expected in ((tiny_checkpoint, (20.0, 0.9)), (pointed, (3.0, 0.6))):
        assert main(["separate", str(model), str(wav), "--out", str(tmp_path / "o"), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)[0]
        assert (report["target_db"], report["confidence"]) == expected
    assert main(["separate", str(pointed), str(wav), "--out", str(tmp_path / "o"), "--json",
                 "--target-db", "7"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert (report["target_db"], report["confidence"]) == (7.0, 0.6)
    result = press.load(str(pointed)).separate(np.zeros(8000, np.float32))
    assert (result.report["target_db"], result.report["confidence"]) == (3.0, 0.6)


def test_an_export_carries_the_point_to_the_runtime(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnx")
    from press.export import export_onnx
    from press.runtime import load as load_runtime

    net, _, _ = load_model(tiny_checkpoint)
    manifest = export_onnx(net, tmp_path / "onnx", name="tiny", operating_point=OperatingPoint(4.0, 0.8))
    assert load_runtime(manifest).operating_point == OperatingPoint(4.0, 0.8)
