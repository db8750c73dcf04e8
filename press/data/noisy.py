"""Recorded speech in recorded noise, mixed on the fly: the enhancement corpus PRESS trains and tests on.

A corpus folder (rendered by `press data noisy`, or the slice shipped in `press/data/builtin/noisy`)
holds 16 kHz speech and noise with a split each (speech by speaker, noise by source file). Each item
is a pure function of (seed, split, index[, epoch]): one utterance laid out with 0-0.5 s of noise
before and after it, one noise (a second with probability SECOND_NOISE) of a kind drawn by
KIND_WEIGHTS, at an SNR uniform in -5...20 dB over the active speech, mixture level uniform in
-33...-18 dBFS. Kinds: the recorded ones (press.corpus.noise_catalogue.NOISE_KINDS), babble of 3-6 other
talkers of the same split, and the generated kinds of press.data.noise (coloured noise, hum, clicks,
tones). Impulses are short: they recur at random gaps over the item. Sources: (speech, noise =
mixture - speech).

`narrowband=p` (training only) band-limits a share p of the items to 4 kHz, speech and noise alike,
as an 8 kHz telephone recording played at 16 kHz is: the model then leaves such input narrowband
rather than hallucinating a band it never had.
"""

from __future__ import annotations

import csv
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr
import torch
from torch.utils.data import Dataset

from press.data.base import read_or_skip
from press.data.mixing import SNR_DB, add_noise, place_sources, scale_to_level
from press.data.noise import make_noise
from press.errors import PressError
from press.io.audio import load_audio

RATE = 16000
SHIPPED = Path(__file__).parent / "builtin" / "noisy"
SIZES = {"val": 500, "test": 1000}
KIND_WEIGHTS = {"ambience": 0.25, "machines": 0.2, "impulses": 0.12, "music": 0.15, "babble": 0.1,
                "coloured": 0.08, "hum": 0.03, "clicks": 0.03, "tones": 0.04}
SECOND_NOISE = 0.25
HELD_OUT_CAP_SECONDS = 120.0  # val/test draw a speaker by its seconds of speech, capped (as the built-in corpus)


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        raise PressError(f"{path}: missing; render the corpus with `press data noisy {path.parent} --root /`")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _code(*parts: object) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


def _band_limit(x: np.ndarray, sr: int, band_rate: int) -> np.ndarray:
    """x through `band_rate` and back: the band above band_rate / 2 removed, the length kept."""
    y = soxr.resample(soxr.resample(x, sr, band_rate), band_rate, sr).astype(np.float32)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


