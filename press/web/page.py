"""The web page's work, without the web: what `press serve` does between an upload and the players.

Everything here is plain Python on files and arrays (no Gradio), so the page's behaviour is tested
directly: the upload limits, the channel choice, the built-in test mixtures, one separation (the
separated sources, the JSON report, the exit map, the compute summary) and the per-request folders
that keep two users' files apart and are removed afterwards, the server's capacity, and the warning
for an address that opens the page beyond this machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from press.errors import PressError
from press.evaluation.bands import ExitBands, exit_snr_bands
from press.io.audio import Channel

# Upload limits unless `press serve --max-upload-mb / --max-seconds` say otherwise.
DEFAULT_MAX_MEGABYTES = 50.0
DEFAULT_MAX_SECONDS = 600.0
# Files up to this long also get every exit's predicted exit-SNR bands (tracing every exit costs
# about one more run to the last exit); longer ones skip them, saying so.
DEFAULT_BAND_SECONDS = 120.0
# Separations at once and requests waiting unless `press serve --concurrency / --queue-size` say
# otherwise. The model is CPU-bound and shared: a second separation at once only splits the same cores
# (and holds a second copy of the activations). A 60 s file takes tens of seconds on a small CPU, so
# the fifth person in line would wait minutes: past that the page answers "busy, try again" at once.
DEFAULT_CONCURRENCY = 1
DEFAULT_QUEUE_SIZE = 4
# Addresses that keep the page on this machine; any other --host opens it to the network.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

MODES = ("quality target", "fixed exit", "compute budget")

# The channel menu: (label, value). "ask" keeps the command line's rule: a multi-channel file with
# no choice is refused with a message rather than silently down-mixed.
CHANNEL_CHOICES = [("ask (multi-channel files need a choice)", "ask"), ("mix: average all channels", "mix")] + \
                  [(f"channel {i}", str(i)) for i in range(8)]

# Built-in test mixtures offered on the page: (subset, index) of the built-in corpus's test split.
BUILTIN_MIXTURES = [("real", 0), ("real", 1), ("real", 2), ("real", 3), ("tts", 1), ("tts", 2)]
NOISY_MIXTURES = [("noisy", k) for k in range(6)]  # recorded speech in recorded noise (an enhancer's page)


@dataclass(frozen=True)
class Limits:
    """What one upload may be: at most `max_megabytes` on disk and `max_seconds` long; files up to
    `band_seconds` also get the per-exit exit-SNR bands (0: never)."""

    max_megabytes: float = DEFAULT_MAX_MEGABYTES
    max_seconds: float = DEFAULT_MAX_SECONDS
    band_seconds: float = DEFAULT_BAND_SECONDS

    def check(self, path: str | Path) -> None:
        """Refuse a file over the limits with a message saying which and how to raise it.

        A file whose header cannot be read passes here: loading it gives the command line's error.
        """
        import soundfile as sf

        path = Path(path)
        if not path.is_file():
            raise PressError("no audio given: upload or record a mixture, or pick a built-in test mixture")
        size = path.stat().st_size
        if size == 0:
            raise PressError(f"{path.name}: the file is empty (0 bytes); expected audio")
        megabytes = size / 1e6
        if megabytes > self.max_megabytes:
            raise PressError(f"{path.name}: {megabytes:.1f} MB is over this server's upload limit of "
                             f"{self.max_megabytes:g} MB (press serve --max-upload-mb)")
        try:
            info = sf.info(str(path))
        except Exception:  # noqa: BLE001 - unreadable files get load_audio's message
            return
        if info.samplerate > 0 and info.frames / info.samplerate > self.max_seconds:
            raise PressError(f"{path.name}: {info.frames / info.samplerate:.1f} s is over this server's limit of "
                             f"{self.max_seconds:g} s per file (press serve --max-seconds)")


@dataclass(frozen=True)
class Capacity:
    """How many separations run at once (`concurrency`) and how many more requests may wait for them
    (`queue_size`); a request beyond that is refused with a message instead of waiting unbounded."""

    concurrency: int = DEFAULT_CONCURRENCY
    queue_size: int = DEFAULT_QUEUE_SIZE

    def describe(self) -> str:
        runs = "1 separation" if self.concurrency == 1 else f"{self.concurrency} separations"
        return (f"{runs} at a time, up to {self.queue_size} waiting; more are told the server is busy "
                f"(--concurrency, --queue-size)")


def exposure_warning(host: str) -> str | None:
    """The warning for a `--host` that lets other machines reach the page, which has no login and no
    TLS (None for this machine's own addresses)."""
    if host.strip("[]").lower() in LOCAL_HOSTS:
        return None
    return (f"--host {host} opens this page to other machines: anyone who can reach it may upload audio and "
            f"use this machine's CPU; it has no login and no TLS (put it behind a proxy that has, or keep "
            f"the default 127.0.0.1)")


def parse_channel(value: str | None) -> Channel:
    """The channel menu's value -> load_audio's `channel` (None: refuse multi-channel input)."""
    if value in (None, "", "ask"):
        return None
    if value == "mix":
        return "mix"
    try:
        return int(value)
    except ValueError:
        raise PressError(f"unknown channel choice {value!r}; expected 'ask', 'mix' or a channel index") from None


def policy_options(mode: str, target_db: float, confidence: float, exit: int | float | None,
                   budget: float | None) -> dict[str, Any]:
    """The page's mode and fields -> keyword arguments of `Press.separate_file`."""
    if mode not in MODES:
        raise PressError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    options: dict[str, Any] = {"target_db": float(target_db), "confidence": float(confidence)}
    if mode == "fixed exit":
        if exit is None:
            raise PressError("fixed exit: choose the exit to run every segment to")
        options["exit"] = int(exit)
    elif mode == "compute budget":
        if budget is None:
            raise PressError("compute budget: give a mean compute in GMAC/s")
        options["budget"] = float(budget)
    return options


def public_message(err: PressError, path: str | Path) -> str:
    """A PressError's message with the server's temporary path shortened to the file's name."""
    return str(err).replace(str(path), Path(path).name)


class WorkArea:
    """Everything the server writes, under one temporary root that it owns and removes when it stops.

    `cache` is Gradio's upload and download folder (press.web.app points Gradio there), so uploads
    and served copies go with the root, and no other Gradio app on this machine shares them.
    `sessions` holds one folder per browser session: a request writes into a fresh folder under its
    session's; the page hands those files to Gradio, which copies them into `cache` (the copies
    expire with `delete_cache`). So a session's earlier request folders are removed when it starts
    another, and all of its folders when it ends, except those of its requests still running (a
    built-in mixture picked while a separation runs). Session folders are named by the session's
    hash, which is never shown to other users; they live apart from `cache`, so no session name
    (chosen by the browser) reaches another session's or Gradio's files.

    Stopping: a separation runs in a worker thread that the interpreter cannot wait for at exit,
    and ending the process while it is inside torch aborts it. So the server `stop`s the work
    area: new requests are refused, a running one is refused at its next step (`check`), and
    `wait_idle` returns once none runs; only then is the root removed.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="press-serve-", dir=root))
        self.cache = self.root / "gradio"
        self.sessions = self.root / "sessions"
        self._running: set[Path] = set()
        self._stopping = False
        self._changed = threading.Condition()

    def _session(self, session: str | None) -> Path:
        # a file name's worth of letters, digits, - and _: Gradio's hashes are 11 characters
        name = re.sub(r"[^A-Za-z0-9_-]", "", session or "")[:64] or "anonymous"
        return self.sessions / name

    def _sweep(self, folder: Path) -> None:
        """Remove the request folders under `folder` that no running request writes into."""
        for old in folder.iterdir() if folder.is_dir() else ():
            if old not in self._running:
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def request(self, session: str | None) -> Iterator[Path]:
        """A new, empty folder for one request, running while the block runs; the session's earlier
        request folders that are not running are removed."""
        self.check()
        folder = self._session(session)
        with self._changed:
            folder.mkdir(parents=True, exist_ok=True)
            self._sweep(folder)
            new = Path(tempfile.mkdtemp(dir=folder))
            self._running.add(new)
        try:
            yield new
        finally:
            with self._changed:
                self._running.discard(new)
                self._changed.notify_all()

    def check(self) -> None:
        """Refuse the request's next step once the server is stopping."""
        if self._stopping:
            raise PressError("the server is stopping; try again when it is back")

    def stop(self) -> int:
        """Refuse new requests and running ones' next steps; returns how many are running."""
        with self._changed:
            self._stopping = True
            return len(self._running)

    def wait_idle(self) -> None:
        """Wait until no request runs (after stop: until each has reached its next step)."""
        with self._changed:
            while self._running:
                self._changed.wait(0.5)

    def end(self, session: str | None) -> None:
        """The session is gone: remove its folders (a running request's goes when the server stops)."""
        folder = self._session(session)
        with self._changed:
            self._sweep(folder)
            with contextlib.suppress(OSError):
                folder.rmdir()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _builtin(noisy: bool) -> list[tuple[str, int]]:
    return NOISY_MIXTURES if noisy else BUILTIN_MIXTURES


def builtin_labels(noisy: bool = False) -> list[str]:
    """The built-in test mixtures the page offers: speakers, or (for an enhancer) noisy speech."""
    return [f"{subset} #{index + 1}" for subset, index in _builtin(noisy)]


def write_builtin(label: str, sample_rate: int, folder: Path, noisy: bool = False) -> Path:
    """Write the built-in test mixture named `label` (see builtin_labels) as a WAV in `folder`."""
    from press.data import get_dataset
    from press.io.audio import write_audio

    try:
        subset, index = _builtin(noisy)[builtin_labels(noisy).index(label)]
    except ValueError:
        choices = ", ".join(builtin_labels(noisy))
        raise PressError(f"unknown built-in mixture {label!r}; expected one of {choices}") from None
    ds = (get_dataset("noisy", split="test", sample_rate=sample_rate) if noisy else
          get_dataset("builtin", split="test", sample_rate=sample_rate, mode="max", subset=subset))
    mixture = ds[index]["mixture"].numpy()
    return write_audio(folder / f"builtin-{subset}-{index + 1}.wav", mixture, sample_rate, subtype="FLOAT")


@dataclass
class Outcome:
    """One separation as the page shows it; every path lies in the request's folder."""

    mixture: Path                  # the channel the model heard, at the input's rate
    sources: list[Path]            # one WAV per speaker
    report_path: Path              # the JSON report (press separate's format)
    exit_map: Path                 # spectrogram over the exit each block took
    bands_plot: Path               # every exit's predicted exit-SNR bands per block, or (file longer
                                   # than Limits.band_seconds) P(target holds) at the exit taken
    summary: str                   # Markdown: compute spent against the last exit, exits taken
    report: dict[str, Any]
    bands: ExitBands | None = None


def separate(model, path: str | Path, folder: Path, limits: Limits, mode: str = "quality target",
             target_db: float = 5.0, confidence: float = 0.5, exit: int | None = None,
             budget: float | None = None, channel: str | None = "ask",
             progress: Callable[[float, str], None] | None = None) -> Outcome:
    """Separate the audio file at `path` with `model` (a press.api.Press) into `folder`.

    Bad input raises PressError with the command line's message (the server's temporary path
    shortened to the file's name). The file is streamed through the model with tqdm progress,
    which the page turns into its progress bar.
    """
    from press.evaluation.figures import plot_exit_map
    from press.io.audio import load_audio, write_audio
    from press.io.files import atomic_write

    path = Path(path)
    options = policy_options(mode, target_db, confidence, exit, budget)
    try:
        limits.check(path)
        choice = parse_channel(channel)
        mixture, rate = load_audio(path, channel=choice)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:60] or "mixture"
        outputs = [folder / f"{stem}_{name}.wav" for name in model.source_names]
        if progress:
            progress(0.0, "separating")
        report = model.separate_file(path, outputs, channel=choice, progress=True, **options)
    except PressError as err:
        raise PressError(public_message(err, path)) from None
    mixture_path = write_audio(folder / f"{stem}_mixture.wav", mixture, rate)
    report = {"input": path.name, "outputs": [p.name for p in outputs], **report}
    report_path = folder / f"{stem}.json"
    text = json.dumps(report, indent=1)
    atomic_write(report_path, lambda tmp: Path(tmp).write_text(text))
    bands, summary = None, summarize(report, model.n_exits)
    seconds = len(mixture) / rate
    if seconds <= limits.band_seconds:
        if progress:
            progress(0.7, "predicting every exit's exit-SNR")
        bands = exit_snr_bands(model, mixture, rate, target_db, confidence)
    else:
        why = (f"{seconds:.1f} s is over this server's limit of {limits.band_seconds:g} s for them"
               if limits.band_seconds > 0 else "this server has them off")
        summary += (f"\n\nExit-SNR bands per exit skipped: {why} (press serve --band-seconds); shown instead: "
                    f"the probability per block at the exit taken.")
    if progress:
        progress(0.9, "drawing")
    label = _policy_label(report)
    exit_map = plot_exit_map(mixture, rate, {label: report["blocks"]}, model.n_exits, folder / f"{stem}_exits.png",
                             title=f"{path.name}: exit taken per block ({label})")
    if bands is not None:
        bands_plot = plot_exit_bands(bands, report, folder / f"{stem}_bands.png")
    else:
        bands_plot = plot_block_confidence(report, folder / f"{stem}_confidence.png")
    return Outcome(mixture_path, outputs, report_path, exit_map, bands_plot, summary, report, bands)


