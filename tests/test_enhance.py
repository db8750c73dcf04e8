"""Enhancement models: fixed-order named outputs (speech, noise) from the loss to the files on disk."""

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import press
from press.cli import main
from press.engine.plan import SegmentPlan
from press.engine.stitch import Stitcher
from press.errors import PressError
from press.model import ModelConfig, PressNet
from press.training.loss import TrainingLoss

SR = 8000


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory):
    """A randomly initialised tiny model whose outputs are named speech and noise."""
    from press.model import load_config, model_config
    from press.model.checkpoint import save_model

    torch.manual_seed(0)
    cfg = load_config("tiny")
    cfg.model.sources = ["speech", "noise"]
    path = tmp_path_factory.mktemp("enh") / "enh.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    return path


def noisy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_config_names_the_sources():
    assert ModelConfig().source_names == ["s1", "s2"]
    assert ModelConfig(sources=["speech", "noise"]).source_names == ["speech", "noise"]
    for bad in (["speech"], ["speech", "speech"], ["Speech", "noise"], ["a/b", "noise"]):
        with pytest.raises(PressError, match="sources must name"):
            ModelConfig(sources=bad)


def test_fixed_pit_never_permutes(tiny_model):
    """With the estimates swapped, PIT would swap them back; `fixed` scores estimate k against source k."""
    torch.manual_seed(0)
    mix = torch.randn(2, 1600)
    targets = torch.stack([0.7 * mix, 0.3 * mix], 1)
    outputs = [dataclasses.replace(o, estimate=targets.flip(1).clone()) for o in tiny_model(mix)]
    shared = TrainingLoss(400, pit="shared")(outputs, targets, mix)
    fixed = TrainingLoss(400, pit="fixed")(outputs, targets, mix)
    assert shared.perm.tolist() == [[1, 0], [1, 0]]
    assert fixed.perm.tolist() == [[0, 1], [0, 1]]
    assert fixed.loss > shared.loss


def test_stitcher_keeps_a_fixed_order():
    plan = SegmentPlan(4000, 2000, 400)
    a, b = np.ones(plan.window, np.float32), 3 * np.ones(plan.window, np.float32)
    outs = {}
    for align in (True, False):
        out = np.zeros((2, plan.n_samples), np.float32)

        def sink(start, x, out=out):
            out[:, start:start + x.shape[1]] = x

        st = Stitcher(plan, sink, align=align)
        for i in range(len(plan)):
            st.push(i, np.stack([a, b]) if i % 2 == 0 else np.stack([b, a]))
        outs[align] = out
    assert np.allclose(outs[True][0], 1.0)          # speakers: aligned by the overlap
    assert not np.allclose(outs[False][0], 1.0)     # fixed order: segment 2's first output stays first
    assert np.allclose(outs[False][0, -100:], 3.0)


def test_api_reports_source_names(enhancer):
    model = press.load(str(enhancer))
    assert model.source_names == ["speech", "noise"]
    result = model.separate(noisy(2.0), sample_rate=SR, exit=1)
    assert result.report["sources"] == ["speech", "noise"] and result.sources.shape == (2, 2 * SR)


def test_cli_enhance_writes_speech_and_noise_on_request(enhancer, tmp_path, capsys):
    path = tmp_path / "call.wav"
    sf.write(path, noisy(1.5), SR)
    assert main(["enhance", str(path), "--model", str(enhancer), "--out", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["call.json", "call_speech.wav"]
    report = json.loads((tmp_path / "a" / "call.json").read_text())
    assert report["sources"] == ["speech", "noise"] and report["outputs"] == [str(tmp_path / "a" / "call_speech.wav")]
    assert main(["enhance", str(path), "--model", str(enhancer), "--noise", "--out", str(tmp_path / "b")]) == 0
    speech, sr = sf.read(tmp_path / "b" / "call_speech.wav")
    noise, _ = sf.read(tmp_path / "b" / "call_noise.wav")
    assert sr == SR and len(speech) == len(noise) == int(1.5 * SR)
    np.testing.assert_allclose(speech + noise, sf.read(path)[0], atol=2e-3)  # the network's mixture consistency
    assert main(["separate", str(enhancer), str(path), "--out", str(tmp_path / "c")]) == 0
    assert {p.name for p in (tmp_path / "c").iterdir()} == {"call.json", "call_speech.wav", "call_noise.wav"}


def test_cli_enhance_refuses_separators_and_bad_input(enhancer, tiny_checkpoint, tmp_path, capsys):
    good = tmp_path / "ok.wav"
    sf.write(good, noisy(1.0), SR)
    assert main(["enhance", str(good), "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x")]) == 2
    assert "not an enhancement model" in capsys.readouterr().err and not (tmp_path / "x").exists()
    bad = tmp_path / "nan.wav"
    sf.write(bad, np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR)
    out = tmp_path / "y"
    code = main(["enhance", str(bad), str(empty), str(tmp_path / "missing.wav"), str(good),
                 "--model", str(enhancer), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("press enhance: error") == 3
    assert sorted(p.name for p in out.iterdir()) == ["ok.json", "ok_speech.wav"]


def _tiny_enhancer_export(tmp_path):
    import warnings

    from press.export import export_onnx
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    net = PressNet(tiny_config(sources=["speech", "noise"])).eval()
    with torch.no_grad():
        for head in net.decoder_heads:
            head.synthesis.weight.normal_(0, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return net, export_onnx(net, tmp_path, name="enh")


def test_onnx_runtime_keeps_the_fixed_order(tmp_path):
    """Several segments through the exported graphs: the same sources as torch, speech first, no
    permutation between segments; `press enhance --backend onnx` names its file speech."""
    from press.engine.policies import Static
    from press.inference.runner import Separator
    from press.io.streaming import ArrayReader
    from press.runtime import load as load_runtime

    net, manifest = _tiny_enhancer_export(tmp_path / "onnx")
    assert json.loads(manifest.read_text())["sources"] == ["speech", "noise"]
    x = noisy(9.0, seed=3)
    for k in (1, 3):
        ref = Separator(net).run(ArrayReader(x), Static(k))
        got = load_runtime(manifest, threads=1).separate(x, exit=k)
        assert len(ref.segments) > 1 and np.abs(got.sources - ref.sources).max() <= 1e-4
    wav = tmp_path / "call.wav"
    sf.write(wav, x, SR, subtype="FLOAT")
    assert main(["enhance", str(wav), "--backend", "onnx", "--model", str(manifest), "--out", str(tmp_path / "o"),
                 "--threads", "1", "--exit", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["call.json", "call_speech.wav"]


def test_enhance_config_trains_on_the_shipped_slice(tmp_path):
    """`press train enhance` end to end on the shipped noisy slice (a small network, two steps): the
    checkpoint names its outputs and loads as an enhancer."""
    out = tmp_path / "run"
    small = ["model.dim=16", "model.enc_channels=8", "model.ig_hidden=8", "model.attn_heads=2",
             "model.rnn_expand=1.0", "model.ffn_expand=1.0"]
    assert main(["train", "enhance", "--out", str(out), "--no-progress", "train.steps=2", "finetune.steps=1",
                 "data.val_examples=2", "train.amp=off", "train.log_every=1", "train.tensorboard=false", *small]) == 0
    model = press.load(str(out / "last.safetensors"))
    assert model.source_names == ["speech", "noise"] and model.sample_rate == 16000