class NoisySpeech(Dataset):
    """Noisy speech from a rendered corpus folder (root=None: the shipped slice), two sources (speech, noise).

    `skip_bad_files=True` leaves out a speech or noise file that is unreadable (listed in `skipped`,
    with a warning) instead of stopping with an error that names it."""

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        sample_rate: int = RATE,
        epoch_size: int = 10000,
        num_examples: int | None = None,
        seed: int = 0,
        snr: tuple[float, float] = SNR_DB,
        narrowband: float = 0.0,
        max_seconds: float | None = None,
        skip_bad_files: bool = False,
    ):
        if split not in ("train", "val", "test"):
            raise PressError(f"noisy: unknown split {split!r}; expected train, val or test")
        if not 0.0 <= narrowband <= 1.0:
            raise PressError(f"noisy: narrowband must be a probability in [0, 1], got {narrowband!r}")
        if not (len(snr) == 2 and snr[0] <= snr[1]):
            raise PressError(f"noisy: snr must be a range (lo, hi) in dB, got {snr!r}")
        self.root = Path(root).expanduser() if root is not None else SHIPPED
        self.split, self.seed, self.sample_rate, self.n_src = split, int(seed), int(sample_rate), 2
        self.snr, self.max_seconds = (float(snr[0]), float(snr[1])), max_seconds
        self.narrowband = float(narrowband) if split == "train" else 0.0
        self._size = int(num_examples if num_examples is not None else (epoch_size if split == "train" else SIZES[split]))
        self.epoch = 0
        self.skipped: list[str] = []
        self._skip = bool(skip_bad_files)
        speech = self._read_all([r for r in _read_csv(self.root / "speech.csv") if r["split"] == split])
        noise = self._read_all([r for r in _read_csv(self.root / "noise.csv") if r["split"] == split])
        if not speech or not noise:
            raise PressError(f"noisy: {self.root} holds no {split} {'speech' if not speech else 'noise'}")
        self._utts: dict[str, list[np.ndarray]] = defaultdict(list)
        self._uids: dict[str, list[str]] = defaultdict(list)
        seconds: dict[str, float] = defaultdict(float)
        for r, x in speech:
            self._utts[r["speaker"]].append(x)
            self._uids[r["speaker"]].append(r["id"])
            seconds[r["speaker"]] += float(r["seconds"])
        self._speakers = sorted(self._utts)
        # training: by the square root of a speaker's seconds, between uniform draws (a reader of 40 s of
        # words as often as a 50-minute talent) and draws by seconds (a few talents fill every batch)
        weights = np.array([np.sqrt(seconds[s]) if split == "train" else min(seconds[s], HELD_OUT_CAP_SECONDS)
                            for s in self._speakers])
        self._speaker_p = weights / weights.sum()
        self._noise: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
        for r, x in noise:
            self._noise[r["kind"]].append((r["id"], x))
        kinds = [k for k in KIND_WEIGHTS if k in self._noise or k not in ("ambience", "machines", "impulses", "music")]
        if len(self._speakers) < 2:
            kinds.remove("babble")
        self._kinds = kinds
        p = np.array([KIND_WEIGHTS[k] for k in kinds])
        self._kind_p = p / p.sum()

    def _read_all(self, rows: list[dict]) -> list[tuple[dict, np.ndarray]]:
        """(row, 16-bit audio) of each row whose file reads; an unreadable one stops with an error
        naming it, or with `skip_bad_files` is left out (`read_or_skip`)."""
        read = [(r, read_or_skip("noisy", self.root / r["path"], self._read, self._skip, self.skipped)) for r in rows]
        return [(r, x) for r, x in read if x is not None]

    def _read(self, path: Path) -> np.ndarray:
        x = load_audio(path, self.sample_rate)[0]
        return (np.clip(x, -1, 1) * 32767).astype(np.int16)  # half the memory of float32; exact for the FLACs

    def __len__(self) -> int:
        return self._size

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of training mixtures for each epoch (no effect on val/test)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        epoch = self.epoch if self.split == "train" else 0
        return np.random.default_rng([self.seed, *_code("noisy", self.split), epoch, index])

    def _layout(self, index: int) -> tuple[np.random.Generator, np.ndarray, str, int]:
        if not 0 <= index < self._size:
            raise IndexError(index)
        rng = self._rng(index)
        s = int(rng.choice(len(self._speakers), p=self._speaker_p))
        k = int(rng.integers(len(self._utts[self._speakers[s]])))
        utt = self._utts[self._speakers[s]][k].astype(np.float32) / 32767.0
        if self.max_seconds is not None and len(utt) > self.max_seconds * self.sample_rate:
            start = int(rng.integers(len(utt) - int(self.max_seconds * self.sample_rate) + 1))
            utt = utt[start : start + int(self.max_seconds * self.sample_rate)]
        sources, _ = place_sources([utt], rng, self.sample_rate, "max")
        return rng, sources[0], self._uids[self._speakers[s]][k], s

    def lengths(self) -> list[int]:
        """Item lengths in samples, without mixing (for length buckets)."""
        return [len(self._layout(i)[1]) for i in range(self._size)]

    def _recorded(self, kind: str, rng: np.random.Generator, length: int) -> tuple[np.ndarray, str]:
        uid, clip = self._noise[kind][int(rng.integers(len(self._noise[kind])))]
        clip = clip.astype(np.float32) / 32767.0
        if kind == "impulses":  # a short event, recurring at random gaps of 0.2-2 s
            out = np.zeros(length, dtype=np.float32)
            pos = int(rng.integers(0, max(1, int(0.5 * self.sample_rate))))
            while pos < length:
                seg = clip[: length - pos]
                out[pos : pos + len(seg)] += seg * rng.uniform(0.5, 1.0)
                pos += len(clip) + int(rng.uniform(0.2, 2.0) * self.sample_rate)
            return out, uid
        reps = int(np.ceil((length + len(clip)) / len(clip)))
        start = int(rng.integers(len(clip)))
        return np.tile(clip, reps)[start : start + length], uid

    def _babble(self, rng: np.random.Generator, length: int, exclude: int) -> np.ndarray:
        others = [i for i in range(len(self._speakers)) if i != exclude]
        picks = rng.choice(others, size=min(len(others), int(rng.integers(3, 7))), replace=False)
        voices = []
        for i in picks:
            utts = self._utts[self._speakers[int(i)]]
            voices.append(utts[int(rng.integers(len(utts)))].astype(np.float32) / 32767.0)
        return make_noise("babble", rng, length, self.sample_rate, voices)

    def __getitem__(self, index: int) -> dict:
        rng, speech, uid, speaker = self._layout(index)
        n = 2 if rng.random() < SECOND_NOISE else 1
        kinds = [str(k) for k in rng.choice(self._kinds, size=n, replace=False, p=self._kind_p)]
        noise = np.zeros(len(speech), dtype=np.float32)
        names = []
        for kind in kinds:
            if kind in self._noise:
                part, name = self._recorded(kind, rng, len(speech))
            elif kind == "babble":
                part, name = self._babble(rng, len(speech), speaker), "babble"
            else:
                part, name = make_noise(kind, rng, len(speech), self.sample_rate, []), kind
            rms = float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))
            noise += rng.uniform(0.3, 1.0) * part / max(rms, 1e-8)
            names.append(name)
        snr = float(rng.uniform(*self.snr))
        mixture = add_noise(speech, noise, snr)
        if self.narrowband and rng.random() < self.narrowband:
            band = self.sample_rate // 2 if self.sample_rate > 8000 else self.sample_rate
            mixture, speech = (_band_limit(x, self.sample_rate, band) for x in (mixture, speech))
        mixture, speech = scale_to_level(mixture, speech, rng)
        sources = np.stack([speech, mixture - speech])
        return {
            "mixture": torch.from_numpy(mixture),
            "sources": torch.from_numpy(np.ascontiguousarray(sources, dtype=np.float32)),
            "id": f"noisy-{self.split}-{index:06d}-snr{snr:.1f}:{uid}+{'+'.join(names)}",
        }
