"""Libri2Mix / Libri3Mix, read through the metadata CSVs that LibriMix's generate_librimix.sh writes.

Layout: ROOT/Libri{2,3}Mix/wav{8k,16k}/{min,max}/metadata/mixture_{split}_{mix_clean|mix_both|mix_single}.csv
with columns mixture_ID, mixture_path, source_1_path, ..., [noise_path,] length. The paths in the CSV
are absolute as the scripts wrote them; for a corpus that was moved they are re-rooted at ROOT
(from their Libri{n}Mix/ component), and paths relative to ROOT are accepted too.
"""

from __future__ import annotations

import csv
from pathlib import Path

from press.data.base import (
    Example,
    FileDataset,
    check_choice,
    layout_error,
    rate_folder,
    require_dir,
)
from press.errors import PressError

SPLIT_NAMES = {"train": "train-360", "val": "dev", "test": "test"}
OFFICIAL = ("train-360", "train-100", "dev", "test")
TASKS = ("mix_clean", "mix_both", "mix_single")


def layout(n_src: int) -> str:
    return (
        f"  ROOT/Libri{n_src}Mix/wav{{8k,16k}}/{{min,max}}/metadata/mixture_{{train-360,train-100,dev,test}}_"
        "{mix_clean,mix_both,mix_single}.csv\n"
        f"  ROOT/Libri{n_src}Mix/wav{{8k,16k}}/{{min,max}}/{{split}}/"
        "{mix_clean,mix_both,mix_single,s1,...,noise}/<ID>.wav"
    )


def _resolve(path: str, root: Path, top: str) -> Path:
    p = Path(path)
    if p.is_absolute() and p.exists():
        return p
    if not p.is_absolute():
        return root / p
    parts = p.parts
    if top in parts:
        return root.joinpath(*parts[parts.index(top) :])
    return p


def librimix(
    root: str | Path,
    n_src: int,
    split: str = "train",
    sample_rate: int = 8000,
    mode: str = "min",
    task: str = "mix_clean",
) -> FileDataset:
    """Libri{n_src}Mix: train = train-360 (or name train-100 / dev / test directly), val = dev.

    task mix_clean / mix_both separate the speakers (noise is not a source); mix_single is
    enhancement: sources = [speaker 1, mixture - speaker 1].
    """
    corpus = f"libri{n_src}mix"
    check_choice(corpus, "split", split, tuple(SPLIT_NAMES) + OFFICIAL)
    check_choice(corpus, "mode", mode, ("min", "max"))
    check_choice(corpus, "task", task, TASKS)
    lay = layout(n_src)
    root = Path(root)
    top = f"Libri{n_src}Mix"
    require_dir(corpus, root / top, lay)
    folder = rate_folder(sample_rate)
    meta = root / top / folder / mode / "metadata" / f"mixture_{SPLIT_NAMES.get(split, split)}_{task}.csv"
    if not meta.exists():
        raise layout_error(corpus, f"metadata file {meta} not found", lay)
    n_used = 1 if task == "mix_single" else n_src
    examples = []
    with open(meta, newline="") as fh:
        reader = csv.DictReader(fh)
        need = ["mixture_ID", "mixture_path", "length"] + [f"source_{i}_path" for i in range(1, n_used + 1)]
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise PressError(f"{corpus}: {meta} lacks the columns {missing}; found {reader.fieldnames}")
        for row in reader:
            srcs = tuple(_resolve(row[f"source_{i}_path"], root, top) for i in range(1, n_used + 1))
            examples.append(
                Example(row["mixture_ID"], _resolve(row["mixture_path"], root, top), srcs, int(float(row["length"])))
            )
    if not examples:
        raise layout_error(corpus, f"{meta} lists no mixtures", lay)
    first = examples[0]
    for p in (first.mixture, *first.sources):
        if not p.exists():
            raise layout_error(corpus, f"{p} (listed in {meta.name}) is missing", lay)
    file_rate = 8000 if folder == "wav8k" else 16000
    return FileDataset(corpus, examples, sample_rate, enhancement=task == "mix_single", layout=lay, file_rate=file_rate)
