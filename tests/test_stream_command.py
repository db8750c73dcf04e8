"""`press stream`: a causal model on a file, a pipe or a sound device, chunk by chunk, gives the
whole-file forward's output at its exit (fixed, or per block as the exit rule decides); bad inputs
are refused in one line, and a stopped file output leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from test_causal import random_synthesis
from test_stream_exits import rule_exits

from press.cli import main
from press.commands.stream import Meter
from press.model import PressNet, load_config, model_config
from press.model.checkpoint import save_model
from press.model.pretrained import load

SR = 8000
PRESS = [sys.executable, "-m", "press.cli", "stream"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def noise(samples: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * 0.1).astype(np.float32)


def forward(checkpoint, x: np.ndarray, exit: int = 3) -> np.ndarray:
    """The speech of the whole-file forward at `exit`."""
    net = load(checkpoint)[0]
    with torch.no_grad():
        return net(torch.from_numpy(x)[None])[exit - 1].estimate[0, 0].numpy()


def assert_close(y: np.ndarray, reference: np.ndarray, peak_share: float = 1e-5) -> None:
    assert y.shape == reference.shape
    np.testing.assert_allclose(y, reference, rtol=0, atol=peak_share * np.abs(reference).max())


@pytest.mark.parametrize("chunk_ms,exit", [("10", 3), ("1.625", 3), ("250", 1)])
def test_file_to_file_equals_the_whole_file_forward(causal_checkpoint, tmp_path, capsys, chunk_ms, exit):
    x = noise(SR + 3)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "out.wav"), "--chunk-ms", chunk_ms, "--exit", str(exit), "--progress"]) == 0
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == SR
    assert_close(y, forward(causal_checkpoint, x, exit))
    err = capsys.readouterr().err
    assert f"exit {exit} of 3 | latency" in err   # the status line, asked for
    assert err.strip().splitlines()[-1].startswith("press stream: 1.00 s of audio at exit")
    assert "GMAC/s" in err and "real-time factor" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_another_rate_is_resampled_in_and_out(causal_checkpoint, tmp_path, capsys):
    """A 16 kHz file through the 8 kHz model: soxr's streaming resampler equals resampling whole."""
    x = noise(16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "out.wav"), "--exit", "3", "--quiet"]) == 0
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    inner = forward(causal_checkpoint, soxr.resample(x, 16000, SR, quality="HQ"))
    back = soxr.resample(inner, SR, 16000, quality="HQ")[:len(x)]
    assert rate == 16000
    assert_close(y, np.pad(back, (0, len(x) - len(back))))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fmt,dtype", [("s16le", "<i2"), ("f32le", "<f4")])
