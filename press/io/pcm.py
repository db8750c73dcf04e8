"""Raw PCM on pipes: headerless mono samples in and out, a chunk at a time.

A pipe (`sox ... -t raw - | press stream ... | sox -t raw - ...`) carries no header, so the format
and rate are the caller's word. Integers scale by 2^15 both ways, as sox and ffmpeg scale them (so
16-bit samples pass through a float stage unchanged); a float beyond full scale is clipped on the way
out, since 16 bits would otherwise wrap it around.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from press.errors import PressError

FORMATS: dict[str, np.dtype] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
FULL_SCALE = 2.0 ** 15


def decode(data: bytes, fmt: str) -> np.ndarray:
    """Whole samples of `fmt` as float32 (integers in [-1, 1))."""
    x = np.frombuffer(data, dtype=FORMATS[fmt])
    if x.dtype.kind == "i":
        return x.astype(np.float32) / np.float32(FULL_SCALE)
    return x.astype(np.float32)


def encode(x: np.ndarray, fmt: str) -> bytes:
    """float samples as `fmt`: integers rounded to the nearest step and clipped to full scale."""
    dtype = FORMATS[fmt]
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x * FULL_SCALE), info.min, info.max).astype(dtype).tobytes()
    return np.asarray(x, dtype=dtype).tobytes()


class PcmReader:
    """Chunks of `frames` samples from a binary stream, as float32; the last may be shorter.

    A pipe hands over what the writer has written so far; a chunk waits for all of its bytes (a
    short read is not the end), so that every chunk but the last holds exactly `frames` samples.
    """

    def __init__(self, stream: BinaryIO, fmt: str, rate: int, frames: int) -> None:
        self.stream, self.fmt, self.rate = stream, fmt, rate   # the rate is the caller's word, carried along
        self.size = FORMATS[fmt].itemsize
        self.frames = frames
        self.samples = 0
        self.dropped = 0    # bytes at the end that made no whole sample

    def read(self) -> np.ndarray | None:
        """The next chunk, or None at the end of the stream."""
        want = self.frames * self.size
        data = bytearray()
        while len(data) < want:
            more = self.stream.read(want - len(data))
            if not more:
                break
            data += more
        whole = len(data) // self.size * self.size
        self.dropped += len(data) - whole   # only the last read comes up short
        if not whole:
            return None
        x = decode(bytes(data[:whole]), self.fmt)
        if not np.isfinite(x).all():
            bad = self.samples + int(np.flatnonzero(~np.isfinite(x))[0])
            raise PressError(f"the raw input holds a NaN or Inf at sample {bad}; expected finite samples "
                             f"({self.fmt}: is the format right?)")
        self.samples += len(x)
        return x


class PcmWriter:
    """float samples to a binary stream as `fmt`, flushed per chunk so that a pipe's reader gets them
    at once. A closed pipe raises BrokenPipeError once: the stream's descriptor then points at
    /dev/null, so that Python's own flush at exit finds nowhere to fail."""

    def __init__(self, stream: BinaryIO, fmt: str) -> None:
        self.stream, self.fmt = stream, fmt

    def write(self, x: np.ndarray) -> None:
        try:
            self.stream.write(encode(x, self.fmt))
            self.stream.flush()
        except BrokenPipeError:
            sink = os.open(os.devnull, os.O_WRONLY)
            os.dup2(sink, self.stream.fileno())
            os.close(sink)
            raise

    def finish(self) -> None:
        """Nothing is held back: every chunk was flushed as it came."""
