"""Files of any length in and out with bounded memory, at the model's rate inside.

`FileReader` gives the segment runner random access to one channel of an audio file at the model's
sample rate; a file at another rate is first resampled chunk by chunk (soxr's streaming resampler)
into a temporary float WAV. `SourceWriter` takes the runner's stitched output in order and writes one
file per source, resampled back to the input's rate on the way out; files appear under their final
names only when complete. `ChunkReader` reads a file in order, chunk by chunk at its own rate, for
a live stream (`press stream`). Either way only a few seconds of audio are in memory at a time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import soundfile as sf
import soxr

from press.errors import PressError
from press.io.audio import Channel, header_promises_more, is_mp3, quiet_decoder, select_channel
from press.io.files import publish

CHUNK = 1 << 16  # frames per read/write when streaming (8 s at 8 kHz)


def _open(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise PressError(f"{path}: no such file")
    if path.is_dir():
        raise PressError(f"{path}: is a folder, expected an audio file")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise PressError(f"{path}: not a readable audio file ({err}); expected WAV, FLAC, OGG, MP3 or "
                         "another format libsndfile reads") from None
    if header_promises_more(f.extra_info):
        f.close()
        raise PressError(f"{path}: truncated audio file: the header promises more data than the file holds")
    if f.frames == 0:
        f.close()
        raise PressError(f"{path}: empty audio file (0 samples)")
    return f




class Reader(Protocol):
    """Random access to a mono signal at the model's rate; zeros outside [0, n_samples)."""

    n_samples: int

    def read(self, start: int, stop: int) -> np.ndarray: ...

    def mean_power(self) -> float: ...


class ArrayReader:
    """A `Reader` over a signal in memory."""

    def __init__(self, signal) -> None:
        # np.asarray also takes a CPU torch tensor: this module imports no torch (press.runtime uses it)
        self.signal = np.asarray(signal, dtype=np.float32)
        if self.signal.ndim != 1:
            raise PressError(f"expected a mono signal (samples,), got shape {self.signal.shape}")
        self.n_samples = len(self.signal)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.n_samples)
        if hi > lo:
            out[lo - start:hi - start] = self.signal[lo:hi]
        return out

    def mean_power(self) -> float:
        return float(np.mean(self.signal.astype(np.float64) ** 2)) if self.n_samples else 0.0


