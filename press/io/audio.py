"""Audio in and out: the one place where files become float32 arrays and back.

Every check on user-supplied audio lives here, so that a bad file fails with a message naming the
file and the problem instead of a NaN loss or a shape error deep inside the model. Reading and
writing go through soundfile (WAV, FLAC, OGG, MP3, ... via libsndfile); resampling goes through
soxr, whose output is deterministic, which the built-in corpus relies on for bit-identical rebuilds.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Literal, Union

import numpy as np
import soundfile as sf
import soxr

from press.errors import PressError
from press.io.files import atomic_write

Channel = Union[None, Literal["mix", "all"], int]
SIZE_NOTE = re.compile(r": (\d+) \(should be (\d+)\)")   # libsndfile: "data : 2000 (should be 956)"



def channel_options(allow_all: bool) -> str:
    """The channel choices a caller has, for messages: "all" only where several channels are kept."""
    keep = ', channel="all" (keep all)' if allow_all else ""
    return (f'channel="mix" (average all channels), channel=<index> (pick one){keep}; '
            "--channel mix / --channel 0 on the command line")


@contextlib.contextmanager
def quiet_decoder() -> Iterator[None]:
    """Keep a C decoder's messages off the terminal while it runs.

    libmpg123, which libsndfile decodes MP3 with, writes its resynchronisation notes (e.g.
    "part2_3_length ... too large for available bit count") straight to file descriptor 2, past
    Python; they are not actionable and a failed decode still raises. The descriptor points at a
    temporary file for the duration and is restored afterwards.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def is_mp3(f: sf.SoundFile) -> bool:
    """MP3 is decoded frame by frame from the start: random access is slow and its decoder chatty."""
    return f.format in ("MP3", "MPEG")


def header_promises_more(extra_info: str) -> bool:
    """Whether libsndfile's notes on a header (`SoundFile.extra_info`) say a chunk claims more bytes
    than the file holds ("data : 2000 (should be 956)"): a truncated file. Its other notes are no
    sign of one: "'data' chunk should be an even number of bytes" marks every mono 24-bit WAV with
    an odd number of samples, and a size smaller than the file holds means more data, not less."""
    return any(int(claimed) > int(actual) for claimed, actual in SIZE_NOTE.findall(extra_info))


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Read every frame as float32 (frames, channels), turning libsndfile failures into PressError."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise PressError(
            f"{path}: not a readable audio file ({err}); expected WAV, FLAC, OGG, MP3 or another "
            "format libsndfile reads"
        ) from None
    if header_promises_more(info.extra_info):
        raise PressError(f"{path}: truncated audio file: the header promises more data than the file holds")
    try:
        with quiet_decoder():
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise PressError(f"{path}: truncated or corrupt audio file ({err})") from None
    if data.shape[0] == 0:
        raise PressError(f"{path}: empty audio file (0 samples)")
    if info.frames > 0 and data.shape[0] < info.frames:
        raise PressError(
            f"{path}: truncated audio file: read {data.shape[0]} of the {info.frames} frames in its header"
        )
    if not np.isfinite(data).all():
        raise PressError(f"{path}: audio holds NaN or Inf samples; expected finite samples")
    return data, int(sr)


def select_channel(data: np.ndarray, channel: Channel, source: str, allow_all: bool = True) -> np.ndarray:
    """Apply the caller's explicit channel choice to (frames, channels) data.

    Returns (frames,), or (channels, frames) for channel="all" where `allow_all` (separation needs
    one channel, so the runner's readers refuse "all"). Multi-channel data with no choice is an
    error rather than a silent down-mix: a separation model given the wrong channel fails quietly.
    `source` names the data in messages (a path, or "the audio").
    """
    n_ch = data.shape[1]
    if n_ch == 1 and channel != "all":
        return data[:, 0]   # the choice is for multi-channel data: a batch may mix mono and stereo
    if channel == "all":
        if not allow_all:
            raise PressError(f"{source}: channel=\"all\" keeps every channel, but separation takes one; "
                             f"choose channel=\"mix\" or an index")
        return np.ascontiguousarray(data.T)
    if channel is None:
        raise PressError(f"{source}: has {n_ch} channels; choose one with {channel_options(allow_all)}")
    if channel == "mix":
        return data.mean(axis=1)
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if not -n_ch <= channel < n_ch:
            raise PressError(f"{source}: channel {channel} requested but it has {n_ch} channel(s)")
        return data[:, channel]
    raise PressError(f"unknown channel choice {channel!r}; expected {channel_options(allow_all)}")


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, channel: Channel = None
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32.

    Returns (x, sr): x is (L,) for a mono result (a mono file, channel="mix" or an index) and (C, L)
    for channel="all"; sr is `sample_rate` when given (the file is resampled) or the file's rate.
    A multi-channel file with channel=None is an error rather than a silent down-mix, because a
    separation model given the wrong channel fails quietly.
    """
    path = Path(path)
    if not path.exists():
        raise PressError(f"{path}: no such audio file")
    if path.is_dir():
        raise PressError(f"{path}: is a directory, expected an audio file")
    data, sr = _read(path)
    x = select_channel(data, channel, str(path))
    if sample_rate is not None and sample_rate != sr:
        n = x.shape[-1]
        x = resample(x, sr, sample_rate)
        if x.shape[-1] == 0:   # soxr rounds a few samples at a high rate down to none at a low one
            raise PressError(f"{path}: too short: {n} sample(s) at {sr} Hz make no sample at {sample_rate} Hz")
        sr = sample_rate
    return np.ascontiguousarray(x, dtype=np.float32), sr


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality, deterministic); float32 out."""
    if sr_in <= 0 or sr_out <= 0:
        raise PressError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x.copy()
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out).astype(np.float32, copy=False)
    if x.ndim == 2:
        return np.ascontiguousarray(soxr.resample(x.T, sr_in, sr_out).T, dtype=np.float32)
    raise PressError(f"resample expects (L,) or (C, L) audio, got shape {x.shape}")


class StreamResampler:
    """Mono audio from `sr_in` to `sr_out` a chunk at a time, with soxr's streaming resampler (HQ, as
    `resample`): causal, and exact (the chunks' outputs joined equal `resample` of the whole), but it
    works in blocks of its own, so it holds back up to tens of milliseconds (`delay`). At one rate
    it passes chunks through."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.sr_out = sr_out
        self._stream = (None if sr_in == sr_out else
                        soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ"))

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x if self._stream is None else self._stream.resample_chunk(x, last=last)

    def delay(self) -> float:
        """Seconds of output the resampler holds back now."""
        return 0.0 if self._stream is None else self._stream.delay() / self.sr_out


def write_audio(path: str | os.PathLike, x: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write (L,) or (C, L) audio atomically (press.io.files.atomic_write).

    A crash or Ctrl-C mid-write never leaves a half-written file under the final name. The format
    follows the suffix; `subtype` defaults to soundfile's (PCM_16 for WAV and FLAC), which clips
    samples outside [-1, 1].
    """
    path = Path(path)
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.size == 0:
        raise PressError(f"write_audio expects non-empty (L,) or (C, L) audio, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise PressError(f"refusing to write {path}: the audio holds NaN or Inf samples")
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise PressError(f"{path}: unknown audio format {path.suffix!r}; use e.g. .wav or .flac")
    frames = x if x.ndim == 1 else x.T
    atomic_write(path, lambda tmp: sf.write(tmp, frames, sample_rate, subtype=subtype, format=fmt))
    return path
