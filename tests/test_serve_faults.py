"""`press serve` stopped by SIGTERM or Ctrl-C (SIGINT), as a process: it exits with the shell's status
for the signal, prints one line, no traceback, and leaves no `press-serve-*` folder (Gradio's
uploads included) in the temporary folder it was given, also when a separation was running.

Runs `python -m press.cli serve` on the tiny model with random weights on a free localhost port,
with TMPDIR pointing into the test's folder and the compiled kernels off (start-up in seconds).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason='the page needs gradio: pip install -e ".[web]"')
httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from press.model import PressNet, load_config, model_config
    from press.model.checkpoint import save_model

    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(checkpoint: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """The server, once its page answers; (process, its URL)."""
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "PRESS_KERNELS": "0", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "press.cli", "serve", str(checkpoint), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read()
        try:
            httpx.get(url, timeout=2)
            assert list(tmp.glob("press-serve-*")), "the server's folder is where TMPDIR says"
            return server, url
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    pytest.fail("press serve did not answer within 120 s")


def _stop(server: subprocess.Popen, signum: int) -> tuple[int, list[str]]:
    server.send_signal(signum)
    try:
        _, err = server.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail("press serve did not stop within 120 s of the signal")
    return server.returncode, err.splitlines()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_with_one_line_and_removes_its_folder(checkpoint, tmp_path, signum):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server, _ = _start(checkpoint, tmp)
    code, lines = _stop(server, signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum, lines
    assert lines == [f"press serve: stopped by {name}; nothing partial was kept"]
    assert not list(tmp.glob("press-serve-*"))


def test_sigterm_during_a_separation_stops_it_and_removes_every_file(checkpoint, tmp_path):
    """The running separation is refused at its next step (its client gets that message) and the
    process exits cleanly: ending it with a worker inside torch would abort it instead."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    audio = tmp_path / "long.wav"
    sf.write(str(audio), np.random.default_rng(0).standard_normal(8000 * 20).astype(np.float32) * 0.1, 8000)
    server, url = _start(checkpoint, tmp)
    with httpx.Client(base_url=url, timeout=60) as client:
        path = client.post("/gradio_api/upload", files={"files": ("long.wav", audio.read_bytes())}).json()[0]
        event = client.post("/gradio_api/call/separate", json={"data": [
            {"path": path, "meta": {"_type": "gradio.FileData"}}, "quality target", 5.0, 0.5, 3, 1.1, "ask"]})
        sessions = next(tmp.glob("press-serve-*")) / "sessions"
        deadline = time.monotonic() + 60
        while not any(sessions.glob("*/*")) and time.monotonic() < deadline:   # its request folder
            time.sleep(0.1)
        assert event.status_code == 200 and any(sessions.glob("*/*"))
        code, lines = _stop(server, signal.SIGTERM)
    assert code == 143, lines
    assert lines[-1] == "press serve: stopped by SIGTERM; nothing partial was kept"
    assert set(lines[:-1]) <= {"press serve: stopping the running separation at its next step "
                               "(again to end at once)"}, lines
    assert not list(tmp.glob("press-serve-*"))
