"""WSJ0-2mix and WSJ0-3mix, as written by the MERL mixing scripts (create_wav_{2,3}speakers.m).

Layout: ROOT/{2,3}speakers/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/<name>.wav, the same
file name in every folder. ROOT is the folder the scripts wrote to.
"""

from __future__ import annotations

from pathlib import Path

from press.data.base import (
    FileDataset,
    check_choice,
    paired_examples,
    rate_folder,
    require_dir,
)

SPLIT_DIRS = {"train": "tr", "val": "cv", "test": "tt"}


def layout(n_src: int) -> str:
    srcs = ",".join(f"s{i}" for i in range(1, n_src + 1))
    return f"  ROOT/{n_src}speakers/wav{{8k,16k}}/{{min,max}}/{{tr,cv,tt}}/{{mix,{srcs}}}/<name>.wav"


def wsj0mix(
    root: str | Path, n_src: int, split: str = "train", sample_rate: int = 8000, mode: str = "min"
) -> FileDataset:
    """The wsj0-{n_src}mix split (train=tr, val=cv, test=tt) at `sample_rate` (wav8k, or wav16k above 8 kHz)."""
    corpus = f"wsj0-{n_src}mix"
    check_choice(corpus, "split", split, tuple(SPLIT_DIRS))
    check_choice(corpus, "mode", mode, ("min", "max"))
    lay = layout(n_src)
    base = Path(root) / f"{n_src}speakers" / rate_folder(sample_rate) / mode / SPLIT_DIRS[split]
    require_dir(corpus, Path(root), lay)
    mix_dir = require_dir(corpus, base / "mix", lay)
    src_dirs = [require_dir(corpus, base / f"s{i}", lay) for i in range(1, n_src + 1)]
    examples = paired_examples(corpus, mix_dir, src_dirs, lay)
    return FileDataset(corpus, examples, sample_rate, enhancement=False, layout=lay)
