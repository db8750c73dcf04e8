"""WHAM! and WHAMR!, as written by their create_wham(r)_from_scratch.py scripts.

WHAM!:  ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix_clean,mix_both,mix_single,s1,s2,noise}/<name>.wav
WHAMR!: ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix_{clean,both,single}_{anechoic,reverb},
        s{1,2}_{anechoic,reverb},noise}/<name>.wav
Tasks follow the papers: sep_clean and sep_noisy separate two speakers, enh_single enhances one
speaker in noise, enh_both enhances the clean two-speaker mixture in noise. WHAMR!'s standard
targets are the anechoic sources of a reverberant mixture (reverb=True, target="anechoic").
"""

from __future__ import annotations

from pathlib import Path

from press.data.base import (
    FileDataset,
    check_choice,
    layout_error,
    paired_examples,
    rate_folder,
    require_dir,
)

SPLIT_DIRS = {"train": "tr", "val": "cv", "test": "tt"}
# task -> (mixture folder stem, source folder stems, enhancement?)
TASKS = {
    "sep_clean": ("mix_clean", ("s1", "s2"), False),
    "sep_noisy": ("mix_both", ("s1", "s2"), False),
    "enh_single": ("mix_single", ("s1",), True),
    "enh_both": ("mix_both", ("mix_clean",), True),
}
WHAM_LAYOUT = "  ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix_clean,mix_both,mix_single,s1,s2,noise}/<name>.wav"
WHAMR_LAYOUT = (
    "  ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix_clean,mix_both,mix_single}_{anechoic,reverb}/<name>.wav\n"
    "  ROOT/wav{8k,16k}/{min,max}/{tr,cv,tt}/{s1,s2}_{anechoic,reverb}/<name>.wav"
)


def _build(
    corpus: str,
    root: Path,
    split: str,
    sample_rate: int,
    mode: str,
    mix: str,
    srcs: tuple[str, ...],
    enhancement: bool,
    lay: str,
) -> FileDataset:
    check_choice(corpus, "split", split, tuple(SPLIT_DIRS))
    check_choice(corpus, "mode", mode, ("min", "max"))
    require_dir(corpus, root, lay)
    base = root / rate_folder(sample_rate) / mode / SPLIT_DIRS[split]
    if corpus == "wham" and not (base / mix).is_dir() and (base / f"{mix}_reverb").is_dir():
        raise layout_error(corpus, f"{base} holds WHAMR! folders ({mix}_reverb, ...); load it as 'whamr'", lay)
    mix_dir = require_dir(corpus, base / mix, lay)
    src_dirs = [require_dir(corpus, base / s, lay) for s in srcs]
    examples = paired_examples(corpus, mix_dir, src_dirs, lay)
    return FileDataset(corpus, examples, sample_rate, enhancement=enhancement, layout=lay)


def wham(
    root: str | Path, split: str = "train", sample_rate: int = 8000, mode: str = "min", task: str = "sep_noisy"
) -> FileDataset:
    """WHAM!; enhancement tasks give sources [speech, mixture - speech]."""
    check_choice("wham", "task", task, tuple(TASKS))
    mix, srcs, enh = TASKS[task]
    return _build("wham", Path(root), split, sample_rate, mode, mix, srcs, enh, WHAM_LAYOUT)


def whamr(
    root: str | Path,
    split: str = "train",
    sample_rate: int = 8000,
    mode: str = "min",
    task: str = "sep_noisy",
    reverb: bool = True,
    target: str = "anechoic",
) -> FileDataset:
    """WHAMR!: the mixture is reverberant (reverb=True) or anechoic; targets anechoic or reverberant sources.

    With target="anechoic" and reverb=True the model separates and dereverberates (the WHAMR! paper's
    task); for enhancement the second source, mixture - speech, then holds noise and reverberation.
    """
    check_choice("whamr", "task", task, tuple(TASKS))
    check_choice("whamr", "target", target, ("anechoic", "reverb"))
    mix, srcs, enh = TASKS[task]
    mix_dir = f"{mix}_{'reverb' if reverb else 'anechoic'}"
    src_dirs = tuple(f"{s}_{target}" for s in srcs)
    return _build("whamr", Path(root), split, sample_rate, mode, mix_dir, src_dirs, enh, WHAMR_LAYOUT)
