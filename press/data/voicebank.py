"""VoiceBank-DEMAND (Valentini-Botinhao et al., 2016), as unpacked from the Edinburgh DataShare zips.

Layout: ROOT/{clean,noisy}_trainset_{28,56}spk_wav/p<spk>_<nnn>.wav and ROOT/{clean,noisy}_testset_wav/.
Audio is 48 kHz and resampled on load. The corpus has no validation set; as in most recipes,
speakers p226 and p287 are held out of the 28-speaker training set for it. Sources are [clean, noisy - clean].
"""

from __future__ import annotations

from pathlib import Path

from press.data.base import (
    Example,
    FileDataset,
    check_choice,
    layout_error,
    require_dir,
)

VAL_SPEAKERS = ("p226", "p287")
LAYOUT = (
    "  ROOT/clean_trainset_{28,56}spk_wav/p<spk>_<nnn>.wav   ROOT/noisy_trainset_{28,56}spk_wav/p<spk>_<nnn>.wav\n"
    "  ROOT/clean_testset_wav/p<spk>_<nnn>.wav              ROOT/noisy_testset_wav/p<spk>_<nnn>.wav"
)


def voicebank_demand(
    root: str | Path, split: str = "train", sample_rate: int = 8000, speakers: int = 28
) -> FileDataset:
    check_choice("voicebank-demand", "split", split, ("train", "val", "test"))
    check_choice("voicebank-demand", "speakers", speakers, (28, 56))
    root = Path(root)
    require_dir("voicebank-demand", root, LAYOUT)
    part = "testset" if split == "test" else f"trainset_{speakers}spk"
    noisy_dir = require_dir("voicebank-demand", root / f"noisy_{part}_wav", LAYOUT)
    clean_dir = require_dir("voicebank-demand", root / f"clean_{part}_wav", LAYOUT)
    examples = []
    for noisy in sorted(noisy_dir.glob("*.wav")):
        if split != "test" and (noisy.name.split("_")[0] in VAL_SPEAKERS) != (split == "val"):
            continue
        clean = clean_dir / noisy.name
        if not clean.exists():
            raise layout_error("voicebank-demand", f"{clean} is missing (the clean speech of {noisy.name})", LAYOUT)
        examples.append(Example(noisy.stem, noisy, (clean,)))
    if not examples:
        raise layout_error("voicebank-demand", f"no {split} examples in {noisy_dir}", LAYOUT)
    return FileDataset("voicebank-demand", examples, sample_rate, enhancement=True, layout=LAYOUT)
