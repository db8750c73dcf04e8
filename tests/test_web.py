"""`press serve`'s page functions (press.web.page), without a browser; the page in a real browser
is tests/test_web_browser.py."""

import json

import numpy as np
import pytest
import soundfile as sf

from press.api import load
from press.errors import PressError
from press.web.page import (
    Limits,
    WorkArea,
    builtin_labels,
    parse_channel,
    policy_options,
    separate,
    summarize,
    write_builtin,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from press.model import PressNet, load_config, model_config
    from press.model.checkpoint import save_model

    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return load(checkpoint, device="cpu")


def _wav(path, x, sr=8000):
    sf.write(str(path), x, sr, subtype="FLOAT")
    return path


def test_limits_refuse_large_and_long_files_with_the_option_to_raise_them(tmp_path):
    wav = _wav(tmp_path / "long.wav", np.zeros(8000 * 3, np.float32))
    Limits(max_megabytes=1, max_seconds=5).check(wav)
    with pytest.raises(PressError, match=r"long.wav: 3.0 s is over .* limit of 2 s .*--max-seconds"):
        Limits(max_seconds=2).check(wav)
    with pytest.raises(PressError, match=r"long.wav: 0.1 MB is over .* 0.05 MB .*--max-upload-mb"):
        Limits(max_megabytes=0.05).check(wav)
    with pytest.raises(PressError, match="no audio given"):
        Limits().check(tmp_path / "missing.wav")
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(PressError, match=r"zero.wav: the file is empty \(0 bytes\)"):
        Limits().check(tmp_path / "zero.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    Limits().check(tmp_path / "junk.wav")      # unreadable: load_audio's message, see below


def test_channel_and_mode_choices():
    assert parse_channel("ask") is None and parse_channel(None) is None
    assert parse_channel("mix") == "mix" and parse_channel("1") == 1
    with pytest.raises(PressError, match="unknown channel choice"):
        parse_channel("left")
    assert policy_options("quality target", 5, 0.5, 2, 1.0) == {"target_db": 5.0, "confidence": 0.5}
    assert policy_options("fixed exit", 5, 0.5, 2.0, None)["exit"] == 2
    assert policy_options("compute budget", 5, 0.5, None, 1.1)["budget"] == 1.1
    with pytest.raises(PressError, match="unknown mode"):
        policy_options("fast", 5, 0.5, None, None)
    with pytest.raises(PressError, match="GMAC/s"):
        policy_options("compute budget", 5, 0.5, None, None)


def test_work_area_keeps_sessions_apart_and_cleans_up(tmp_path):
    work = WorkArea(tmp_path)
    with work.request("alice") as a1:
        (a1 / "x.wav").write_bytes(b"1")
    with work.request("bob") as b1:
        pass
    assert a1.parent != b1.parent and not any(b1.iterdir())
    with work.request("alice") as a2:            # alice's earlier request folder goes
        pass
    assert not a1.exists() and a2.exists() and b1.exists()
    # a session name (the browser chooses it) cannot leave the sessions' folder nor reach Gradio's
    for name in ("../../etc", "..", "gradio", "../gradio", "x" * 300, "a\x00b\nc"):
        with work.request(name) as folder:
            assert folder.parent.parent == work.sessions, name
    work.end("..")
    assert work.root.exists() and b1.exists()
    work.end("alice")
    assert not a2.exists() and not a2.parent.exists() and b1.exists()
    work.close()
    assert not work.root.exists()


def test_a_sessions_running_request_keeps_its_folder(tmp_path):
    """A built-in mixture picked while the session's separation runs leaves that separation's folder."""
    work = WorkArea(tmp_path)
    with work.request("alice") as running:
        with work.request("alice") as picked:
            pass
        with work.request("alice"):
            assert running.exists() and not picked.exists()
        work.end("alice")
        assert running.exists()
    work.end("alice")
    assert not running.parent.exists()
    work.close()


def test_a_stopping_work_area_refuses_new_requests_and_the_next_step_of_running_ones(tmp_path):
    import threading

    work = WorkArea(tmp_path)
    started, done = threading.Event(), []

    def request() -> None:
        with work.request("alice"):
            started.set()
            while True:
                try:
                    work.check()                       # a separation's step boundary
                except PressError as err:
                    done.append(str(err))
                    return

    t = threading.Thread(target=request)
    t.start()
    started.wait(10)
    assert work.stop() == 1
    work.wait_idle()
    t.join(10)
    assert done == ["the server is stopping; try again when it is back"]
    with pytest.raises(PressError, match="stopping"):
        with work.request("bob"):
            pass
    assert work.stop() == 0
    work.close()


def test_capacity_and_the_warning_for_an_open_host():
    from press.web.page import Capacity, exposure_warning

    assert Capacity().describe() == ("1 separation at a time, up to 4 waiting; more are told the server is busy "
                                     "(--concurrency, --queue-size)")
    assert Capacity(2, 8).describe().startswith("2 separations at a time, up to 8 waiting")
    for host in ("127.0.0.1", "localhost", "LOCALHOST", "::1", "[::1]"):
        assert exposure_warning(host) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org", "127.0.0.2"):
        assert "opens this page to other machines" in exposure_warning(host), host


def test_builtin_mixture_is_written_as_a_wav(tmp_path):
    path = write_builtin(builtin_labels()[0], 8000, tmp_path)
    x, sr = sf.read(str(path))
    assert sr == 8000 and x.ndim == 1 and len(x) > 8000
    with pytest.raises(PressError, match="unknown built-in mixture"):
        write_builtin("nope", 8000, tmp_path)


def test_separate_writes_players_figures_and_report(model, tmp_path):
    mix = write_builtin(builtin_labels()[0], 8000, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    steps = []
    res = separate(model, mix, out, Limits(), target_db=5, confidence=0.5, progress=lambda f, t: steps.append(f))
    assert steps[0] == 0.0 and len(res.sources) == 2 and all(p.parent == out for p in res.sources)
    assert [sf.info(str(p)).frames for p in res.sources] == [sf.info(str(mix)).frames] * 2
    assert res.exit_map.read_bytes()[:4] == b"\x89PNG" and res.bands_plot.read_bytes()[:4] == b"\x89PNG"
    report = json.loads(res.report_path.read_text())
    assert report["input"] == mix.name and report["outputs"] == [p.name for p in res.sources]
    assert all(1 <= b["exit"] <= 3 for b in report["blocks"])
    assert "GMAC/s" in res.summary and "every segment to exit 3" in res.summary
    fixed = separate(model, mix, out, Limits(), mode="fixed exit", exit=1)
    assert fixed.report["policy"] == "static" and fixed.report["exit_histogram"][0] > 0
    assert "**exit 1**" in fixed.summary


def test_bad_uploads_get_the_command_lines_messages_without_server_paths(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cases = {
        "empty.wav": (np.zeros(0, np.float32), "empty audio file"),
        "nan.wav": (np.full(800, np.nan, np.float32), "NaN or Inf"),
        "stereo.wav": (np.zeros((8000, 2), np.float32), r"has 2 channels; choose one"),
    }
    for name, (x, message) in cases.items():
        path = _wav(tmp_path / name, x)
        with pytest.raises(PressError, match=message) as err:
            separate(model, path, out, Limits())
        assert str(tmp_path) not in str(err.value) and name in str(err.value)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(PressError, match="junk.wav: not a readable audio file"):
        separate(model, tmp_path / "junk.wav", out, Limits())
    stereo = _wav(tmp_path / "stereo2.wav", np.random.default_rng(0).standard_normal((8000, 2)).astype(np.float32) * .1)
    res = separate(model, stereo, out, Limits(), channel="1")
    assert sf.info(str(res.mixture)).channels == 1 and sf.info(str(res.sources[0])).channels == 1
    with pytest.raises(PressError, match="channel 3 requested but it has 2"):
        separate(model, stereo, out, Limits(), channel="3")


def test_summary_states_compute_against_the_last_exit():
    report = {"policy": "dynamic", "target_db": 5.0, "confidence": 0.5, "seconds": 10.0, "gmacs_per_second": 0.9,
              "last_exit_gmacs_per_second": 1.8, "saving": 0.5, "exit_histogram": [3, 0, 1], "note": None,
              "blocks": []}
    text = summarize(report, 3)
    assert "| spent | 0.900 |" in text and "50% (50% saved)" in text and "exit 1: 3, exit 3: 1" in text


def test_serve_command_needs_positive_limits(capsys):
    from press.cli import main

    assert main(["serve", "--max-seconds", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["serve", "--band-seconds", "-1"]) == 2
    assert "--band-seconds must be 0 or more" in capsys.readouterr().err
    assert main(["serve", "--queue-size", "0"]) == 2
    assert "--concurrency and --queue-size must be at least 1" in capsys.readouterr().err


def test_serve_command_states_its_capacity_warns_for_an_open_host_and_cleans_up(checkpoint, tmp_path,
                                                                                monkeypatch, capsys):
    """The command's path without a server: press.web.app.serve replaced by a recorder."""
    import tempfile

    pytest.importorskip("gradio", reason='the page needs gradio: pip install -e ".[web]"')
    import press.web.app
    from press.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "unused"))      # the command sets it; restored after
    calls = []
    monkeypatch.setattr(press.web.app, "serve", lambda *a: calls.append(a))
    assert main(["serve", str(checkpoint), "--host", "0.0.0.0", "--port", "8001", "--queue-size", "6",
                 "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "--host 0.0.0.0 opens this page to other machines" in err and "no login and no TLS" in err
    assert "1 separation at a time, up to 6 waiting" in out and "on http://0.0.0.0:8001" in out
    model_, work, host, port, limits, capacity = calls[0]
    assert (host, port, capacity.queue_size) == ("0.0.0.0", 8001, 6)
    assert work.cache.parent == work.root and not work.root.exists()     # removed when serve returned
    assert not list((tmp_path / "tmp").iterdir())


def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch, capsys):
    import sys

    from press.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)          # as if gradio were not installed
    monkeypatch.delitem(sys.modules, "press.web.app", raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", "unused")             # the command sets it; restored after
    assert main(["serve"]) == 2
    assert 'pip install "press-sep[web]"' in capsys.readouterr().err


def test_page_builds_with_a_player_per_speaker_and_offline_settings(model, tmp_path):
    pytest.importorskip("gradio", reason='the page needs gradio: pip install -e ".[web]"')
    import os

    from press.web.app import build

    page = build(model, Limits(), WorkArea(tmp_path))
    ids = {b.elem_id for b in page.blocks.values() if getattr(b, "elem_id", None)}
    assert {"press-input", "press-run", "press-speaker-1", "press-speaker-2", "press-exit-map", "press-bands"} <= ids
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and page.analytics_enabled is False


def test_worst_speaker_bands_keep_one_speakers_band():
    from press.evaluation.bands import worst_speaker_bands

    q = np.array([[[0.0, 5.0], [1.0, 2.0]],       # 10 %: speaker 1, speaker 2 over two blocks
                  [[4.0, 9.0], [3.0, 10.0]],      # median
                  [[8.0, 12.0], [30.0, 11.0]]])   # 90 %
    np.testing.assert_array_equal(worst_speaker_bands(q), [[1.0, 5.0], [3.0, 9.0], [30.0, 12.0]])


def test_separate_shows_every_exits_bands_and_skips_them_for_long_files(model, tmp_path):
    from press.evaluation.bands import BAND_QUANTILES

    mix = write_builtin(builtin_labels()[0], 8000, tmp_path)
    res = separate(model, mix, tmp_path, Limits(), target_db=5, confidence=0.5)
    q = res.bands.quantiles
    assert q.shape == (len(BAND_QUANTILES), 3, len(res.report["blocks"])) and np.isfinite(q).all()
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
    assert res.bands_plot.name.endswith("_bands.png") and res.bands_plot.read_bytes()[:4] == b"\x89PNG"
    assert res.bands.block_seconds == pytest.approx(res.report["blocks"][0]["end"] - res.report["blocks"][0]["start"])
    skipped = separate(model, mix, tmp_path, Limits(band_seconds=1), target_db=5, confidence=0.5)
    assert skipped.bands is None and skipped.bands_plot.name.endswith("_confidence.png")
    assert "bands per exit skipped" in skipped.summary and "--band-seconds" in skipped.summary
