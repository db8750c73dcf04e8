"""What users do to a command: wrong numbers, unwritable or full folders, clashing names, SIGTERM and
Ctrl-C in the middle of a write. Nothing partial may remain and every failure is one clear line."""

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import soundfile as sf

from press.cli import main
from press.commands.separate import output_stems
from press.errors import PressError
from press.io.streaming import SourceWriter

SR = 8000


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("option,value,message", [
    ("--target-db", "nan", "expected a number in [-100, 100], got nan"),
    ("--target-db", "inf", "got inf"),
    ("--target-db", "1e9", "got 1e9"),
    ("--confidence", "1", "expected a number in (0, 1), got 1"),
    ("--confidence", "0", "got 0"),
    ("--confidence", "x", "got 'x'"),
    ("--segment", "0", "expected a number > 0, got 0"),
    ("--context", "-1", "expected a number >= 0, got -1"),
    ("--budget", "0", "got 0"),
    ("--exit", "0", "expected an integer >= 1, got 0"),
    ("--exit", "1.5", "got '1.5'"),
    ("--threads", "0", "got 0"),
])
def test_numbers_outside_their_range_are_refused_before_any_work(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        main(["separate", "default", "x.wav", "--out", str(tmp_path / "o"), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and message in err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    wav = tmp_path / "x.wav"
    sf.write(wav, noise(1.0), SR)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr("press.api.load", no_model)
    for command in (["separate", "default"], ["enhance"]):
        assert main([*command, str(wav), "--out", str(tmp_path / "o" / "deeper")]) == 2
        assert "cannot write to the output folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()   # the probe's folders are removed again


def test_a_full_disk_fails_the_input_cleanly(tmp_path, monkeypatch):
    calls = []

    def full(self, data):
        calls.append(len(data))
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    with pytest.raises(PressError, match="No space left on device.*nothing of it was kept"):
        with SourceWriter([tmp_path / "a_s1.wav", tmp_path / "a_s2.wav"], SR, SR) as writer:
            for start in range(0, 4 * SR, SR):
                writer(start, np.zeros((2, SR), np.float32))
            writer.commit()
    assert os.listdir(tmp_path) == []   # no output, no hidden temporary


def test_inputs_with_one_name_get_distinct_outputs(tiny_checkpoint, tmp_path):
    for folder, seed in (("a", 0), ("b", 1)):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "x.wav", noise(1.0, seed), SR)
    out = tmp_path / "out"
    assert main(["separate", str(tiny_checkpoint), str(tmp_path / "a/x.wav"), str(tmp_path / "b/x.wav"),
                 "--out", str(out)]) == 0
    a, b = sf.read(out / "a_x_s1.wav")[0], sf.read(out / "b_x_s1.wav")[0]
    assert not np.allclose(a, b)
    assert sorted(p.name for p in out.iterdir()) == ["a_x.json", "a_x_s1.wav", "a_x_s2.wav",
                                                     "b_x.json", "b_x_s1.wav", "b_x_s2.wav"]


def test_output_stems_widen_only_where_names_clash():
    assert output_stems(["a/x.wav", "b/x.wav", "c/y.wav"]) == ["a_x", "b_x", "y"]
    assert output_stems(["d/a/x.wav", "e/a/x.wav"]) == ["d_a_x", "e_a_x"]
    assert output_stems(["a/x.wav", "a/x.flac"]) == ["x_wav", "x_flac"]
    assert output_stems(["x.wav", "./x.wav"]) == ["x", "x"]   # one file given twice: one name


def test_stereo_message_offers_only_choices_the_command_takes(tiny_checkpoint, tmp_path, capsys):
    wav = tmp_path / "st.wav"
    sf.write(wav, np.stack([noise(1.0), noise(1.0, 1)], 1), SR)
    assert main(["separate", str(tiny_checkpoint), str(wav), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--channel mix" in err and '"all"' not in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_write_leaves_nothing_and_one_line(tiny_checkpoint, tmp_path, signum):
    wav, out = tmp_path / "long.wav", tmp_path / "out"
    sf.write(wav, noise(900.0), SR)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from press.cli import main; sys.exit(main())",
                             "separate", str(tiny_checkpoint), str(wav), "--out", str(out), "--exit", "3"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not (out.exists() and any(p.name.startswith(".long_s") for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the separation never started writing"
        time.sleep(0.05)
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signum
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"press separate: stopped by {signal.Signals(signum).name}; "
                                            "nothing partial was kept")
    assert list(out.iterdir()) == []


def test_an_mp3_input_separates_without_decoder_chatter(tiny_checkpoint, tmp_path, capfd):
    mp3 = tmp_path / "call.mp3"
    sf.write(mp3, noise(3.0), SR, format="MP3")
    capfd.readouterr()
    assert main(["separate", str(tiny_checkpoint), str(mp3), "--out", str(tmp_path / "o")]) == 0
    err = capfd.readouterr().err
    assert "libmpg123" not in err and "error" not in err
    assert sf.info(tmp_path / "o" / "call_s1.wav").frames == sf.info(mp3).frames


def test_integer_outputs_are_clipped_not_wrapped(tmp_path):
    x = np.linspace(-2.0, 2.0, SR, dtype=np.float32)
    with SourceWriter([tmp_path / "a.wav"], SR, SR, subtype="PCM_16") as writer:
        writer(0, x[None])
        writer.commit()
    y, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sf.info(tmp_path / "a.wav").subtype == "PCM_16"
    assert np.all(np.sign(y[np.abs(x) > 0.01]) == np.sign(x[np.abs(x) > 0.01]))   # no wrap-around
    assert y.max() >= 0.999 and y.min() <= -0.999


def test_a_negative_number_in_exponent_form_is_read_as_a_number(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["separate", "default", "x.wav", "--out", str(tmp_path / "o"), "--target-db", "-1e9"])
    assert "expected a number in [-100, 100], got -1e9" in capsys.readouterr().err
