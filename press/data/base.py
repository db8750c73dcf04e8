"""What every file-backed corpus shares: the item contract, path checks and layout errors.

Items are `{"mixture": (L,), "sources": (S, L), "id": str}` float32 tensors at the requested
sample rate. Enhancement corpora return two sources, speech and noise = mixture - speech, computed
rather than read so that the sources always sum exactly to the mixture, whatever the corpus stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from press.errors import PressError
from press.io.audio import header_promises_more, load_audio

SPLITS = ("train", "val", "test")
T = TypeVar("T")


def layout_error(corpus: str, problem: str, layout: str) -> PressError:
    """An error that says what was wrong and shows the on-disk layout the loader expects."""
    return PressError(f"{corpus}: {problem}\nexpected layout:\n{layout}")


def check_choice(corpus: str, what: str, value: object, options: tuple) -> None:
    if value not in options:
        raise PressError(f"{corpus}: unknown {what} {value!r}; expected one of {', '.join(map(str, options))}")


def require_dir(corpus: str, path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise layout_error(corpus, f"folder {path} not found", layout)
    return path


def rate_folder(sample_rate: int) -> str:
    """wav8k for rates up to 8 kHz, wav16k above (then resampled on load when needed)."""
    if sample_rate <= 0:
        raise PressError(f"sample_rate must be positive, got {sample_rate}")
    return "wav8k" if sample_rate <= 8000 else "wav16k"


def read_or_skip(corpus: str, path: Path, read: Callable[[Path], T], skip: bool, skipped: list[str]) -> T | None:
    """`read(path)`; with `skip`, None instead of its PressError, the file noted in `skipped` with a
    warning that names it.

    A corpus of thousands of files can hold one that a copy truncated or a disk damaged: without
    `skip` that file stops training with an error naming it; with it (`data.skip_bad_files`) the
    run goes on without it and says so, and the run records list it."""
    try:
        return read(path)
    except PressError as err:
        if not skip:
            raise
        skipped.append(str(err))
        warnings.warn(f"{corpus}: skipping an unreadable file: {err}", stacklevel=2)
        return None


def header_frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from a file's header, or a PressError naming the file when the header is
    unreadable or promises more data than the file holds."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise PressError(f"{path}: not a readable audio file ({err})") from None
    if header_promises_more(info.extra_info):
        raise PressError(f"{path}: truncated audio file: the header promises more data than the file holds")
    return int(info.frames), int(info.samplerate)


@dataclass(frozen=True)
class Example:
    """One item on disk: the mixture file and either its source files or (enhancement) its speech file."""

    id: str
    mixture: Path
    sources: tuple[Path, ...]
    frames: int | None = None  # length at the dataset's `file_rate`, when the metadata states it


def paired_examples(corpus: str, mix_dir: Path, src_dirs: list[Path], layout: str) -> list[Example]:
    """One Example per mixture WAV in mix_dir, its sources the same-named files in src_dirs (the
    layout the WSJ0-mix and WHAM! scripts write); a missing source or an empty folder is an error."""
    examples = []
    for mix in sorted(mix_dir.glob("*.wav")):
        srcs = tuple(d / mix.name for d in src_dirs)
        for s in srcs:
            if not s.exists():
                raise layout_error(corpus, f"{s} is missing (the source of {mix})", layout)
        examples.append(Example(mix.stem, mix, srcs))
    if not examples:
        raise layout_error(corpus, f"no .wav files in {mix_dir}", layout)
    return examples


class FileDataset(Dataset):
    """A corpus given as a list of Examples; loads, resamples and checks each item on access."""

    def __init__(
        self,
        corpus: str,
        examples: list[Example],
        sample_rate: int,
        enhancement: bool,
        layout: str,
        file_rate: int | None = None,
    ):
        if not examples:
            raise layout_error(corpus, "no examples found", layout)
        self.corpus = corpus
        self.examples = examples
        self.sample_rate = int(sample_rate)
        self.enhancement = enhancement
        self.n_src = 2 if enhancement else len(examples[0].sources)
        self._layout = layout
        self._file_rate = file_rate  # the rate of Example.frames
        self._lengths: list[int] | None = None
        self.skipped: list[str] = []  # the files `drop_unreadable` left out, with their problems

    def __len__(self) -> int:
        return len(self.examples)

    def _load(self, path: Path) -> np.ndarray:
        if not path.exists():
            raise layout_error(self.corpus, f"file {path} is missing", self._layout)
        return load_audio(path, self.sample_rate)[0]

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        mix = self._load(ex.mixture)
        srcs = [self._load(p) for p in ex.sources]
        if any(len(s) != len(mix) for s in srcs):
            lens = ", ".join(f"{p.name}: {len(s)}" for p, s in zip(ex.sources, srcs))
            raise PressError(
                f"{self.corpus}: {ex.id}: sources and mixture differ in length (mixture {len(mix)}; {lens})"
            )
        if self.enhancement:
            srcs = [srcs[0], mix - srcs[0]]
        return {"mixture": torch.from_numpy(mix), "sources": torch.from_numpy(np.stack(srcs)), "id": ex.id}

    def lengths(self) -> list[int]:
        """Item lengths in samples at `sample_rate`, from metadata or file headers (no decoding)."""
        if self._lengths is None:
            out = []
            for ex in self.examples:
                if ex.frames is not None and ex.frames >= 0:
                    frames, rate = ex.frames, self._file_rate
                else:
                    if not ex.mixture.exists():
                        raise layout_error(self.corpus, f"file {ex.mixture} is missing", self._layout)
                    frames, rate = header_frames(ex.mixture)
                out.append(
                    frames if rate in (None, self.sample_rate) else int(np.ceil(frames * self.sample_rate / rate))
                )
            self._lengths = out
        return self._lengths

    def drop_unreadable(self) -> None:
        """Leave out the examples with a missing file or an unreadable or truncated header, each noted
        in `skipped` with a warning that names the file (`data.skip_bad_files`).

        Files are read lazily, so this checks headers only, one open per file: it finds what a copy
        cut short or a disk damaged in a WAV corpus, while a file whose samples fail to decode still
        stops the run at its first use, with an error naming it."""
        self.examples = [ex for ex in self.examples
                         if all(read_or_skip(self.corpus, p, self._check_file, True, self.skipped) is not None
                                for p in (ex.mixture, *ex.sources))]
        if not self.examples:
            raise layout_error(self.corpus, "no readable examples left", self._layout)
        self._lengths = None

    def _check_file(self, path: Path) -> Path:
        if not path.exists():
            raise layout_error(self.corpus, f"file {path} is missing", self._layout)
        header_frames(path)
        return path