def test_a_pipe_gives_the_file_outputs_samples(causal_checkpoint, tmp_path, fmt, dtype):
    x = noise(SR + 1, seed=1)
    if fmt == "s16le":
        pcm = np.clip(np.rint(x * 32768), -32768, 32767).astype(dtype)
        x = pcm.astype(np.float32) / 32768
    else:
        pcm = x.astype(dtype)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "file.wav"), "--quiet"]) == 0
    wanted = sf.read(tmp_path / "file.wav", dtype="float32")[0]
    torn = b"\x01" if fmt == "s16le" else b""   # a last byte that makes no whole sample
    done = subprocess.run([*PRESS, str(causal_checkpoint), "--input", "-", "--output", "-", "--rate", str(SR),
                           "--format", fmt], input=pcm.tobytes() + torn, capture_output=True, env=ENV,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    got = np.frombuffer(done.stdout, dtype=dtype)
    if fmt == "s16le":
        assert len(got) == len(wanted)
        np.testing.assert_allclose(got / 32768, np.clip(wanted, -1, 32767 / 32768), rtol=0, atol=0.5 / 32768 + 1e-6)
        assert "ignored the last 1 byte(s) of the input" in done.stderr.decode()
    else:
        assert_close(got.astype(np.float32), wanted)
    assert done.stderr.decode().count("\n") == 1   # the summary, nothing else


def test_a_reader_that_goes_away_ends_the_stream_quietly(causal_checkpoint, tmp_path):
    raw = tmp_path / "long.raw"
    (np.tile(noise(SR), 60) * 32767).astype("<i2").tofile(raw)
    with open(raw, "rb") as stdin:
        proc = subprocess.Popen([*PRESS, str(causal_checkpoint), "--input", "-", "--output", "-"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        assert len(proc.stdout.read(1000)) == 1000
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0
    assert err == ""


@pytest.mark.parametrize("make,options,message", [
    (lambda d: sf.write(d / "st.wav", np.stack([noise(SR), noise(SR, 1)], 1), SR), ["--input", "{d}/st.wav"],
     "has 2 channels; choose one with"),
    (lambda d: sf.write(d / "in.wav", noise(SR), SR), ["--input", "{d}/in.wav", "--rate", "16000"],
     "--rate is for raw PCM on stdin and for the microphone: a file's header gives its rate"),
    (lambda d: None, ["--input", "{d}/missing.wav"], "missing.wav: no such file"),
    (lambda d: sf.write(d / "in.wav", noise(SR), SR), ["--input", "{d}/in.wav", "--exit", "4"],
     "has 3 exits; --exit 4 is beyond them"),
    (lambda d: sf.write(d / "in.wav", noise(SR), SR), ["--input", "{d}/in.wav", "--exit", "2", "--catch-up", "hold"],
     "--exit runs every block to one exit; --target-db, --confidence and --catch-up choose the exit per block"),
])
def test_bad_inputs_are_refused_in_one_line(causal_checkpoint, tmp_path, capsys, make, options, message):
    make(tmp_path)
    out = tmp_path / "out" / "clean.wav"
    args = [o.format(d=tmp_path) for o in options]
    assert main(["stream", str(causal_checkpoint), *args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("press stream: error: ") and message in err and err.count("\n") == 1
    assert not out.parent.exists()


def test_a_channel_of_a_stereo_file_streams(causal_checkpoint, tmp_path):
    left, right = noise(SR), noise(SR, 1)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), SR, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "st.wav"), "--output",
                 str(tmp_path / "out.wav"), "--channel", "1", "--exit", "3", "--quiet"]) == 0
    assert_close(sf.read(tmp_path / "out.wav", dtype="float32")[0], forward(causal_checkpoint, right))


def test_a_model_that_is_not_causal_is_refused(tmp_path, capsys):
    sf.write(tmp_path / "in.wav", noise(16000), 16000)
    assert main(["stream", "enhance", "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "o.wav")]) == 2
    assert capsys.readouterr().err == ("press stream: error: enhance is not causal: stream needs a causal model "
                                       "such as enhance-rt; use press enhance for files\n")
    assert main(["stream", "tiny", "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "o.wav")]) == 2
    assert "tiny is a configuration whose trained weights are not shipped" in capsys.readouterr().err


@pytest.mark.parametrize("options", [["--input", "mic", "--output", "{d}/o.wav"],
                                     ["--input", "{d}/in.wav", "--output", "speaker"]])
def test_sound_devices_without_sounddevice_name_the_extra(causal_checkpoint, tmp_path, capsys, monkeypatch,
                                                          options):
    monkeypatch.setitem(sys.modules, "sounddevice", None)   # as if not installed
    sf.write(tmp_path / "in.wav", noise(SR), SR)
    assert main(["stream", str(causal_checkpoint), *[o.format(d=tmp_path) for o in options]]) == 2
    assert capsys.readouterr().err == ('press stream: error: live audio (--input mic, --output speaker) needs '
                                       'sounddevice: pip install "press-sep[stream]"\n')


def fake_sounddevice(recording: np.ndarray, played: list) -> types.ModuleType:
    """A sounddevice whose microphone plays `recording` and then presses Ctrl-C, and whose speaker
    keeps what it is given: the command's device path without a device."""
    class InputStream:
        def __init__(self, samplerate, channels, dtype, blocksize):
            assert (samplerate, channels, dtype) == (SR, 1, "float32")
            self.position = 0

        def read(self, frames):
            chunk = recording[self.position:self.position + frames]
            self.position += frames
            if self.position >= len(recording):
                os.kill(os.getpid(), signal.SIGINT)   # the user ends the recording
            return chunk[:, None], False

        start = stop = abort = close = lambda self: None

    class OutputStream:
        closed = False

        def __init__(self, samplerate, channels, dtype):
            assert (samplerate, channels, dtype) == (SR, 1, "float32")

        def write(self, x):
            played.append(x.copy())
            return False

        start = stop = abort = close = lambda self: None

    return types.SimpleNamespace(InputStream=InputStream, OutputStream=OutputStream, PortAudioError=OSError)


def test_a_microphone_to_a_speaker_streams_until_ctrl_c(causal_checkpoint, monkeypatch, capsys):
    x, played = noise(SR * 2), []   # 200 chunks of 10 ms
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(x, played))
    assert main(["stream", str(causal_checkpoint), "--input", "mic", "--output", "speaker", "--exit", "3"]) == 0
    assert_close(np.concatenate(played), forward(causal_checkpoint, x))
    assert capsys.readouterr().err.startswith("press stream: 2.00 s of audio at exit 3 of 3")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_file_leaves_no_output_and_one_line(causal_checkpoint, tmp_path, signum):
    wav, out = tmp_path / "long.wav", tmp_path / "out"
    sf.write(wav, np.tile(noise(SR * 10), 90), SR)   # 15 minutes
    out.mkdir()
    proc = subprocess.Popen([*PRESS, str(causal_checkpoint), "--input", str(wav), "--output", str(out / "clean.wav"),
                             "--chunk-ms", "100"], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".clean.") for p in out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the stream never started writing"
        time.sleep(0.05)
    time.sleep(0.5)   # well into the file
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signum
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert err.strip().splitlines() == [f"press stream: stopped by {name}; nothing partial was kept"]
    assert list(out.iterdir()) == []


def per_block(checkpoint, x: np.ndarray, exits: list[int]) -> np.ndarray:
    """The speech of the whole-file forward, each likelihood block at its own exit."""
    net = load(checkpoint)[0]
    with torch.no_grad():
        whole = net(torch.from_numpy(x)[None])
    block = net.cfg.block
    return np.concatenate([whole[k - 1].estimate[0, 0, b * block:(b + 1) * block].numpy() for b, k in enumerate(exits)])


def histogram(exits: list[int]) -> str:
    return " ".join(f"{k}: {exits.count(k)} ({exits.count(k) / len(exits):.0%})" for k in (1, 2, 3))


@pytest.fixture(scope="module")
def mixed(causal_checkpoint):
    """An input, and a target and confidence at which the rule sends its blocks to more than one
    exit: (x, t, p, the exit of every block)."""
    x = noise(SR + 3, seed=2)
    net = load(causal_checkpoint)[0]
    with torch.no_grad():
        whole = net(torch.from_numpy(x)[None])
    return next((x, t, p, exits) for p in (0.3, 0.5, 0.7) for t in np.arange(0.0, 6.0, 0.25)
                if len(set(exits := rule_exits(whole, x[None], t, p)[0])) > 1)


@pytest.mark.parametrize("target,confidence,exit", [("-100", "0.5", 1), ("100", "0.99", 3)])
def test_a_target_every_block_meets_or_none_does(causal_checkpoint, tmp_path, capsys, target, confidence, exit):
    x = noise(SR + 3)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "out.wav"), "--target-db", target, "--confidence", confidence, "--progress"]) == 0
    assert_close(sf.read(tmp_path / "out.wav", dtype="float32")[0], forward(causal_checkpoint, x, exit))
    err = capsys.readouterr().err
    # the status line: the first, before any block has ended (one a second in a log)
    assert f"t = {target} dB, p = {confidence}, lazy catch-up | exits - | latency 59.9 ms (block 49.9 + chunk 10.0)" in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith(f"press stream: 1.00 s of audio at t = {target} dB, p = {confidence}, lazy catch-up: ")
    assert f"exits per block {histogram([exit] * 21)}, " in summary and "GMAC/s spent (catch-up 0.0% of it)" in summary


@pytest.mark.parametrize("catch_up", ["lazy", "reset", "hold"])
def test_exits_per_block_follow_the_rule(causal_checkpoint, tmp_path, capsys, mixed, catch_up):
    """Each block takes the exit press.engine's rule gives on the whole-file forward's outputs; with
    lazy catch-up the output is that forward's, each block at its exit, and only lazy spends MACs
    catching up (where a block goes deeper than one before it)."""
    x, target, confidence, exits = mixed
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(causal_checkpoint), "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "out.wav"), "--target-db", str(target), "--confidence", str(confidence),
                 "--catch-up", catch_up, "--chunk-ms", "7"]) == 0
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    summary = capsys.readouterr().err
    if catch_up == "lazy":
        assert_close(y, per_block(causal_checkpoint, x, exits))
        assert f"exits per block {histogram(exits)}, " in summary
        assert "(catch-up 0.0% of it)" not in summary
    else:   # the exits may differ from the first block that follows a skipped one: outputs do
        assert y.shape == x.shape
        assert "(catch-up 0.0% of it)" in summary


