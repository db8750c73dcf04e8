"""The default microphone and speaker, mono, through the optional sounddevice package (PortAudio).

Blocking reads and writes of one chunk each: a live stream's loop reads a chunk, runs the model and
plays or writes the result, so a chunk that takes longer to process than to record shows up as
recorded samples dropped (`Microphone.lost`) or a gap in playback (`Speaker.late`), both counted.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from press.errors import PressError, optional_module

PURPOSE = "live audio (--input mic, --output speaker)"


def sounddevice() -> ModuleType:
    """The sounddevice module, or a PressError that says what to install: the package (an extra of
    press-sep), or on Linux the PortAudio library it loads at import (its macOS and Windows wheels
    bring their own)."""
    try:
        return optional_module("sounddevice", "stream", PURPOSE)
    except OSError as err:
        raise PressError(f"{PURPOSE} needs the PortAudio library, which sounddevice did not find ({err}): "
                         "apt-get install libportaudio2 (Debian, Ubuntu), dnf install portaudio (Fedora)") from None


class Microphone:
    """The default input device at `rate`, read `frames` samples at a time (float32, mono)."""

    def __init__(self, rate: int, frames: int) -> None:
        sd = sounddevice()
        self.rate, self.frames, self.lost = rate, frames, 0
        try:
            self._stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=frames)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as err:
            raise PressError(f"cannot record from the default microphone at {rate} Hz: {err}") from None

    def read(self) -> np.ndarray:
        """The next chunk, waiting until it is recorded; samples lost before it are counted in `lost`."""
        data, overflowed = self._stream.read(self.frames)
        self.lost += int(overflowed)
        return np.ascontiguousarray(data[:, 0])

    def close(self) -> None:
        self._stream.abort()
        self._stream.close()


class Speaker:
    """The default output device at `rate`, written chunk by chunk; `late` counts the gaps played
    because a chunk came after the previous one had run out."""

    def __init__(self, rate: int) -> None:
        sd = sounddevice()
        self.rate, self.late, self._playing = rate, 0, False
        try:
            self._stream = sd.OutputStream(samplerate=rate, channels=1, dtype="float32")
            self._stream.start()
        except (sd.PortAudioError, ValueError) as err:
            raise PressError(f"cannot play on the default speaker at {rate} Hz: {err}") from None

    def write(self, x: np.ndarray) -> None:
        if len(x):
            underflowed = self._stream.write(np.ascontiguousarray(x, dtype=np.float32))
            self.late += int(underflowed and self._playing)   # the first write follows the silence of the start
            self._playing = True

    def finish(self) -> None:
        """Play what is queued to its end, then close."""
        self._stream.stop()
        self._stream.close()

    def close(self) -> None:
        """Stop at once (an interrupted stream)."""
        if not self._stream.closed:
            self._stream.abort()
            self._stream.close()