def plot_exit_bands(bands: ExitBands, report: dict[str, Any], path: Path) -> Path:
    """One row per exit: the predicted exit-SNR of every block (median and 10-90 % band, worst
    speaker), the target, and shading where the block's segment actually left at that exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, K = bands.quantiles, bands.quantiles.shape[1]

    def step(v: np.ndarray) -> np.ndarray:      # a value per block, drawn over the block's span
        return np.append(v, v[-1:])

    edges = np.append(bands.starts, bands.starts[-1] + bands.block_seconds) if q.shape[-1] else np.zeros(1)
    fig, axes = plt.subplots(K, 1, figsize=(10, 0.6 + 1.35 * K), sharex=True, squeeze=False)
    finite = q[np.isfinite(q)]
    lo = min(float(np.percentile(finite, 1)) if finite.size else 0.0, report["target_db"]) - 3
    hi = max(float(np.percentile(finite, 99)) if finite.size else 10.0, report["target_db"]) + 3
    for k, ax in enumerate(axes[:, 0]):
        for b in report["blocks"]:
            if b["exit"] == k + 1:
                ax.axvspan(b["start"], b["end"], color="C2", alpha=0.18, lw=0)
        if q.shape[-1]:
            ax.fill_between(edges, step(q[0, k]), step(q[-1, k]), step="post", color="C0", alpha=0.3, lw=0,
                            label="10-90 % band")
            ax.step(edges, step(q[1, k]), where="post", color="C0", lw=1, label="median")
        ax.axhline(report["target_db"], color="C3", ls="--", lw=0.9, label=f"target {report['target_db']:g} dB")
        ax.set_ylim(lo, hi)
        ax.set_ylabel(f"exit {k + 1}\n(dB)", rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.fill_between([], [], color="C2", alpha=0.18, label="blocks that left here")
            ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=4, frameon=False)
    axes[0, 0].set_title("predicted exit-SNR per block and exit\n(worst speaker: lowest median)",
                         fontsize=9, loc="left")
    axes[-1, 0].set_xlim(0, report["seconds"] if report.get("seconds") else edges[-1])
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _policy_label(report: dict[str, Any]) -> str:
    if report["policy"] == "static":
        return f"exit {report['blocks'][0]['exit']}" if report["blocks"] else "fixed exit"
    if report["policy"] == "budget":
        return f"budget {report['budget_gmacs_per_second']:g} GMAC/s"
    return f"t = {report['target_db']:g} dB, p = {report['confidence']:g}"


def summarize(report: dict[str, Any], n_exits: int) -> str:
    """Markdown: compute spent against running every segment to the last exit, and the exits taken."""
    spent, last = report["gmacs_per_second"], report["last_exit_gmacs_per_second"]
    share = spent / last if last else 1.0
    histogram = report["exit_histogram"]       # segments per exit, exit 1 first
    taken = ", ".join(f"exit {k}: {n}" for k, n in enumerate(histogram, start=1) if n)
    lines = [
        f"**{_policy_label(report)}** on {report['seconds']:.1f} s of audio",
        "",
        "| compute | GMAC/s |",
        "|---|---:|",
        f"| spent | {spent:.3f} |",
        f"| every segment to exit {n_exits} | {last:.3f} |",
        f"| share of the last exit's | {share:.0%} ({report['saving']:.0%} saved) |",
        "",
        f"Segments: {sum(histogram)} ({taken}).",
    ]
    if report.get("note"):
        lines += ["", f"Note: {report['note']}"]
    return "\n".join(lines)


def plot_block_confidence(report: dict[str, Any], path: Path) -> Path:
    """P(exit-SNR >= target) per block at the exit its segment took, with the confidence asked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = report["blocks"]
    fig, ax = plt.subplots(figsize=(10, 1.8))
    if blocks:
        t = np.array([[b["start"], b["end"]] for b in blocks]).reshape(-1)
        p = np.repeat([b["p_exit"] for b in blocks], 2)
        ax.plot(t, p, color="C0", lw=1.2, label="P(target holds) at the exit taken")
        ax.set_xlim(0, blocks[-1]["end"])
    ax.axhline(report["confidence"], color="0.3", ls="--", lw=0.8, label=f"confidence asked ({report['confidence']:g})")
    ax.set(ylim=(-0.02, 1.02), ylabel="probability", xlabel="time (s)")
    ax.set_title(f"predicted probability that a block's exit-SNR reaches {report['target_db']:g} dB",
                 fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