@pytest.mark.parametrize("stored,shown", [({"target_db": -100, "confidence": 0.5}, "t = -100 dB, p = 0.5"),
                                          (None, "t = 20 dB, p = 0.9")])
def test_the_default_is_the_models_operating_point(tmp_path, capsys, stored, shown):
    """Neither --exit nor a target: the exit per block at the operating point the checkpoint stores
    (press info shows it), else the generic one."""
    torch.manual_seed(0)
    cfg = load_config("tiny", ["model.causal=true", "model.sources=[speech,noise]"])
    path = tmp_path / "card.safetensors"
    save_model(path, random_synthesis(PressNet(model_config(cfg)).eval(), 0.3), cfg,
               extra=None if stored is None else {"operating_point": stored})
    x = noise(SR)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(path), "--input", str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav"),
                 "--target-db" if stored is None else "--chunk-ms", "-100" if stored is None else "10"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"press stream: 1.00 s of audio at {shown if stored else 't = -100 dB, p = 0.9'}, lazy ")
    assert f"exits per block {histogram([1] * 20)}" in err   # -100 dB: every block leaves at exit 1
    assert_close(sf.read(tmp_path / "out.wav", dtype="float32")[0], forward(path, x, 1))


def test_the_status_line_shows_the_exits_of_the_last_blocks(capsys, monkeypatch):
    monkeypatch.setattr("press.commands.stream.time.monotonic", iter(range(0, 1000, 2)).__next__)
    meter = Meter(True, "t = 20 dB, p = 0.9, lazy catch-up", ("block", 0.0499), 0.01, per_block=True)
    meter.chunk(0.01, 0.001, 0.0, [])
    meter.chunk(0.01, 0.001, 0.0, [1, 3])
    for k in range(14):
        meter.chunk(0.01, 0.001, 0.0, [k % 3 + 1])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("t = 20 dB, p = 0.9, lazy catch-up | exits - | latency 59.9 ms (block 49.9 + chunk 10.0)")
    assert lines[1].startswith("t = 20 dB, p = 0.9, lazy catch-up | exits 1 3 | ")
    assert lines[-1].startswith("t = 20 dB, p = 0.9, lazy catch-up | exits 3 1 2 3 1 2 3 1 2 3 1 2 | ")   # the last 12


