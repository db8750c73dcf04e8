"""Recorded wideband speech (16 kHz or above) in the Debian archive, speaker by speaker, with a split each.

The targets of the enhancement corpus. Asterisk's G.722 prompts are true 16 kHz recordings of the
same professional talents as its 8 kHz prompts; Fish Fillets' Czech and Dutch dubbings (22 kHz,
a line's actor read from the font the game's scripts show it in), KDE's KLettres and KTuberling,
qaBCs, Hedgewars' voice packs, Kajongg and Nexuiz's tutorial narrator add many more voices. Splits
are speaker-disjoint: validation and test each hold one Dutch Fish Fillets actor and five KDE
readers whom training never hears. Word lists (letters, words, taunts) are joined in path order
into utterances of at least JOIN_SECONDS with short pauses, so that an item is not one word long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from press.corpus.debian import audio_files, licence_of, require_root

JOIN_SECONDS = 4.0
JOIN_PAUSE_SECONDS = 0.3
MIN_SECONDS = 1.0  # shorter single files (isolated digits, beeps) are not utterances
ASTERISK = "usr/share/asterisk/sounds"
FILLETS = "usr/share/games/fillets-ng"
# Readers held out, as in the 8 kHz corpus (press.corpus.voices.KDE_HELD_OUT): a language's KLettres and
# KTuberling readers may be one person and share a split; so may the two English ones.
KDE_SPLITS = {"fr": "val", "he": "val", "hu": "val", "nl": "val", "ca": "val",
              "en": "test", "en_GB": "test", "lt": "test", "ar": "test", "pt_BR": "test"}
KLETTRES_LANGS = ("ar", "da", "de", "en", "en_GB", "fr", "he", "hu", "lt", "nds", "nl", "pt_BR", "tn", "uk")
KTUBERLING_LANGS = ("ca", "da", "fr", "lt", "nn", "ru", "uk")
# Hedgewars' packs: Singer sings and Robot is vocoded; the rest are spoken taunts by one actor each.
HEDGEWARS_PACKS = ("British", "Classic", "Default", "Default_es", "Default_pl", "Default_ru", "Default_uk",
                   "HillBilly", "Mobster", "Pirate", "Russian", "Russian_pl", "Surfer")


@dataclass(frozen=True)
class Utterance:
    """One planned utterance: its files (several when a word list is joined), speaker and split."""

    uid: str
    speaker: str
    package: str
    split: str
    refs: tuple[str, ...]
    licence: str


@dataclass(frozen=True)
class Speaker:
    name: str
    package: str
    split: str
    refs: tuple[str, ...]
    join: bool = False
    licence: str = ""


def _asterisk(root: Path) -> list[Speaker]:
    talents = {"allison": ("en_US_f_Allison", "es_MX_f_Allison"), "june": ("fr_CA_f_June",),
               "carlo": ("it_IT_m_Carlo",), "ivrvoice-ru": ("ru_RU_f_IvrvoiceRU",)}
    packages = {"en_US": "en", "es_MX": "es", "fr_CA": "fr", "it_IT": "it", "ru_RU": "ru"}
    return [
        Speaker(f"asterisk-{name}", f"asterisk-core-sounds-{packages[folders[0][:5]]}-g722", "train",
                tuple(ref for folder in folders for ref in audio_files(root, f"{ASTERISK}/{folder}")))
        for name, folders in talents.items()
    ]


def _fillets(root: Path) -> list[Speaker]:
    out = []
    for lang, splits in (("cs", {"big": "val", "small": "test"}),):
        fonts: dict[str, str] = {}
        for script in sorted((root / FILLETS / "script").glob(f"*/dialogs_{lang}.lua")):
            fonts.update(re.findall(r'dialogId\("([^"]+)",\s*"([^"]*)"', script.read_text(errors="replace")))
        sounds = [r for r in audio_files(root, f"{FILLETS}/sound") if f"/{lang}/" in r]
        for size, split in splits.items():
            refs = tuple(r for r in sounds if fonts.get(Path(r).stem) == f"font_{size}")
            out.append(Speaker(f"fillets-{lang}-{size}", f"fillets-ng-data-{lang}", split, refs, licence="GPL-2+"))
    return out


def _word_lists(root: Path) -> list[Speaker]:
    out = []
    for lang in KLETTRES_LANGS:
        out.append(Speaker(f"klettres-{lang}", "klettres-data", KDE_SPLITS.get(lang, "train"),
                           tuple(audio_files(root, f"usr/share/klettres/{lang}")), join=True))
    for lang in KTUBERLING_LANGS:
        out.append(Speaker(f"ktuberling-{lang}", "ktuberling-data", KDE_SPLITS.get(lang, "train"),
                           tuple(audio_files(root, f"usr/share/ktuberling/sounds/{lang}")), join=True))
    abcs = root / "usr/share/qabcs/abcs"
    for lang in sorted(p.name for p in abcs.iterdir() if p.name != "all") if abcs.is_dir() else []:
        out.append(Speaker(f"qabcs-{lang}", "qabcs-data", "train",
                           tuple(audio_files(root, f"usr/share/qabcs/abcs/{lang}/sounds")), join=True))
    for pack in HEDGEWARS_PACKS:
        out.append(Speaker(f"hedgewars-{pack.lower()}", "hedgewars-data", "train",
                           tuple(audio_files(root, f"usr/share/games/hedgewars/Data/Sounds/voices/{pack}")), join=True))
    voices = root / "usr/share/kajongg/voices"
    for name in sorted(p.name for p in voices.iterdir() if p.is_dir()) if voices.is_dir() else []:
        out.append(Speaker(f"kajongg-{name}", "kajongg", "train",
                           tuple(audio_files(root, f"usr/share/kajongg/voices/{name}")), join=True))
    tutorial = [r for r in audio_files(root, "usr/share/games/nexuiz/data/data.pk3") if "!sound/tutorial/" in r]
    out.append(Speaker("nexuiz-narrator", "nexuiz-data", "train", tuple(tutorial), licence="GPL-2+"))
    return out


def speakers(root: str | Path) -> list[Speaker]:
    """Every catalogued speaker with at least one file under root."""
    root = Path(root)
    found = [s for s in _asterisk(root) + _fillets(root) + _word_lists(root) if s.refs]
    if not found:
        require_root(root, "wideband speech", ["asterisk-core-sounds-en-g722", "fillets-ng-data",
                                               "fillets-ng-data-cs", "fillets-ng-data-nl", "klettres-data"])
    return found


def plan_speech(root: str | Path, seconds: dict[str, float], chosen: list[Speaker] | None = None) -> list[Utterance]:
    """The utterances to render (of the `chosen` speakers, default every one under root): one per file,
    or for word lists files joined in path order until they reach JOIN_SECONDS (`seconds` maps a
    reference to its duration; files under MIN_SECONDS are left out unless joined)."""
    root = Path(root)
    plans = []
    for spk in speakers(root) if chosen is None else chosen:
        licence = licence_of(root, spk.package, spk.refs[0], spk.licence or "see the package's copyright file")
        groups: list[list[str]] = []
        if spk.join:
            current: list[str] = []
            for ref in spk.refs:
                current.append(ref)
                total = sum(seconds[r] for r in current) + JOIN_PAUSE_SECONDS * (len(current) - 1)
                if total >= JOIN_SECONDS:
                    groups.append(current)
                    current = []
        else:
            groups = [[r] for r in spk.refs if seconds[r] >= MIN_SECONDS]
        for k, refs in enumerate(groups):
            plans.append(Utterance(f"{spk.name}-{k:04d}", spk.name, spk.package, spk.split, tuple(refs), licence))
    return plans
