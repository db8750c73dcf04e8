"""Render the recorded enhancement corpus: wideband speech and recorded noise at 16 kHz, from Debian packages.

`press data noisy OUT --root ROOT` runs `render_noisy_corpus`. Speech (press.corpus.wideband_catalogue)
goes through the corpus chain (press.corpus.conditioning) at 16 kHz; each utterance's share of energy
above 4 kHz is measured (`hf_db`), so that a voice that was recorded narrowband and upsampled is
seen, not assumed. Noise (press.corpus.noise_catalogue) is made mono at 16 kHz, trimmed of leading and
trailing silence, cut to at most `noise_cap_seconds` (long music and ambience loops would otherwise
fill the corpus with a few sources), levelled to NOISE_DBFS, and de-duplicated: a file whose
coarse fingerprint (its level envelope and length) matches an earlier one is the same recording in
another game or format and is dropped. Output: `speech.csv`, `noise.csv`, `speech/`, `noise/`.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from press.corpus.conditioning import condition
from press.corpus.debian import read_audio, seconds_of
from press.corpus.noise_catalogue import NoiseFile, plan_noise
from press.corpus.wideband_catalogue import JOIN_PAUSE_SECONDS, Utterance, plan_speech, speakers
from press.data.manifest import write_manifest
from press.errors import PressError
from press.io.audio import resample, write_audio
from press.io.files import atomic_write

RATE = 16000
NOISE_DBFS = -26.0
NOISE_MIN_SECONDS = 0.1
SILENT_DB = -60.0  # a noise file whose loudest 50 ms frame is below this (dBFS) holds nothing
SPEECH_FIELDS = ("id", "path", "speaker", "package", "split", "seconds", "hf_db", "licence", "sources")
NOISE_FIELDS = ("id", "path", "package", "kind", "split", "seconds", "licence", "source", "fingerprint")


def hf_db(x: np.ndarray, sr: int = RATE) -> float:
    """Energy above 4 kHz relative to the whole, in dB: about -15...-30 dB for wideband speech, below
    -45 dB for speech recorded at 8 kHz and upsampled."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(10 * np.log10(spec[freqs >= 4000].sum() / max(spec.sum(), 1e-20) + 1e-12))


def _conditioned(root: Path, ref: str) -> np.ndarray | None:
    try:
        return condition(*read_audio(root, ref), rate=RATE)
    except PressError:  # a silent or empty clip (a few packages ship them): nothing to render
        return None


def _speech(args: tuple[Path, Path, Utterance]) -> dict | None:
    root, out, utt = args
    path = Path("speech") / utt.speaker / f"{utt.uid}.flac"
    if (out / path).exists():  # rendered by an earlier, interrupted run (files are written atomically)
        pcm = sf.read(out / path, dtype="int16")[0]
    else:
        clips = [c for ref in utt.refs if (c := _conditioned(root, ref)) is not None]
        if not clips:
            return None
        pause = np.zeros(int(JOIN_PAUSE_SECONDS * RATE), dtype=np.int16)
        pcm = np.concatenate([c for clip in clips for c in (clip, pause)][:-1])
        write_audio(out / path, pcm.astype(np.float32) / 32768.0, RATE)
    return {"id": utt.uid, "path": str(path), "speaker": utt.speaker, "package": utt.package, "split": utt.split,
            "seconds": f"{len(pcm) / RATE:.3f}", "hf_db": f"{hf_db(pcm / 32768.0):.1f}", "licence": utt.licence,
            "sources": " ".join(utt.refs)}


def fingerprint(x: np.ndarray, sr: int = RATE) -> str:
    """A coarse identity of a recording that survives re-encoding and resampling: its length in
    tenths of a second and the level of its first 40 frames of 50 ms, in 3 dB steps."""
    frame = sr // 20
    n = min(40, len(x) // frame)
    env = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-10)
    return hashlib.sha1(f"{round(len(x) / sr, 1)}:{np.round((env - env.max()) / 3).astype(int).tolist()}".encode()).hexdigest()[:16]


def _noise(args: tuple[Path, Path, NoiseFile, float]) -> dict | None:
    """One noise file rendered: its manifest row, None when it holds nothing, {"error": ...} when it
    cannot be decoded (reported, not fatal: a package may ship a file in a format libsndfile lacks)."""
    root, out, item, cap = args
    try:
        x, sr = read_audio(root, item.ref)
    except PressError as err:
        return {"error": str(err)}
    x = resample(x, sr, RATE)
    frame = RATE // 20
    n = len(x) // frame
    if n == 0:
        return None
    db = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-12)
    if db.max() < SILENT_DB:
        return None
    loud = np.flatnonzero(db > db.max() - 50)
    x = x[loud[0] * frame : (loud[-1] + 1) * frame][: int(cap * RATE)]
    if len(x) < NOISE_MIN_SECONDS * RATE:
        return None
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    x = x * (10 ** (NOISE_DBFS / 20) / rms)
    if (peak := float(np.abs(x).max())) > 0.99:
        x = x * (0.99 / peak)
    uid = f"{item.package}-{zlib.crc32(item.ref.encode()):08x}"
    path = Path("noise") / item.kind / f"{uid}.flac"
    write_audio(out / path, x, RATE)
    return {"id": uid, "path": str(path), "package": item.package, "kind": item.kind, "split": item.split,
            "seconds": f"{len(x) / RATE:.3f}", "licence": item.licence, "source": item.ref,
            "fingerprint": fingerprint(x)}


