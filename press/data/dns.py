"""DNS Challenge 2020 (Interspeech 2020): synthesised training triplets and the synthetic test set.

Training data is what noisyspeech_synthesizer_singleprocess.py writes: noisy/<...>_fileid_<N>.wav,
clean/clean_fileid_<N>.wav, noise/noise_fileid_<N>.wav (paired by N). The challenge has no
validation set, so val holds the file ids with N % 20 == 0, and train the rest. The test split is
datasets/test_set/synthetic/no_reverb/{noisy,clean}/ of the challenge repository. Audio is 16 kHz;
other rates are resampled on load. Sources are [clean, noisy - clean].
"""

from __future__ import annotations

import re
from pathlib import Path

from press.data.base import Example, FileDataset, check_choice, layout_error

FILEID = re.compile(r"fileid_(\d+)\.wav$")
VAL_EVERY = 20
TEST_DIRS = (
    "datasets/test_set/synthetic/no_reverb",
    "test_set/synthetic/no_reverb",
    "synthetic/no_reverb",
    "no_reverb",
)
LAYOUT = (
    "  train/val: ROOT/{noisy,clean}/ (or ROOT/training/{noisy,clean}/) with noisy/<...>_fileid_<N>.wav and\n"
    "             clean/clean_fileid_<N>.wav\n"
    "  test:      ROOT/datasets/test_set/synthetic/no_reverb/{noisy,clean}/\n"
    "             (or ROOT/test_set/..., ROOT/synthetic/no_reverb, ROOT/no_reverb) with the same file naming"
)


def _pairs(base: Path) -> list[Example]:
    noisy_dir, clean_dir = base / "noisy", base / "clean"
    examples = []
    for noisy in sorted(noisy_dir.glob("*.wav")):
        match = FILEID.search(noisy.name)
        if match is None:
            raise layout_error("dns2020", f"{noisy.name} does not end in _fileid_<N>.wav", LAYOUT)
        clean = clean_dir / f"clean_fileid_{match.group(1)}.wav"
        if not clean.exists():
            raise layout_error("dns2020", f"{clean} is missing (the clean speech of {noisy.name})", LAYOUT)
        examples.append(Example(f"fileid_{match.group(1)}", noisy, (clean,)))
    return sorted(examples, key=lambda e: int(e.id.split("_")[1]))


def _find(root: Path, candidates: tuple[str, ...]) -> Path:
    for c in candidates:
        if (root / c / "noisy").is_dir() and (root / c / "clean").is_dir():
            return root / c
    tried = ", ".join(str(root / c) for c in candidates)
    raise layout_error("dns2020", f"no noisy/ and clean/ folders under any of: {tried}", LAYOUT)


def dns2020(root: str | Path, split: str = "train", sample_rate: int = 8000) -> FileDataset:
    check_choice("dns2020", "split", split, ("train", "val", "test"))
    root = Path(root)
    if split == "test":
        examples = _pairs(_find(root, TEST_DIRS))
    else:
        held_out = split == "val"
        examples = [
            e for e in _pairs(_find(root, (".", "training"))) if (int(e.id.split("_")[1]) % VAL_EVERY == 0) == held_out
        ]
    if not examples:
        raise layout_error("dns2020", f"no {split} examples found under {root}", LAYOUT)
    return FileDataset("dns2020", examples, sample_rate, enhancement=True, layout=LAYOUT)
