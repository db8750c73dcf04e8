"""Datasets for PRESS: the standard corpora and the built-in offline corpus, behind one entry point.

Every dataset is a torch Dataset whose items are
`{"mixture": FloatTensor (L,), "sources": FloatTensor (S, L), "id": str}` at the requested sample
rate, with attributes `sample_rate` and `n_src`. Enhancement corpora have two sources: speech and
noise = mixture - speech. Training views (crops, padding, bucketing) are in
`press.data.views`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from press.errors import PressError

NAMES = ("builtin", "noisy", "wsj0-2mix", "wsj0-3mix", "libri2mix", "libri3mix", "wham", "whamr", "dns2020", "voicebank-demand")


def get_dataset(
    name: str, root: str | Path | None = None, split: str = "train", sample_rate: int = 8000, mode: str = "min", **kw
):
    """The dataset `name` (one of NAMES) from `root`, for split train / val / test.

    `mode` ("min"/"max") applies to corpora that have it (WSJ0-mix, LibriMix, WHAM!, WHAMR!, builtin).
    Extra keywords go to the corpus: builtin (task, n_src, subset, epoch_size, num_examples, seed),
    libri{2,3}mix (task=mix_clean|mix_both|mix_single), wham (task=sep_clean|sep_noisy|enh_single|enh_both),
    whamr (task, reverb, target), voicebank-demand (speakers=28|56), noisy (recorded speech in recorded
    noise: epoch_size, num_examples, seed, snr, narrowband). root=None is allowed only for builtin and
    noisy (their shipped corpora).
    """
    if name not in NAMES:
        raise PressError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    if name == "builtin":
        from press.data.builtin import BuiltinMixtures

        return BuiltinMixtures(root, split=split, sample_rate=sample_rate, mode=mode, **kw)
    if name == "noisy":
        from press.data.noisy import NoisySpeech

        return NoisySpeech(root, split=split, sample_rate=sample_rate, **kw)
    if root is None:
        raise PressError(f"{name}: root= is required: the folder holding the corpus (see docs/data.md)")
    if not Path(root).exists():
        raise PressError(f"{name}: root {root} does not exist")
    fn, args = _loader(name, root, split, sample_rate, mode)
    options = [p for p in inspect.signature(fn).parameters][len(args) :]
    unknown = sorted(set(kw) - set(options))
    if unknown:
        raise PressError(f"{name}: unknown option(s) {unknown}; this corpus takes {options or 'none'}")
    return fn(*args, **kw)


def _loader(name: str, root, split: str, sample_rate: int, mode: str) -> tuple[Callable, tuple]:
    """The corpus function and its leading positional arguments; the rest are the corpus's options."""
    if name in ("wsj0-2mix", "wsj0-3mix"):
        from press.data.wsj0mix import wsj0mix

        return wsj0mix, (root, int(name[5]), split, sample_rate, mode)
    if name in ("libri2mix", "libri3mix"):
        from press.data.librimix import librimix

        return librimix, (root, int(name[5]), split, sample_rate, mode)
    if name in ("wham", "whamr"):
        from press.data import wham

        return getattr(wham, name), (root, split, sample_rate, mode)
    if name == "dns2020":
        from press.data.dns import dns2020

        return dns2020, (root, split, sample_rate)
    from press.data.voicebank import voicebank_demand

    return voicebank_demand, (root, split, sample_rate)