def _map(fn: Callable, items: list, jobs: int, desc: str) -> Iterator:
    """fn over items in order, in `jobs` processes, with a progress bar."""
    if jobs <= 1:
        yield from (fn(i) for i in tqdm(items, desc=desc, unit="file"))
        return
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from tqdm(pool.imap(fn, items, chunksize=4), total=len(items), desc=desc, unit="file")


# The slice shipped in press/data/builtin/noisy: seconds of speech per split, noise files per split and
# kind and seconds kept of each. Enough for the tests, `press demo` and a smoke run of `press train enhance`.
SLICE_SPEECH_SECONDS = {"train": 60.0, "val": 30.0, "test": 60.0}
SLICE_NOISE_FILES = {"train": 3, "val": 2, "test": 2}
SLICE_NOISE_SECONDS = 4.0


def slice_corpus(corpus: str | Path, out: str | Path) -> tuple[list[dict], list[dict]]:
    """A small copy of a rendered corpus: per split, utterances taken in turn from each speaker (in id
    order) up to SLICE_SPEECH_SECONDS, and the first SLICE_NOISE_FILES noise files of each kind cut to
    SLICE_NOISE_SECONDS (in an order that mixes the packages). Deterministic: the same corpus gives the same slice."""
    corpus, out = Path(corpus).expanduser(), Path(out).expanduser()
    speech_rows = [r for r in _read_rows(corpus / "speech.csv")]
    noise_rows = [r for r in _read_rows(corpus / "noise.csv")]
    speech, noise = [], []
    for split, budget in SLICE_SPEECH_SECONDS.items():
        by_speaker: dict[str, list[dict]] = {}
        for r in sorted(speech_rows, key=lambda r: r["id"]):
            if r["split"] == split:
                by_speaker.setdefault(r["speaker"], []).append(r)
        total, turn = 0.0, 0
        while total < budget and any(turn < len(v) for v in by_speaker.values()):
            for name in sorted(by_speaker):
                if turn < len(by_speaker[name]) and total < budget:
                    speech.append(by_speaker[name][turn])
                    total += float(by_speaker[name][turn]["seconds"])
            turn += 1
    for split, count in SLICE_NOISE_FILES.items():
        for kind in sorted({r["kind"] for r in noise_rows}):
            chosen = sorted((r for r in noise_rows if r["split"] == split and r["kind"] == kind),
                            key=lambda r: zlib.crc32(r["id"].encode()))  # spread over packages
            noise.extend(chosen[:count])
    for rows, cap in ((speech, None), (noise, SLICE_NOISE_SECONDS)):
        for r in rows:
            x, sr = sf.read(corpus / r["path"], dtype="float32")
            x = x[: int(cap * sr)] if cap else x
            write_audio(out / r["path"], x, sr)
            r["seconds"] = f"{len(x) / sr:.3f}"
    write_manifest(out / "speech.csv", speech, SPEECH_FIELDS)
    write_manifest(out / "noise.csv", noise, NOISE_FIELDS)
    return speech, noise


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        raise PressError(f"{path}: missing; render the corpus first with `press data noisy {path.parent}`")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def render_noisy_corpus(
    root: str | Path, out: str | Path, jobs: int = 1, noise_cap_seconds: float = 60.0,
    noise_packages: set[str] | None = None, speakers_only: set[str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Render speech and noise from the packages under `root` into `out`; returns (speech rows, noise rows).

    `noise_packages` / `speakers_only` restrict the render to those packages or speakers (a partial re-render)."""
    root, out = Path(root).expanduser(), Path(out).expanduser()
    if not root.is_dir():
        raise PressError(f"{root}: no such folder (the root the Debian packages are installed or extracted under)")
    out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in speakers(root) if speakers_only is None or s.name in speakers_only]
    seconds = {ref: seconds_of(root, ref) for s in chosen for ref in s.refs}
    utts = plan_speech(root, seconds, chosen)
    speech = [row for row in _map(_speech, [(root, out, u) for u in utts], jobs, "speech") if row is not None]
    write_manifest(out / "speech.csv", speech, SPEECH_FIELDS)
    plans = plan_noise(root, noise_packages)
    noise, seen, errors = [], set(), []
    for row in _map(_noise, [(root, out, p, noise_cap_seconds) for p in plans], jobs, "noise"):
        if row is None:
            continue
        if "error" in row:
            errors.append(row["error"])
            continue
        if row["fingerprint"] in seen:
            (out / row["path"]).unlink()
            continue
        seen.add(row["fingerprint"])
        noise.append(row)
    write_manifest(out / "noise.csv", noise, NOISE_FIELDS)
    if errors:
        atomic_write(out / "undecodable.txt", lambda tmp: Path(tmp).write_text("\n".join(errors) + "\n"))
        print(f"{len(errors)} noise file(s) could not be decoded and were left out: {out / 'undecodable.txt'}")
    return speech, noise
