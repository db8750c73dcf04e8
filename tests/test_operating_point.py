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
                {"target_db": 5}, {"target_db": 5, "confidence": 0.9, "segment": 1.0, "context": 0.6},
                {"target_db": 5, "confidence": 0.9, "segment": 0}, {"target_db": 5, "confidence": 0.9, "context": 0}):
        with pytest.raises(PressError):
            OperatingPoint.from_dict(bad)


def test_a_point_without_a_cut_gets_the_generic_one_and_a_stored_cut_round_trips():
    old = OperatingPoint.from_dict({"target_db": 2.5, "confidence": 0.9})     # stored before points had a cut
    assert (old.segment, old.context) == (2.0, 0.25) and old.cut(None, None) == (2.0, 0.25, 0.0)
    assert old.whole == 0.0
    point = OperatingPoint(2.5, 0.9, segment=8.0, context=0.5, whole=10.0)
    assert OperatingPoint.from_dict(point.to_dict()) == point
    # the inputs run whole belong to the point's own cut: a cut asked for is the cut run
    assert point.cut(None, None) == (8.0, 0.5, 10.0)
    assert point.cut(3, None) == (3.0, 0.5, 0.0) and point.cut(None, 1) == (8.0, 1.0, 0.0)
    with pytest.raises(PressError):
        OperatingPoint(2.5, 0.9, whole=-1.0)


def test_an_input_up_to_whole_runs_in_one_segment_and_a_longer_one_is_cut():
    from press.engine.plan import Cut

    cut = Cut.from_seconds(2.0, 0.25, 8000, 2000, whole=10.0)
    assert len(cut.plan(8000 * 10)) == 1 and cut.plan(8000 * 10).context == 0
    assert len(cut.plan(8000 * 10 + 1)) == 6 and cut.plan(8000 * 10 + 1).context == 2000
    assert len(Cut.from_seconds(2.0, 0.25, 8000, 2000).plan(8000 * 10)) == 5


def test_the_api_evaluate_and_export_cut_as_the_checkpoints_point_unless_told(tiny_checkpoint, tmp_path):
    from press.evaluation.report import Request, run_request

    net, cfg, extra = load_model(tiny_checkpoint)
    pointed = tmp_path / "cut.safetensors"
    save_model(pointed, net, cfg, {**extra, "operating_point": {"target_db": 3.0, "confidence": 0.6,
                                                                "segment": 1.5, "context": 0.5, "whole": 2.5}})
    model = press.load(str(pointed))
    assert (model.separator().segment, model.separator().context) == (1.5, 0.5)
    assert (model.separator(segment=1.0).segment, model.separator(segment=1.0).context) == (1.0, 0.5)
    assert (press.load(str(tiny_checkpoint)).separator().segment, press.load(str(tiny_checkpoint)).separator().context) \
        == (2.0, 0.25)
    summary = run_request(Request(model=str(pointed), dataset="builtin", split="test", limit=2, targets=(5.0,),
                                  quality=False, out=tmp_path / "eval", device="cpu"))
    assert (summary["segment_seconds"], summary["context_seconds"], summary["whole_seconds"]) == (1.5, 0.5, 2.5)
    # a 4 s mixture is cut at the stored cut (3 segments of 1.5 s), not the generic one (2 of 2 s);
    # a 2.5 s one runs whole (the generic cut would cut it in 2), unless a cut is asked for
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4 * model.sample_rate).astype(np.float32) * 0.1
    assert len(model.separate(x).report["segments"]) == 3
    assert len(press.load(str(tiny_checkpoint)).separate(x).report["segments"]) == 2
    y = x[: int(2.5 * model.sample_rate)]
    assert len(model.separate(y).report["segments"]) == 1
    assert len(model.separate(y, segment=1.0).report["segments"]) == 3


def test_the_shipped_default_runs_at_its_cards_point():
    assert press.load("default").operating_point == OperatingPoint(2.5, 0.9, whole=10.0)


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
    point = OperatingPoint(4.0, 0.8, segment=1.5, context=0.5, whole=2.5)
    manifest = export_onnx(net, tmp_path / "onnx", name="tiny", operating_point=point)
    runtime = load_runtime(manifest)
    assert runtime.operating_point == point
    assert (runtime.manifest["segment"], runtime.manifest["context"]) == (1.5, 0.5)
    y = np.random.default_rng(2).standard_normal(int(2.5 * runtime.sample_rate)).astype(np.float32) * 0.1
    assert len(runtime.separate(y).segments) == 1
    assert len(runtime.separate(y, segment=1.0).segments) == 3
