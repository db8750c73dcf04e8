"""`press serve` under load: concurrent clients upload and separate 10-60 s files for a bounded time.

    nice -n 19 python benchmarks/serve_load.py [--model default] [--clients 8] [--minutes 2]
        [--timeout 120] [--serve-args "--queue-size 4"]

Starts `press serve` on 127.0.0.1 (a free port) with a temporary folder of its own (TMPDIR), so that
what it leaves behind can be counted; the server inherits this script's niceness. Writes mixtures of
10 to 60 s (built-in test mixtures end to end), then runs --clients threads, each with its own Gradio
client, that is its own browser session: upload a file under a name no other request uses, separate
it at the page's default target, wait for the answer, and again, until --minutes have passed. A
refused request (the queue is full, or the page says why not) is tried again after --backoff seconds,
as a person would. Each answer's JSON report must name the file that session uploaded: an answer
naming another is counted as crossed. Requests still out when the time is up get --grace seconds
more, then count as cut off, not hung. Then the server is stopped with SIGTERM.

Prints a Markdown table: requests answered, refused (with the messages), errors, hung (no answer
within --timeout), answers per minute, p50/p95 latency from upload to answer, the server's peak
resident memory, its temporary folders before, during and after, and its exit status.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000
LENGTHS = (10, 20, 30, 40, 50, 60)      # seconds: every request sends one of these


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    answered: list[float] = field(default_factory=list)          # latency of each answer, s
    refused: collections.Counter = field(default_factory=collections.Counter)   # message -> count
    errors: collections.Counter = field(default_factory=collections.Counter)
    hung: int = 0
    cut_off: int = 0
    crossed: int = 0
    audio_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_mixtures(folder: Path) -> dict[int, Path]:
    """One WAV per length in LENGTHS: built-in test mixtures end to end, cut to the length."""
    from press.data import get_dataset

    ds = get_dataset("builtin", split="test", sample_rate=RATE, mode="max", subset="tts")
    pieces, total, index = [], 0, 0
    while total < max(LENGTHS) * RATE:
        x = ds[index]["mixture"].numpy()
        pieces.append(x)
        total, index = total + len(x), index + 1
    audio = np.concatenate(pieces)
    paths = {}
    for seconds in LENGTHS:
        paths[seconds] = folder / f"mixture-{seconds}s.wav"
        sf.write(str(paths[seconds]), audio[: seconds * RATE], RATE, subtype="PCM_16")
    return paths


def start_server(args: argparse.Namespace, port: int, tmp: Path, log: Path) -> subprocess.Popen:
    """`press serve` on 127.0.0.1:port with TMPDIR=tmp; returns once the page answers."""
    command = [sys.executable, "-m", "press.cli", "serve", args.model, "--host", "127.0.0.1",
               "--port", str(port), *shlex.split(args.serve_args)]
    env = {**os.environ, "TMPDIR": str(tmp)}
    server = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"press serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    sys.exit(f"press serve did not answer within 180 s:\n{log.read_text()}")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory: the kernel's high-water mark (VmHWM) where /proc has it,
    else psutil's current figure."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def folders(tmp: Path) -> tuple[int, int]:
    """(press serve's temporary folders in `tmp`, browser-session folders inside them)."""
    roots = list(tmp.glob("press-serve-*"))
    sessions = sum(1 for root in roots for s in (root / "sessions").glob("*") if s.is_dir())
    return len(roots), sessions


def one_request(client, path: Path, name: str, timeout: float) -> tuple[str, object]:
    """Upload `path` as `name`, separate it, wait at most `timeout` s.
    Returns (outcome, detail): answered (the report's input name), refused, error or timeout."""
    from gradio_client import handle_file

    named = path.parent / name
    if not named.exists():
        named.symlink_to(path.name)
    job = client.submit(handle_file(str(named)), "quality target", 5.0, 0.5, 3, 1.1, "ask", api_name="/separate")
    try:
        outputs = job.result(timeout=timeout)
    except TimeoutError:
        job.cancel()
        return "timeout", None
    except Exception as err:  # noqa: BLE001 - every failure is counted by its kind and message
        kind = type(err).__name__
        refused = kind in ("QueueError", "AppError")
        return ("refused" if refused else "error"), f"{kind}: {str(err).splitlines()[0][:120]}"
    report = next(Path(p) for p in outputs[-1] if str(p).endswith(".json"))
    return "answered", json.loads(report.read_text())["input"]


def client_loop(k: int, url: str, mixtures: dict[int, Path], args: argparse.Namespace, end: float,
                tally: Tally, downloads: Path) -> None:
    """One browser session: request after request until `end` (monotonic seconds)."""
    from gradio_client import Client

    rng = np.random.default_rng(k)
    client = Client(url, verbose=False, download_files=str(downloads / f"client{k}"))
    request = 0
    while time.monotonic() < end:
        seconds = int(rng.choice(LENGTHS))
        name = f"c{k}-r{request}-{seconds}s.wav"
        request += 1
        t = time.monotonic()
        budget = min(args.timeout, end + args.grace - t)
        outcome, detail = one_request(client, mixtures[seconds], name, budget)
        latency = time.monotonic() - t
        with tally.lock:
            if outcome == "answered":
                tally.answered.append(latency)
                tally.audio_seconds += seconds
                tally.crossed += detail != name
            elif outcome == "refused":
                tally.refused[detail] += 1
            elif outcome == "error":
                tally.errors[detail] += 1
            elif budget < args.timeout:
                tally.cut_off += 1
            else:
                tally.hung += 1
        if outcome in ("refused", "error"):
            time.sleep(args.backoff)


def stop_server(server: subprocess.Popen, log: Path) -> tuple[int | None, str]:
    """SIGTERM, then the exit status and the lines the server printed after it was sent."""
    before = len(log.read_text().splitlines())
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        code = None
    return code, " / ".join(log.read_text().splitlines()[before:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--minutes", type=float, default=2.0, help="how long the clients send requests")
    p.add_argument("--timeout", type=float, default=120.0, help="a request unanswered this long counts as hung")
    p.add_argument("--grace", type=float, default=15.0, help="how long requests still out at the end may finish")
    p.add_argument("--backoff", type=float, default=5.0, help="wait after a refusal or error before the next try")
    p.add_argument("--serve-args", default="", help="more options for press serve, e.g. \"--queue-size 8\"")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-load-") as work:
        work = Path(work)
        server_tmp, files, downloads = work / "server-tmp", work / "files", work / "downloads"
        for d in (server_tmp, files, downloads):
            d.mkdir()
        mixtures = write_mixtures(files)
        log = work / "server.log"
        before = folders(server_tmp)[0]
        port = free_port()
        server = start_server(args, port, server_tmp, log)
        tally = Tally()
        start = time.monotonic()
        end = start + args.minutes * 60
        threads = [threading.Thread(target=client_loop, daemon=True,
                                    args=(k, f"http://127.0.0.1:{port}/", mixtures, args, end, tally, downloads))
                   for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, end + args.grace + 10 - time.monotonic()))
        elapsed = time.monotonic() - start
        during, sessions = folders(server_tmp)
        peak = peak_rss_mib(server.pid)
        code, said = stop_server(server, log)
        after = folders(server_tmp)[0], sorted(e.name for e in server_tmp.iterdir()
                                               if not e.name.startswith("press-serve-"))
        capacity = next((line.split(": ", 1)[1] for line in log.read_text().splitlines()
                         if "at a time" in line), "?")
    print_table(args, tally, elapsed, peak, (before, during, sessions, after), code, said, capacity)


def print_table(args: argparse.Namespace, tally: Tally, elapsed: float, peak: float,
                counts: tuple[int, int, int, tuple[int, list[str]]], code: int | None, said: str,
                capacity: str) -> None:
    before, during, sessions, (after, others) = counts
    lat = np.array(tally.answered)
    p50, p95 = (f"{np.percentile(lat, q):.1f}" for q in (50, 95)) if lat.size else ("-", "-")
    rows = [
        ("server", f"press serve {args.model} {args.serve_args}".strip() + f": {capacity}"),
        ("clients", (f"{args.clients}, files of {min(LENGTHS)}-{max(LENGTHS)} s, {args.minutes:g} min "
                     f"(+ up to {args.grace:g} s for requests still out)")),
        ("answered", f"{len(lat)} ({tally.audio_seconds:.0f} s of audio)"),
        ("refused", f"{sum(tally.refused.values())}" + "".join(f"; {n} x {m}" for m, n in tally.refused.items())),
        ("errors", f"{sum(tally.errors.values())}" + "".join(f"; {n} x {m}" for m, n in tally.errors.items())),
        (f"hung (no answer in {args.timeout:g} s)", f"{tally.hung}"),
        ("cut off by the end of the run", f"{tally.cut_off}"),
        ("answers naming another session's file", f"{tally.crossed}"),
        ("answers per minute", f"{len(lat) / (elapsed / 60):.2f}"),
        ("latency upload to answer, p50 / p95", f"{p50} / {p95} s"),
        ("server peak RSS", f"{peak:.0f} MiB"),
        ("press-serve-* folders in its TMPDIR before / during / after",
         f"{before} / {during} ({sessions} session folders) / {after}"
         + (f" (also left in TMPDIR: {', '.join(others)})" if others else "")),
        ("server after SIGTERM", f"exit {code}; printed: {said or 'nothing'}"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
