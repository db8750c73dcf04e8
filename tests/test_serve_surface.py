"""What `press serve`'s page lets a client reach, over HTTP against the page running in this process:
Gradio's file routes serve nothing outside its own upload folder (no /etc/passwd, no `..`, no
absolute path into the sessions' folders), an API call cannot name a server file as its input,
uploads that are too large, empty, not audio or oddly named are refused with a message or stored
safely, a full queue answers "busy" at once, and two sessions get their own answers and folders.

Uses the tiny model with random weights and Gradio's documented HTTP API (/gradio_api/upload, then
/gradio_api/call/separate); a separation of 1 s takes about a second.
"""

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason='the page needs gradio: pip install -e ".[web]"')
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")   # Gradio's own deprecations

MAX_BYTES = 200_000
DEFAULTS = ["quality target", 5.0, 0.5, 3, 1.1, "ask"]      # the page's fields after the audio


class Gated:
    """The tiny model, whose separations wait for `gate`: holds the one worker busy on demand."""

    def __init__(self, model) -> None:
        self._model = model
        self.entered, self.gate = threading.Event(), threading.Event()
        self.gate.set()

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def separate_file(self, *args, **kwargs):
        self.entered.set()
        self.gate.wait(60)
        return self._model.separate_file(*args, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from press.api import load
    from press.model import PressNet, load_config, model_config
    from press.model.checkpoint import save_model
    from press.web.app import start
    from press.web.page import Capacity, Limits, WorkArea

    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    model = Gated(load(path, device="cpu"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = WorkArea(tmp_path_factory.mktemp("serve"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(work.cache))                  # start() sets it; restored after
        page = start(model, work, "127.0.0.1", port, Limits(max_megabytes=MAX_BYTES / 1e6), Capacity(1, 1))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client, work, model
        page.close(verbose=False)
        work.close()


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("audio") / "one.wav"
    sf.write(str(path), np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 8000)
    return path.read_bytes()


def upload(client, name: str, data: bytes) -> httpx.Response:
    return client.post("/gradio_api/upload", files={"files": (name, data)})


def submit(client, path: str) -> str:
    r = client.post("/gradio_api/call/separate",
                    json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, *DEFAULTS]})
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


def outcome(client, event_id: str) -> tuple[str, object]:
    """("complete", outputs) or ("error", message), read from the call's event stream."""
    text = client.get(f"/gradio_api/call/separate/{event_id}").text
    event = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")
                 and line != "event: heartbeat")
    data = json.loads(text.split(f"event: {event}\ndata: ", 1)[1].split("\n", 1)[0])
    return event, (data["error"] if event == "error" else data)


def separate(client, name: str, data: bytes) -> tuple[str, object]:
    r = upload(client, name, data)
    assert r.status_code == 200, r.text
    return outcome(client, submit(client, r.json()[0]))


def report(outputs: list) -> dict:
    path = next(f["path"] for f in outputs[-1] if f["path"].endswith(".json"))
    return json.loads(Path(path).read_text())


def test_file_routes_serve_nothing_outside_gradios_upload_folder(server, wav):
    client, work, _ = server
    inside = work.sessions / "someone" / "x"
    inside.mkdir(parents=True)
    (inside / "secret.wav").write_bytes(wav)
    (work.root / "secret.txt").write_text("secret")
    cache = work.cache
    for path in ["/etc/passwd", "//etc/passwd", "../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                 "..%2f..%2f..%2fetc%2fpasswd", f"{cache}/../../../../etc/passwd", f"{cache}/../secret.txt",
                 str(inside / "secret.wav"), str(work.root / "secret.txt"), str(Path.cwd() / "pyproject.toml")]:
        for route in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
            r = client.get(route + path)
            assert r.status_code in (403, 404), (route + path, r.status_code)
            assert "root:x:0:0" not in r.text and r.text != "secret" and r.content != wav
    r = upload(client, "one.wav", wav)
    served = client.get("/gradio_api/file=" + r.json()[0])      # the control: an upload is served back
    assert r.status_code == 200 and served.status_code == 200 and served.content == wav


def test_an_api_call_cannot_name_a_server_file_as_its_input(server, wav):
    client, work, _ = server
    (work.sessions / "other").mkdir(parents=True, exist_ok=True)
    theirs = work.sessions / "other" / "theirs.wav"
    theirs.write_bytes(wav)
    for path in ("/etc/passwd", str(theirs), f"{work.cache}/../sessions/other/theirs.wav"):
        event, message = outcome(client, submit(client, path))
        assert event == "error" and "not uploaded by a user" in message, (path, message)


def test_uploads_over_the_limit_are_refused_with_a_message(server):
    client, _, _ = server
    r = upload(client, "big.wav", b"\0" * (MAX_BYTES + 1))
    assert r.status_code == 413 and f"maximum allowed size of {MAX_BYTES} bytes" in r.text


def test_empty_and_non_audio_uploads_get_a_message(server):
    client, _, _ = server
    assert separate(client, "zero.wav", b"") == ("error", "zero.wav: the file is empty (0 bytes); expected audio")
    event, message = separate(client, "notes.wav", b"a text file, renamed\n")
    assert event == "error" and message.startswith("notes.wav: not a readable audio file")
    assert "/" not in message                                   # no server path in the message


@pytest.mark.parametrize("name", ["../../evil.wav", "/etc/evil.wav", "..\\..\\evil.wav", "a\x07b\nc\x1b[31m.wav",
                                  "x" * 296 + ".wav", "<img src=x onerror=alert(1)>.wav"])
def test_oddly_named_uploads_are_stored_inside_the_upload_folder_and_separated(server, wav, name):
    client, work, _ = server
    r = upload(client, name, wav)
    assert r.status_code == 200, r.text
    stored = Path(r.json()[0])
    assert stored.resolve().parent.parent == work.cache.resolve()
    assert len(stored.name.encode()) <= 255 and not any(c in stored.name for c in "/\\<>\x00\x07\n\x1b")
    event, outputs = outcome(client, submit(client, str(stored)))
    assert event == "complete", outputs
    assert report(outputs)["input"] == stored.name
    assert all(Path(f["path"]).resolve().is_relative_to(work.cache.resolve()) for f in outputs[-1])


def test_a_dotdot_name_is_refused(server, wav):
    client, _, _ = server
    r = upload(client, "..", wav)
    assert r.status_code == 400 and "Invalid file name" in r.text


def test_a_full_queue_answers_busy_at_once(server, wav):
    """One separation running, one waiting (Capacity(1, 1)): the third is told at once."""
    client, work, model = server
    path = upload(client, "one.wav", wav).json()[0]
    model.gate.clear()
    model.entered.clear()
    try:
        running = submit(client, path)
        assert model.entered.wait(30)
        waiting = submit(client, path)
        t = time.perf_counter()
        r = client.post("/gradio_api/call/separate",
                        json={"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, *DEFAULTS]})
        assert time.perf_counter() - t < 5
        assert r.status_code == 503 and "Queue is full" in r.text
    finally:
        model.gate.set()
    assert outcome(client, running)[0] == "complete" and outcome(client, waiting)[0] == "complete"


def test_two_sessions_get_their_own_answers_and_folders(server, wav, tmp_path):
    client, work, _ = server
    noise = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    other = tmp_path / "b.wav"
    sf.write(str(other), noise, 8000)
    answers = {}
    for name, data in (("alice.wav", wav), ("bob.wav", other.read_bytes())):
        event, outputs = separate(client, name, data)     # each call is a session of its own
        assert event == "complete"
        answers[name] = outputs
    for name, outputs in answers.items():
        assert report(outputs)["input"] == name
        assert all(Path(f["path"]).name.startswith(Path(name).stem) for f in outputs[-1])
    owners = {}
    for folder in work.sessions.iterdir():
        for f in folder.rglob("*.json"):
            owners.setdefault(json.loads(f.read_text())["input"], set()).add(folder.name)
    assert len(owners["alice.wav"]) == 1 and owners["alice.wav"] != owners["bob.wav"]
