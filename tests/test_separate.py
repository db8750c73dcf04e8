import json

import numpy as np
import pytest
import soundfile as sf

import press
from press.cli import main
from press.errors import PressError

SR = 8000


@pytest.fixture
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


def speechlike(seconds, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    env = np.repeat(rng.uniform(0.0, 1.0, n // (sr // 10) + 1), sr // 10)[:n]
    return (rng.standard_normal(n) * env * 0.1).astype(np.float32)


def test_python_api_one_line(ckpt, tmp_path):
    x = speechlike(3.0)
    result = press.load(str(ckpt)).separate(x, sample_rate=SR, target_db=20, confidence=0.9)
    assert result.sources.shape == (2, len(x)) and result.sample_rate == SR
    assert np.isfinite(result.sources).all()
    rep = result.report
    assert rep["gmacs_per_second"] > 0 and rep["blocks"][0]["exit"] in (1, 2, 3)
    assert len(rep["blocks"]) == -(-len(x) // 400)
    path = tmp_path / "x.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    from_file = press.load(str(ckpt)).separate(str(path))
    np.testing.assert_allclose(from_file.sources, result.sources, atol=1e-6)


def test_api_resamples_in_and_out(ckpt):
    x = speechlike(2.0, sr=16000)
    res = press.load(str(ckpt)).separate(x, sample_rate=16000, exit=1)
    assert res.sources.shape == (2, len(x)) and res.sample_rate == 16000
    assert all(b["exit"] == 1 for b in res.report["blocks"])


def test_api_errors(ckpt):
    model = press.load(str(ckpt))
    with pytest.raises(PressError, match="NaN"):
        model.separate(np.full(800, np.nan, np.float32))
    with pytest.raises(PressError, match="no samples"):
        model.separate(np.zeros(0, np.float32))
    with pytest.raises(PressError, match="channels"):
        model.separate(np.zeros((3, 800), np.float32))
    with pytest.raises(PressError, match="exit must be"):
        model.separate(np.zeros(800, np.float32), exit=7)
    with pytest.raises(PressError, match="not both"):
        model.separate(np.zeros(800, np.float32), exit=1, budget=0.1)
    with pytest.raises(PressError, match="unknown model"):
        press.load("no-such-model")


def test_api_and_cli_budget_mode(ckpt, tmp_path, capsys):
    model = press.load(str(ckpt))
    x = speechlike(12.0, seed=4)
    lo = model.separate(x, exit=1).report["gmacs_per_second"]
    hi = model.separate(x, exit=3).report
    n_seg, hi = len(hi["segments"]), hi["gmacs_per_second"]
    budget = 0.5 * (lo + hi)
    rep = model.separate(x, budget=budget).report     # threshold fitted on built-in validation mixtures
    assert rep["policy"] == "budget" and rep["budget_gmacs_per_second"] == budget
    assert lo <= rep["gmacs_per_second"] <= hi and np.isfinite(rep["budget_threshold_db"])
    with pytest.raises(PressError, match="below what exit 1 costs"):
        model.separate(x, budget=0.9 * lo)
    model.calibrate_budget([x])                        # fitted on the input itself: met to one segment
    rep = model.separate(x, budget=budget).report
    assert budget - (hi - lo) / n_seg < rep["gmacs_per_second"] <= budget * (1 + 1e-9)
    sf.write(tmp_path / "x.wav", x, SR)
    assert main(["separate", str(ckpt), str(tmp_path / "x.wav"), "--out", str(tmp_path / "o"), "--json",
                 "--budget", str(budget)]) == 0
    cli = json.loads(capsys.readouterr().out)[0]
    assert cli["policy"] == "budget" and lo <= cli["gmacs_per_second"] <= hi


def test_digital_silence_separates_to_silence_without_nan(ckpt):
    res = press.load(str(ckpt)).separate(np.zeros(SR * 2, np.float32))
    assert np.isfinite(res.sources).all() and np.abs(res.sources).max() == 0.0


def test_cli_separate_writes_sources_and_reports(ckpt, tmp_path, capsys):
    stereo = np.stack([speechlike(2.5), speechlike(2.5, seed=1)], 1)
    sf.write(tmp_path / "a.wav", stereo, 16000)
    sf.write(tmp_path / "b.flac", speechlike(1.7), SR)
    out = tmp_path / "out"
    code = main(["separate", str(ckpt), str(tmp_path / "a.wav"), str(tmp_path / "b.flac"), "--out", str(out),
                 "--channel", "1", "--json", "--target-db", "15"])
    assert code == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in reports] == [str(tmp_path / "a.wav"), str(tmp_path / "b.flac")]
    for r, n, sr in zip(reports, (len(stereo), int(1.7 * SR)), (16000, SR)):
        assert len(r["outputs"]) == 2 and r["gmacs_per_second"] > 0
        assert all("exit" in b for b in r["blocks"])
        for p in r["outputs"]:
            info = sf.info(p)
            assert info.frames == n and info.samplerate == sr
        assert json.loads((out / (r["input"].rsplit("/", 1)[1].rsplit(".", 1)[0] + ".json")).read_text())


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("this is not audio"), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), SR), "empty"),
    (lambda p: sf.write(p, np.array([0.1, np.nan] * 400, np.float32), SR, subtype="FLOAT"), "NaN"),
    (lambda p: sf.write(p, np.zeros((800, 3), np.float32), SR), "3 channels"),
    (lambda p: (sf.write(p, speechlike(2.0), SR), p.write_bytes(p.read_bytes()[:3000])), "truncated"),
])
def test_cli_bad_inputs_fail_cleanly_and_write_nothing(ckpt, tmp_path, capsys, make, message):
    bad = tmp_path / "bad.wav"
    make(bad)
    out = tmp_path / "out"
    assert main(["separate", str(ckpt), str(bad), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []


def test_cli_bad_models(tmp_path, capsys):
    wav = tmp_path / "x.wav"
    sf.write(wav, speechlike(1.0), SR)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"garbage" * 10)
    for model, message in ((str(junk), "not a readable safetensors"), ("no-such-model", "unknown model")):
        assert main(["separate", model, str(wav), "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_long_input_is_streamed_a_window_at_a_time(ckpt, tmp_path, monkeypatch):
    """Nothing holds the whole input or output: every read and every write is at most one window.
    (benchmarks/separate_memory.py measures the resident memory on a 10-minute file.)"""
    from press.io.streaming import FileReader, SourceWriter

    reads, writes = [], []
    read, write = FileReader.read, SourceWriter.__call__
    monkeypatch.setattr(FileReader, "read", lambda self, a, b: reads.append(b - a) or read(self, a, b))
    monkeypatch.setattr(SourceWriter, "__call__", lambda self, s, x: writes.append(x.shape[1]) or write(self, s, x))
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        for i in range(12):
            f.write(speechlike(10.0, sr=16000, seed=i))
    model = press.load(str(ckpt))
    rep = model.separate_file(path, [tmp_path / "o1.wav", tmp_path / "o2.wav"], segment=1.0, context=0.25)
    window = int(1.5 * SR)
    assert len(rep["segments"]) == 120
    assert max(reads) <= window and max(writes) <= window and sum(writes) == 120 * SR
    assert sf.info(tmp_path / "o1.wav").frames == 120 * 16000


def test_cli_compile_flag(ckpt, tmp_path, capsys, monkeypatch):
    """`--compile` compiles the network before separating (dynamo's `eager` backend stands in for
    inductor, which takes minutes on a CPU) and gives the uncompiled run's sources; with the ONNX
    backend it is an error, not ignored."""
    from press.model import PressNet

    compiled = []
    plain = PressNet.compile_inference
    monkeypatch.setattr(PressNet, "compile_inference",
                        lambda self: (compiled.append(self), plain(self, backend="eager"))[1])
    wav = tmp_path / "x.wav"
    sf.write(wav, speechlike(3.0), SR)
    for flags, out in (([], "plain"), (["--compile"], "compiled")):
        assert main(["separate", str(ckpt), str(wav), "--out", str(tmp_path / out), "--exit", "2", *flags]) == 0
    assert len(compiled) == 1
    for name in ("x_s1.wav", "x_s2.wav"):
        np.testing.assert_allclose(sf.read(tmp_path / "compiled" / name)[0], sf.read(tmp_path / "plain" / name)[0],
                                   atol=1e-4)
    assert main(["separate", str(ckpt), str(wav), "--out", str(tmp_path / "o"), "--backend", "onnx", "--compile"]) == 2
    assert "--compile applies to --backend torch" in capsys.readouterr().err
