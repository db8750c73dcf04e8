"""Audio I/O: formats, channel handling, resampling, atomic writes and every bad-file error."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from press.errors import PressError
from press.io.audio import load_audio, resample, write_audio


def tone(sr: int = 8000, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".wav", "FLOAT"), (".flac", "PCM_24"), (".ogg", None)])
def test_formats_read_as_float32_mono(tmp_path, suffix, subtype):
    x = tone()
    path = tmp_path / f"a{suffix}"
    sf.write(path, x, 8000, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == 8000 and y.dtype == np.float32 and y.shape == x.shape
    tol = 0.1 if suffix == ".ogg" else 1e-3
    assert np.max(np.abs(y - x)) < tol


def test_multichannel_requires_explicit_choice(tmp_path):
    stereo = np.stack([tone(freq=300), tone(freq=500)], axis=1)
    path = tmp_path / "st.wav"
    sf.write(path, stereo, 8000, subtype="FLOAT")
    with pytest.raises(PressError, match='channel="mix"'):
        load_audio(path)
    left, _ = load_audio(path, channel=0)
    right, _ = load_audio(path, channel=-1)
    mix, _ = load_audio(path, channel="mix")
    both, _ = load_audio(path, channel="all")
    assert np.allclose(left, stereo[:, 0]) and np.allclose(right, stereo[:, 1])
    assert np.allclose(mix, stereo.mean(1), atol=1e-6)
    assert both.shape == (2, stereo.shape[0])
    with pytest.raises(PressError, match="2 channel"):
        load_audio(path, channel=2)
    with pytest.raises(PressError, match="unknown channel"):
        load_audio(path, channel="left")


def test_resampling_on_load_and_standalone(tmp_path):
    path = tmp_path / "a16.wav"
    sf.write(path, tone(sr=16000, seconds=1.0), 16000)
    y, sr = load_audio(path, sample_rate=8000)
    assert sr == 8000 and len(y) == 8000 and y.dtype == np.float32
    # A 440 Hz tone keeps its frequency: peak of the spectrum at 440 Hz.
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 8000 / len(y) - 440) < 2
    two = resample(np.stack([tone(), tone()]), 8000, 16000)
    assert two.shape == (2, 8000) and two.dtype == np.float32
    assert np.array_equal(resample(tone(), 8000, 16000), resample(tone(), 8000, 16000))


def test_missing_directory_and_not_audio(tmp_path):
    with pytest.raises(PressError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(PressError, match="directory"):
        load_audio(tmp_path)
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(PressError, match="not a readable audio file"):
        load_audio(bad)


def test_empty_truncated_and_nonfinite(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000)
    with pytest.raises(PressError, match="empty"):
        load_audio(empty)
    full = tmp_path / "full.wav"
    sf.write(full, tone(), 8000)
    data = full.read_bytes()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(PressError, match="truncated"):
        load_audio(trunc)
    flac = tmp_path / "full.flac"
    sf.write(flac, np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 8000)
    tflac = tmp_path / "trunc.flac"
    tflac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(PressError, match="truncated"):
        load_audio(tflac)
    nan = tmp_path / "nan.wav"
    x = tone()
    x[10] = np.nan
    sf.write(nan, x, 8000, subtype="FLOAT")
    with pytest.raises(PressError, match="NaN or Inf"):
        load_audio(nan)


def test_write_is_atomic_and_roundtrips(tmp_path):
    x = np.stack([tone(), -tone()])
    out = write_audio(tmp_path / "sub" / "o.flac", x, 8000)
    y, sr = load_audio(out, channel="all")
    assert sr == 8000 and np.max(np.abs(y - x)) < 1e-4
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.flac"]  # no temp file left
    with pytest.raises(PressError, match="NaN or Inf"):
        write_audio(tmp_path / "bad.wav", np.array([0.0, np.inf]), 8000)
    assert not (tmp_path / "bad.wav").exists()
    with pytest.raises(PressError, match="unknown audio format"):
        write_audio(tmp_path / "o.xyz", tone(), 8000)