@pytest.fixture(scope="module")
def stream_export(causal_checkpoint, tmp_path_factory):
    """`press export` of the causal checkpoint: its streaming graphs."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("export")
    assert main(["export", str(causal_checkpoint), str(out)]) == 0
    return out / "manifest.json"


def test_the_onnx_backend_in_a_pipe_gives_the_whole_file_forward(causal_checkpoint, stream_export, capsys):
    """raw PCM through onnxruntime at a fixed exit: the torch whole-file forward's samples."""
    x = noise(SR + 3, seed=4)
    done = subprocess.run([*PRESS, str(stream_export), "--backend", "onnx", "--input", "-", "--output", "-",
                           "--rate", str(SR), "--format", "f32le", "--exit", "2"], input=x.astype("<f4").tobytes(),
                          capture_output=True, env=ENV, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert_close(np.frombuffer(done.stdout, dtype="<f4"), forward(causal_checkpoint, x, 2))
    summary = done.stderr.decode()
    assert "exit 2 of 3 (onnx)" in summary and "exits per block 1: 0 (0%) 2: 21 (100%) 3: 0 (0%)" in summary


def test_the_onnx_backend_decides_each_block_as_torch_does(causal_checkpoint, stream_export, mixed, tmp_path,
                                                           capsys):
    """Exits per block with lazy catch-up through onnxruntime: each whole block at the exit the rule
    gives, the whole-file forward's samples there (the last, partial block's (alpha, beta) cover
    its zero-padded block, so its exit may differ)."""
    x, target, confidence, exits = mixed
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert main(["stream", str(stream_export), "--backend", "onnx", "--input", str(tmp_path / "in.wav"), "--output",
                 str(tmp_path / "out.wav"), "--target-db", str(target), "--confidence", str(confidence)]) == 0
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    whole_blocks = len(x) // 400 * 400
    assert_close(y[:whole_blocks], per_block(causal_checkpoint, x, exits)[:whole_blocks])
    assert y.shape == x.shape


def test_the_onnx_backend_refuses_a_segment_export(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = load_config("tiny", ["model.sources=[speech,noise]"])
    save_model(tmp_path / "offline.safetensors", PressNet(model_config(cfg)).eval(), cfg)
    assert main(["export", str(tmp_path / "offline.safetensors"), str(tmp_path / "graphs"), "--no-budget"]) == 0
    assert main(["stream", str(tmp_path / "graphs"), "--backend", "onnx", "--input", "x.wav", "--output",
                 str(tmp_path / "y.wav")]) == 2
    assert "an export of segment graphs; press stream needs a causal model's streaming export" in \
        capsys.readouterr().err
