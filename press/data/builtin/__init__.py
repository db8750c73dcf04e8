"""The built-in corpus: clean utterances shipped with the package, mixed on the fly from a seed.

Only clean 8 kHz FLAC utterances are stored (this folder: manifest.csv + audio/). Each item is a
pure function of (seed, split, task, index[, epoch]): a NumPy generator keyed by those numbers
picks speakers, utterances, overlap, levels and noise, so validation and test lists are fixed, a
training epoch of any size is reproducible, and DataLoader workers need no shared state.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr
import torch
from torch.utils.data import Dataset

from press.data.base import read_or_skip
from press.data.manifest import SAMPLE_RATE, read_manifest
from press.data.mixing import SNR_DB, add_noise, place_sources, scale_to_level
from press.data.noise import NOISE_KINDS, make_noise
from press.errors import PressError
from press.io.audio import load_audio

CORPUS_DIR = Path(__file__).parent
TASKS = ("separate", "enhance")
SUBSETS = ("all", "real", "tts")
SIZES = {"val": 500, "test": 1000}  # fixed evaluation lists; train size is `epoch_size`
# In val and test a speaker is drawn in proportion to its seconds of speech, capped here: with uniform
# draws a talker who owns one 5-second utterance was in a third of the recorded-speech mixtures and
# decided the score, while the cap keeps one long recording from filling the list.
HELD_OUT_CAP_SECONDS = 60.0


def load_manifest(root: str | Path | None = None) -> list[dict]:
    """Manifest rows of the shipped corpus (root=None) or of a `press data synth` output folder."""
    rows = read_manifest(Path(root or CORPUS_DIR).expanduser() / "manifest.csv")
    for r in rows:
        r["seconds"] = float(r["seconds"])
    return rows


def summary(rows: list[dict]) -> dict:
    """Voices and hours per split and kind: what `press data info` prints."""
    out: dict = defaultdict(lambda: {"speakers": set(), "utterances": 0, "seconds": 0.0})
    for r in rows:
        for key in ((r["split"], r["kind"]), (r["split"], "all")):
            out[key]["speakers"].add(r["speaker"])
            out[key]["utterances"] += 1
            out[key]["seconds"] += r["seconds"]
    return {
        k: {"speakers": len(v["speakers"]), "utterances": v["utterances"], "hours": v["seconds"] / 3600}
        for k, v in out.items()
    }


def _code(*parts: object) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


class BuiltinMixtures(Dataset):
    """Two-/three-speaker mixtures (task="separate") or noisy speech (task="enhance") from the built-in corpus.

    subset selects the speakers the sources come from: "all", "real" (recorded speech only; in the
    test split that is speech no model trained on) or "tts". Noise for "enhance" is generated, with
    babble drawn from voices reserved for it (split "babble" in the manifest).

    In val and test, speakers are drawn in proportion to their speech, up to HELD_OUT_CAP_SECONDS each.
    Two training-only augmentations (ignored for val and test, whose lists stay fixed):
    `speed=(lo, hi)` plays each utterance at a random speed in that range (pitch and formants move
    with it: new voices from the same talkers), and `real_weight=w` makes every recorded speaker w
    times as likely to be drawn as a TTS one (recorded speech is what users separate; the corpus
    has far fewer recorded speakers than synthetic ones). `real_cap_seconds=c` shares the recorded
    speakers' draws (still w times a TTS speaker's on average) in proportion to their seconds of
    speech up to c: otherwise a talker who owns one 2-second clip is drawn as often as one with 45
    minutes, and the network hears that clip in a mixture every few hundred items.
    `skip_bad_files=True` leaves out an utterance whose file is unreadable (listed in `skipped`, with
    a warning) instead of stopping with an error that names it.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        sample_rate: int = SAMPLE_RATE,
        mode: str = "min",
        task: str = "separate",
        n_src: int = 2,
        subset: str = "all",
        epoch_size: int = 10000,
        num_examples: int | None = None,
        seed: int = 0,
        speed: tuple[float, float] | None = None,
        real_weight: float = 1.0,
        real_cap_seconds: float | None = None,
        skip_bad_files: bool = False,
    ):
        for what, value, options in (
            ("split", split, ("train", "val", "test")),
            ("mode", mode, ("min", "max")),
            ("task", task, TASKS),
            ("subset", subset, SUBSETS),
        ):
            if value not in options:
                raise PressError(f"builtin: unknown {what} {value!r}; expected one of {', '.join(options)}")
        if speed is not None and not (len(speed) == 2 and 0.5 <= speed[0] <= speed[1] <= 2.0):
            raise PressError(f"builtin: speed must be a range (lo, hi) within 0.5..2.0, got {speed!r}")
        if not real_weight > 0:
            raise PressError(f"builtin: real_weight must be positive, got {real_weight!r}")
        if real_cap_seconds is not None and not real_cap_seconds > 0:
            raise PressError(f"builtin: real_cap_seconds must be positive, got {real_cap_seconds!r}")
        if task == "separate" and n_src not in (2, 3):
            raise PressError(f"builtin: n_src must be 2 or 3 for task='separate', got {n_src}")
        self.root = Path(root or CORPUS_DIR).expanduser()
        self.split, self.mode, self.task, self.subset, self.seed = split, mode, task, subset, int(seed)
        self.sample_rate = int(sample_rate)
        self.n_src = n_src if task == "separate" else 2
        self._n_talkers = n_src if task == "separate" else 1
        self._size = int(
            num_examples if num_examples is not None else (epoch_size if split == "train" else SIZES[split])
        )
        self.epoch = 0
        rows = load_manifest(root)
        self.skipped: list[str] = []
        self._skip = bool(skip_bad_files)
        audio = self._read_all([r for r in rows if r["split"] == split and (subset == "all" or r["kind"] == subset)])
        chosen = [r for r, _ in audio]
        self._speakers: dict[str, list[np.ndarray]] = defaultdict(list)
        self._uids: dict[str, list[str]] = defaultdict(list)
        for r, x in audio:
            self._speakers[r["speaker"]].append(x)
            self._uids[r["speaker"]].append(r["id"])
        self._speaker_names = sorted(self._speakers)
        train = split == "train"
        self._speed = tuple(map(float, speed)) if speed is not None and train else None
        kinds = {r["speaker"]: r["kind"] for r in chosen}
        seconds = defaultdict(float)
        for r in chosen:
            seconds[r["speaker"]] += r["seconds"]
        if train:
            real = np.array([kinds[n] == "real" for n in self._speaker_names])
            weights = np.where(real, real_weight, 1.0)
            if real_cap_seconds is not None and real.any():
                capped = np.array([min(seconds[n], real_cap_seconds) for n in self._speaker_names])[real]
                weights[real] = real_weight * real.sum() * capped / capped.sum()
        else:
            weights = np.array([min(seconds[n], HELD_OUT_CAP_SECONDS) for n in self._speaker_names])
        self._speaker_p = weights / weights.sum() if np.any(weights != weights[0]) else None
        if len(self._speaker_names) < self._n_talkers:
            raise PressError(
                f"builtin: split {split!r} subset {subset!r} has {len(self._speaker_names)} speaker(s); "
                f"{self._n_talkers} needed for {task} with n_src={n_src}"
            )
        babble = [r for r in rows if r["split"] == "babble"] if task == "enhance" else []
        self._babble = [x for _, x in self._read_all(babble)]
        if task == "enhance" and not self._babble:
            raise PressError(
                f"builtin: {self.root / 'manifest.csv'} lists no 'babble' voices, needed for enhancement noise"
            )

    def _read_all(self, rows: list[dict]) -> list[tuple[dict, np.ndarray]]:
        """(row, audio at the corpus rate) of each row whose file reads; an unreadable one stops
        with an error naming it, or with `skip_bad_files` is left out (`read_or_skip`)."""
        read = [(r, read_or_skip("builtin", self.root / r["path"], self._read, self._skip, self.skipped))
                for r in rows]
        return [(r, x) for r, x in read if x is not None]

    def _read(self, path: Path) -> np.ndarray:
        return load_audio(path, self.sample_rate)[0]

    def __len__(self) -> int:
        return self._size

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of training mixtures for each epoch (no effect on val/test)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        epoch = self.epoch if self.split == "train" else 0
        return np.random.default_rng(
            [self.seed, *_code(self.split, self.task, self.subset, self.mode), self.n_src, epoch, index]
        )

    def _layout(self, index: int) -> tuple[np.random.Generator, np.ndarray, str, list[str]]:
        """The talkers of item `index` laid out in time: (generator, (S, L) sources, overlap, utterance ids)."""
        if not 0 <= index < self._size:
            raise IndexError(index)
        rng = self._rng(index)
        speakers = rng.choice(len(self._speaker_names), size=self._n_talkers, replace=False, p=self._speaker_p)
        utts, uids = [], []
        for s in speakers:
            name = self._speaker_names[int(s)]
            k = int(rng.integers(len(self._speakers[name])))
            utt = self._speakers[name][k]
            if self._speed is not None:
                # played `factor` times faster: read as if recorded at sr * factor, resampled to sr
                factor = float(rng.uniform(*self._speed))
                utt = soxr.resample(utt, round(self.sample_rate * factor), self.sample_rate).astype(np.float32)
            utts.append(utt)
            uids.append(self._uids[name][k])
        sources, overlap = place_sources(utts, rng, self.sample_rate, self.mode if self.task == "separate" else "max")
        return rng, sources, overlap, uids

    def lengths(self) -> list[int]:
        """Item lengths in samples for this epoch, without mixing or generating noise (for length buckets)."""
        return [self._layout(i)[1].shape[-1] for i in range(self._size)]

    def __getitem__(self, index: int) -> dict:
        rng, sources, overlap, uids = self._layout(index)
        if self.task == "separate":
            mixture, sources = scale_to_level(sources.sum(0), sources, rng)
            tag = f"sep{self.n_src}-{overlap}"
        else:
            speech = sources[0]
            kinds = rng.choice(NOISE_KINDS, size=int(rng.integers(1, 3)), replace=False)
            noise = sum(
                rng.uniform(0.3, 1.0) * make_noise(str(k), rng, len(speech), self.sample_rate, self._babble)
                for k in kinds
            )
            snr = float(rng.uniform(*SNR_DB))
            mixture = add_noise(speech, noise, snr)
            mixture, speech = scale_to_level(mixture, speech, rng)
            sources = np.stack([speech, mixture - speech])
            tag = f"enh-{'+'.join(map(str, kinds))}-snr{snr:.1f}"
        return {
            "mixture": torch.from_numpy(mixture),
            "sources": torch.from_numpy(np.ascontiguousarray(sources, dtype=np.float32)),
            "id": f"builtin-{self.split}-{index:06d}-{tag}:{'+'.join(uids)}",
        }