class FileReader:
    """A `press.inference.Reader` over one channel of an audio file, at `sample_rate`.

    Use as a context manager: a temporary resampled copy, if one was needed, is removed on exit.
    The constructor streams through the file once: it checks every sample (NaN/Inf, truncation)
    and measures the mean power, so that a bad file fails before any output is written.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channel: Channel = None) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        f = _open(self.path)
        self.input_rate = f.samplerate
        self.n_input = f.frames
        try:
            if f.samplerate == sample_rate and not is_mp3(f):
                self._file, self._channel = f, channel
            else:
                self._file, self._channel = self._decoded_copy(f, sample_rate, channel), None
                f.close()
            self.n_samples = self._file.frames
            self._power = self._scan()
        except BaseException:
            self.close()
            raise

    def _decoded_copy(self, f: sf.SoundFile, rate: int, channel: Channel) -> sf.SoundFile:
        """One pass through `f` into a temporary float WAV of the chosen channel at `rate`: the runner
        then reads it at random; an MP3 decodes once, without its decoder's chatter."""
        fd, name = tempfile.mkstemp(suffix=".wav", prefix="press-")
        os.close(fd)
        self._tmp = Path(name)
        stream = None if f.samplerate == rate else soxr.ResampleStream(f.samplerate, rate, 1, dtype="float32",
                                                                      quality="HQ")
        with sf.SoundFile(name, "w", samplerate=rate, channels=1, subtype="FLOAT") as out, quiet_decoder():
            while True:
                block = f.read(CHUNK, dtype="float32", always_2d=True)
                last = len(block) < CHUNK
                mono = select_channel(block, channel, str(self.path), allow_all=False)
                out.write(mono if stream is None else stream.resample_chunk(mono, last=last))
                if last:
                    break
        return sf.SoundFile(name)

    def _scan(self) -> float:
        total, n = 0.0, 0
        self._file.seek(0)
        while n < self.n_samples:
            block = self._file.read(CHUNK, dtype="float32", always_2d=True)
            if len(block) == 0:
                raise PressError(f"{self.path}: truncated audio file: read {n} of the {self.n_samples} "
                                 "frames in its header")
            x = select_channel(block, self._channel, str(self.path), allow_all=False)
            if not np.isfinite(x).all():
                raise PressError(f"{self.path}: audio holds NaN or Inf samples; expected finite samples")
            total += float(np.dot(x.astype(np.float64), x))
            n += len(x)
        return total / max(n, 1)

    def mean_power(self) -> float:
        return self._power

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros(stop - start, dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.n_samples)
        if hi > lo:
            self._file.seek(lo)
            block = self._file.read(hi - lo, dtype="float32", always_2d=True)
            mono = select_channel(block, self._channel, str(self.path), allow_all=False)
            out[lo - start:lo - start + len(block)] = mono
        return out

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "FileReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ChunkReader:
    """One channel of an audio file in order, `seconds` at a time (`frames` samples at the file's own
    rate): what a live stream reads, with the whole file never in memory and no pass ahead
    (`FileReader` scans first, for random access). A multi-channel file without a valid `channel`
    is refused at open, before any output is written; a bad sample or a short file when the read
    reaches it."""

    def __init__(self, path: str | os.PathLike, seconds: float, channel: Channel = None) -> None:
        self.path = Path(path)
        self.channel = channel
        self._file = _open(self.path)
        self.rate, self.n_samples = self._file.samplerate, self._file.frames
        self.frames = max(1, round(seconds * self.rate))
        self._read = 0
        try:   # the channel choice, checked on no samples
            select_channel(np.zeros((0, self._file.channels), np.float32), channel, str(self.path), allow_all=False)
        except BaseException:
            self.close()
            raise

    def read(self) -> np.ndarray | None:
        """The next chunk (float32), or None at the end of the file."""
        with quiet_decoder() if is_mp3(self._file) else contextlib.nullcontext():
            try:
                block = self._file.read(self.frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise PressError(f"{self.path}: truncated or corrupt audio file ({err})") from None
        if len(block) == 0:
            if self._read < self.n_samples:
                raise PressError(f"{self.path}: truncated audio file: read {self._read} of the "
                                 f"{self.n_samples} frames in its header")
            return None
        x = select_channel(block, self.channel, str(self.path), allow_all=False)
        if not np.isfinite(x).all():
            raise PressError(f"{self.path}: audio holds NaN or Inf samples; expected finite samples")
        self._read += len(x)
        return np.ascontiguousarray(x)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ChunkReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SourceWriter:
    """A stitching sink that writes source j to paths[j] at `output_rate`, complete or not at all.

    Samples arrive in order at `model_rate`; they go to temporary files beside the targets and are
    resampled on the fly. `commit()` moves the finished files into place; `abort()` (or leaving the
    `with` block with an exception) removes them.
    """

    def __init__(self, paths: list[Path | None], model_rate: int, output_rate: int, n_output: int | None = None,
                 subtype: str = "FLOAT") -> None:
        # a source whose path is None is not written (`press enhance` keeps the noise only on request)
        self._keep = [j for j, p in enumerate(paths) if p is not None]
        self.paths = [Path(paths[j]) for j in self._keep]
        self.n_output = n_output
        self._written = 0
        # integer samples cannot hold a source that exceeds full scale: libsndfile would wrap it around
        self._clip = subtype != "FLOAT" and subtype != "DOUBLE"
        self._tmps, self._files, self._streams = [], [], []
        with self._writing():
            for p in self.paths:
                p.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix or ".wav")
                os.close(fd)
                self._tmps.append(Path(name))
                self._files.append(sf.SoundFile(name, "w", samplerate=output_rate, channels=1, subtype=subtype,
                                                format="WAV"))
                self._streams.append(None if model_rate == output_rate else
                                     soxr.ResampleStream(model_rate, output_rate, 1, dtype="float32", quality="HQ"))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (a full disk, a folder made read-only meanwhile) removes what was written and
        becomes a PressError that names the outputs and the free space left, not a libsndfile traceback."""
        try:
            yield
        except (OSError, sf.LibsndfileError) as err:
            self.abort()
            folder = self.paths[0].parent if self.paths else Path(".")
            try:
                free = f"; {shutil.disk_usage(folder).free / 1e6:.1f} MB free there"
            except OSError:
                free = ""
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            reason = reason.rstrip(". ")
            raise PressError(f"cannot write {', '.join(p.name for p in self.paths)} in {folder}: "
                             f"{reason}{free}; nothing of it was kept") from None

    def __call__(self, start: int, x: np.ndarray) -> None:
        with self._writing():
            self._write(x, last=False)

    def _write(self, x: np.ndarray | None, last: bool) -> None:
        # resampling rounds: never write past the input's length (commit pads a short end)
        room = None if self.n_output is None else max(0, self.n_output - self._written)
        n = 0
        for j, f, stream in zip(self._keep, self._files, self._streams):
            y = np.zeros(0, np.float32) if x is None else x[j]
            if stream is not None:
                y = stream.resample_chunk(np.ascontiguousarray(y, dtype=np.float32), last=last)
            y = y if room is None else y[:room]
            f.write(np.clip(y, -1.0, 1.0) if self._clip else y)
            n = len(y)
        self._written += n

    def commit(self) -> list[Path]:
        with self._writing():
            self._write(None, last=True)
            for f in self._files:
                f.close()
            if self.n_output is not None:
                for tmp in self._tmps:  # pad a resampled output that came out a few samples short
                    with sf.SoundFile(str(tmp), "r+") as f:
                        if f.frames < self.n_output:
                            f.seek(0, sf.SEEK_END)
                            f.write(np.zeros(self.n_output - f.frames, np.float32))
        for tmp, p in zip(self._tmps, self.paths):
            publish(tmp, p)
        self._tmps = []
        return self.paths

    def abort(self) -> None:
        for f in self._files:
            if not f.closed:
                f.close()
        for tmp in self._tmps:
            if tmp.exists():
                tmp.unlink()
        self._tmps = []

    def __enter__(self) -> "SourceWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None or self._tmps:
            self.abort()
