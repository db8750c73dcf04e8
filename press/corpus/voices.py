"""The voices of the built-in corpus: where each one comes from, its licence and its split.

Splits are assigned per *talent* (the person or synthetic timbre behind a voice), never per voice,
so that e.g. flite's and festival's renderings of the same SLT recordings, or one espeak-ng variant
speaking with several accents, never straddle train and test. Real recorded speakers are placed by
hand so that validation and test hold real speech that training never saw; TTS talents are spread
over train / val / test / babble (voices reserved for babble noise) by a seeded shuffle per engine.
Everything shipped is free of use restrictions: the MBROLA voices (licensed for non-commercial,
non-military use) are defined here for the full corpus a user renders, never for the shipped one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test", "babble")

ASTERISK_ROOT = "/usr/share/asterisk/sounds"
# Asterisk IVR prompts, one professional speaker per language: (folder, package, seconds kept).
# English, French, Italian and Russian prompts are four different people (one of them male); the
# Spanish prompts are Allison again, so they are left out.
ASTERISK_VOICES = {
    "allison": ("en_US_f_Allison", "asterisk-core-sounds-en-wav", 600.0),
    "june-fr": ("fr_CA_f_June", "asterisk-core-sounds-fr-wav", 300.0),
    "carlo-it": ("it_IT_m_Carlo", "asterisk-core-sounds-it-wav", 300.0),
    "maxim-ru": ("ru_RU_f_IvrvoiceRU", "asterisk-core-sounds-ru-wav", 300.0),
}
# Fish Fillets' dubbed dialogue: the Czech original (ALTAR, 1998) and the Dutch dubbing, one actor per
# fish. A line's speaker is its font in the game's dialogue scripts (fillets-ng-data): font_small is
# the small fish (a woman), font_big the big fish (a man).
FILLETS_ROOT = "/usr/share/games/fillets-ng"
FILLETS_VOICES = {
    "fillets-cs-small": ("cs", "font_small"), "fillets-cs-big": ("cs", "font_big"),
    "fillets-nl-small": ("nl", "font_small"), "fillets-nl-big": ("nl", "font_big"),
}
# Seconds of each held-out Fish Fillets voice in the shipped corpus (the full corpus does not add more).
FILLETS_HELD_OUT_SECONDS = 330.0
# KDE's KLettres (letters and syllables) and KTuberling (words): one reader per language folder (an
# assumption: the packages do not name them). KLettres' Malayalam folder is badly clipped and its Norwegian
# one holds six clips; KTuberling's languages with fewer than 20 clips of 1 s are left out.
KLETTRES_LANGS = ("ar", "da", "de", "en", "en_GB", "fr", "he", "hu", "lt", "nds", "nl", "pt_BR", "tn", "uk")
KTUBERLING_LANGS = ("ca", "da", "fr", "lt", "nn", "ru", "uk")
KDE_GLOBS = {"klettres": "/usr/share/klettres/{lang}/**/*.ogg", "ktuberling": "/usr/share/ktuberling/sounds/{lang}/*.*"}
# Readers held out for validation and test, so that each split has recorded speech of many speakers
# in many languages (three speakers could not rank models). Readers who may be one person
# share a split: a language's KLettres and KTuberling readers, and English / British English. The
# others (da, de, nds, nn, ru, tn, uk) are training speakers of the full corpus only.
KDE_HELD_OUT = {"fr": "val", "he": "val", "hu": "val", "nl": "val", "ca": "val",
                "en": "test", "en_GB": "test", "lt": "test", "ar": "test", "pt_BR": "test"}
# Seconds of each held-out reader in the shipped corpus: its first clips in path order, joined into
# utterances of KDE_JOIN_SECONDS (a word list read aloud) so that mixtures are not a second long.
KDE_HELD_OUT_SECONDS = 90.0
KDE_JOIN_SECONDS = 4.0
CODEC2_RAW = "/usr/share/codec2/raw"
SPHINX = "/usr/share/pocketsphinx/test/data"

LICENCES = {
    "asterisk-core-sounds-en-wav": "CC-BY-SA-3.0 (recorded by Allison Smith, Digium)",
    "asterisk-core-sounds-fr-wav": "CC-BY-SA-3.0 (recorded by June Wallack, Digium)",
    "asterisk-core-sounds-it-wav": "CC-BY-3.0 (recorded by Carlo Flora)",
    "asterisk-core-sounds-ru-wav": "CC-BY-3.0 (provided by Maxim Topal, ivrvoice.ru)",
    "codec2-examples": "LGPL-2.1 (codec2 test samples)",
    "fillets-ng-data-cs": "GPL-2 (Fish Fillets, Czech voices by ALTAR interactive)",
    "fillets-ng-data-nl": "GPL-2 (Fish Fillets, Dutch voices)",
    "klettres-data": "GPL-2+ (KLettres, KDE: letters and syllables read by a native speaker per language)",
    "ktuberling-data": "GPL-2+ (KTuberling, KDE: words read by a native speaker per language)",
    "pocketsphinx-testdata": "BSD-2-Clause (CMU Sphinx test data)",
    "pocketsphinx-testdata/librivox": "public domain (LibriVox recording, via CMU Sphinx test data)",
    "espeak-ng": "GPL-3.0+ engine; generated audio carries no licence restriction",
    "mbrola": "MBROLA voice licence: non-commercial, non-military use; keep this notice",
    "rhvoice": "LGPL-2.1+ (RHVoice English voices alan, bdl, clb, slt, trained on CMU ARCTIC)",
    "flite": "BSD-like CMU Flite licence (voices kal, awb, rms, slt)",
    "festival": "BSD-like Festival / CSTR / CMU ARCTIC licences (voices ked, kal, rab, don, slt)",
    "pico": "Apache-2.0 (SVOX Pico, Debian non-free for its lingware)",
    "rhvoice-world": "LGPL-2.1+ or CC-BY-SA-4.0 (RHVoice voices whose licence allows derivatives)",
}

# Debian packages each engine needs; the synth command names them when a tool is missing.
PACKAGES = {
    **{package: [package] for _, package, _ in ASTERISK_VOICES.values()},
    "codec2-examples": ["codec2-examples"],
    "fillets-ng-data-cs": ["fillets-ng-data", "fillets-ng-data-cs"],
    "fillets-ng-data-nl": ["fillets-ng-data", "fillets-ng-data-nl"],
    "klettres-data": ["klettres-data"],
    "ktuberling-data": ["ktuberling-data"],
    "pocketsphinx-testdata": ["pocketsphinx-testdata"],
    "espeak-ng": ["espeak-ng"],
    "mbrola": ["espeak-ng", "mbrola"] + [
        f"mbrola-{v}"
        for v in ("us1", "us2", "us3", "en1", "de1", "de2", "de3", "de4", "de5", "de6", "fr1", "fr4", "hu1", "nl2")
        + ("pl1", "ro1", "sw1", "sw2", "af1", "gr2")
    ],
    "rhvoice": ["rhvoice", "rhvoice-english"],
    "flite": ["flite"],
    "festival": [
        "festival", "festvox-kdlpc16k", "festvox-kallpc16k", "festvox-rablpc16k", "festvox-don", "festvox-us-slt-hts",
    ],
    "pico": ["libttspico-utils"],
}


@dataclass(frozen=True)
class Voice:
    """One speaker of the corpus. `params` are engine settings fixed for the voice (accent, base pitch)."""

    speaker: str
    kind: str  # "real" or "tts"
    engine: str  # a key of PACKAGES
    talent: str
    split: str
    licence: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    files: tuple[str, ...] = ()  # real speech: the source files, in order


def _stable_rng(seed: int, name: str) -> np.random.Generator:
    """A generator keyed by seed and a name, independent of Python's salted str hash."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def kde_voices(split: str | None = None) -> list[Voice]:
    """KLettres' and KTuberling's readers, each in its split (train unless KDE_HELD_OUT names it);
    `split` keeps only that split's. Held-out readers' clips are joined into longer utterances."""
    voices = []
    for app, langs in (("klettres", KLETTRES_LANGS), ("ktuberling", KTUBERLING_LANGS)):
        for lang in langs:
            talent = f"{app}-{lang.lower().replace('_', '-')}"
            where = KDE_HELD_OUT.get(lang, "train")
            params = {"glob": KDE_GLOBS[app].format(lang=lang)} | ({"join": True} if where != "train" else {})
            voices.append(Voice(f"real-{talent}", "real", f"{app}-data", talent, where, LICENCES[f"{app}-data"],
                                params))
    return [v for v in voices if split is None or v.split == split]


def real_voices() -> list[Voice]:
    """Recorded speech from Debian packages, with the split of each speaker fixed by hand.

    Validation and test each hold recorded speech of speakers that training never hears: English
    (codec2, CMU Sphinx, KDE readers), Czech (the two Fish Fillets actors, one per split) and the
    held-out KDE readers' languages. Training holds the Asterisk voices (English, French, Italian,
    Russian) and four codec2 talkers.
    """
    c2 = lambda name: (f"{CODEC2_RAW}/{name}.raw",)  # noqa: E731
    sphinx_cards = tuple(f"{SPHINX}/cards/{i:03d}.wav" for i in range(1, 6))
    librivox = tuple(
        f"{SPHINX}/librivox/sense_and_sensibility_01_austen_64kb-{n}.wav"
        for n in ("0870", "0880", "0890", "0920", "0930")
    )
    sphinx_raw = tuple(f"{SPHINX}/{n}.raw" for n in ("goforward", "numbers", "something"))
    rows = [
        *((name, package, "train", ()) for name, (_, package, _) in ASTERISK_VOICES.items()),
        ("codec2-hts1", "codec2-examples", "train", c2("hts1")),
        ("codec2-forig", "codec2-examples", "train", c2("forig")),
        ("codec2-big_dog", "codec2-examples", "train", c2("big_dog")),
        ("codec2-cross", "codec2-examples", "train", c2("cross")),
        ("codec2-kristoff", "codec2-examples", "val", c2("kristoff")),
        ("sphinx-cards", "pocketsphinx-testdata", "val", sphinx_cards),
        ("fillets-cs-big", "fillets-ng-data-cs", "val", ()),
        ("fillets-cs-small", "fillets-ng-data-cs", "test", ()),
        ("codec2-hts2", "codec2-examples", "test", c2("hts2")),
        ("codec2-morig", "codec2-examples", "test", c2("morig")),
        ("sphinx-librivox", "pocketsphinx-testdata", "test", librivox),
        ("sphinx-raw", "pocketsphinx-testdata", "test", sphinx_raw),
    ]
    out = []
    for speaker, engine, split, files in rows:
        lic_key = "pocketsphinx-testdata/librivox" if speaker == "sphinx-librivox" else engine
        params = {"asterisk": speaker} if speaker in ASTERISK_VOICES else {}
        if speaker in FILLETS_VOICES:
            params = {"fillets": speaker}
        out.append(Voice(f"real-{speaker}", "real", engine, speaker, split, LICENCES[lic_key], params, files))
    return out + [v for v in kde_voices() if v.split != "train"]


ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3")
# MBROLA voices reading English (the full corpus only: `mbrola_voices`), native ones at two pitches.
MBROLA_VOICES = {"mb-us1": "f", "mb-us2": "m", "mb-us3": "m", "mb-en1": "m"}
# English read by MBROLA voices of other languages through espeak-ng: accented English, one pitch each.
MBROLA_ACCENTED = {
    "mb-de1-en": "f", "mb-de2-en": "m", "mb-de3-en": "f", "mb-de4-en": "m", "mb-de5-en": "f", "mb-de6-en": "m",
    "mb-fr1-en": "m", "mb-fr4-en": "f", "mb-hu1-en": "f", "mb-nl2-en": "m", "mb-pl1-en": "f", "mb-ro1-en": "m",
    "mb-sw1-en": "m", "mb-sw2-en": "f", "mb-af1-en": "m", "mb-gr2-en": "m",
}
# flite voice -> (talent, mean F0 in Hz around which utterances vary)
FLITE_VOICES = {
    "kal": ("kal", 105.0), "kal16": ("kal", 105.0), "awb": ("awb", 110.0), "rms": ("rms", 100.0), "slt": ("slt", 170.0),
}
FESTIVAL_VOICES = {
    "ked_diphone": "ked", "kal_diphone": "kal", "rab_diphone": "rab", "don_diphone": "don",
    "cmu_us_slt_arctic_hts": "slt",
}
# RHVoice voice -> talent (alan is trained on CMU ARCTIC's awb). evgeniy-eng and lyubov are left
# out: their CC-BY-NC-ND licence forbids derivatives.
RHVOICE_VOICES = {"alan": "awb", "bdl": "bdl", "clb": "clb", "slt": "slt"}
PICO_VOICES = {"en-US": "pico-lh0", "en-GB": "pico-kh0"}
# Split pattern applied, in a seeded order, to the talents of each engine family.
_PATTERN = (
    "train", "val", "test", "train", "babble", "train", "train",
    "test", "val", "train", "train", "babble", "train", "test",
)


def _assign(talents: list[str], seed: int, family: str) -> dict[str, str]:
    order = list(talents)
    _stable_rng(seed, "split:" + family).shuffle(order)
    return {t: _PATTERN[i % len(_PATTERN)] for i, t in enumerate(order)}


def mbrola_voices(seed: int) -> list[Voice]:
    """espeak-ng with MBROLA voices reading English (native at two pitches, other languages' voices
    accented), in a seeded split per talent. Their licence forbids commercial use, so they are never
    part of the shipped corpus (`tts_voices`); the full corpus renders the training ones
    (press.corpus.world_voices)."""
    voices = []
    mb = _assign(list(MBROLA_VOICES) + list(MBROLA_ACCENTED), seed, "mbrola")
    for name, sex in MBROLA_VOICES.items():
        for level, pitch in (("lo", 35), ("hi", 60)):
            voices.append(Voice(
                f"tts-mbrola-{name[3:]}-{level}", "tts", "mbrola", f"mbrola-{name}", mb[name],
                LICENCES["mbrola"], {"voice": name, "pitch": pitch + (10 if sex == "f" else 0)},
            ))
    for name, sex in MBROLA_ACCENTED.items():
        voices.append(Voice(
            f"tts-mbrola-{name[3:]}", "tts", "mbrola", f"mbrola-{name}", mb[name],
            LICENCES["mbrola"], {"voice": name, "pitch": 55 if sex == "f" else 40},
        ))
    return voices


def tts_voices(seed: int) -> list[Voice]:
    """The shipped corpus's synthetic voices: espeak-ng variants x 2 accents, flite, festival, RHVoice,
    pico. Every one renders audio free of use restrictions (no MBROLA: `mbrola_voices`)."""
    voices: list[Voice] = []
    esp = _assign(list(ESPEAK_VARIANTS), seed, "espeak")
    for variant in ESPEAK_VARIANTS:
        rng = _stable_rng(seed, "espeak:" + variant)
        # Two accents per variant: the first two (sorted) of a seeded draw of three, the draw of the
        # corpus's first release, so that those files stay byte-identical across releases.
        accents = sorted(rng.choice(ESPEAK_ACCENTS, size=3, replace=False).tolist())[:2]
        for accent in accents:
            pitch = int(_stable_rng(seed, f"pitch:{variant}:{accent}").integers(30, 71))
            voices.append(Voice(
                f"tts-espeak-{variant}-{accent}", "tts", "espeak-ng", f"espeak-{variant}", esp[variant],
                LICENCES["espeak-ng"], {"voice": f"{accent}+{variant}", "pitch": pitch},
            ))
    cmu_talents = {t for t, _ in FLITE_VOICES.values()} | set(FESTIVAL_VOICES.values()) | set(RHVOICE_VOICES.values())
    cmu = _assign(sorted(cmu_talents), seed, "cmu")

    def cmu_voice(speaker: str, engine: str, talent: str, params: dict) -> Voice:
        return Voice(speaker, "tts", engine, f"cmu-{talent}", cmu[talent], LICENCES[engine], params)

    for name, (talent, f0) in FLITE_VOICES.items():
        voices.append(cmu_voice(f"tts-flite-{name}", "flite", talent, {"voice": name, "f0": f0}))
    for name, talent in FESTIVAL_VOICES.items():
        voices.append(cmu_voice(f"tts-festival-{talent}", "festival", talent, {"voice": name}))
    for name, talent in RHVOICE_VOICES.items():
        voices.append(cmu_voice(f"tts-rhvoice-{name}", "rhvoice", talent, {"voice": name}))
    pico = _assign(sorted(PICO_VOICES.values()), seed, "pico")
    for lang, talent in PICO_VOICES.items():
        voices.append(Voice(f"tts-{talent}", "tts", "pico", talent, pico[talent], LICENCES["pico"], {"lang": lang}))
    return voices


def asterisk_dir(name: str) -> str:
    """Folder of one Asterisk voice's WAV prompts."""
    return f"{ASTERISK_ROOT}/{ASTERISK_VOICES[name][0]}"


def all_voices(seed: int) -> list[Voice]:
    """The voices of the shipped corpus, in manifest order: recorded, then synthetic."""
    return real_voices() + tts_voices(seed)


FESTIVAL_DIRS = {
    "ked_diphone": ("english", "festvox-kdlpc16k"), "kal_diphone": ("english", "festvox-kallpc16k"),
    "rab_diphone": ("english", "festvox-rablpc16k"), "don_diphone": ("english", "festvox-don"),
    "cmu_us_slt_arctic_hts": ("us", "festvox-us-slt-hts"),
}


def requirements(voice: Voice) -> list[tuple[str, str]]:
    """(command or path, Debian package providing it) that rendering `voice` needs.

    A name without "/" is a command looked up on PATH; anything else is a path that must exist.
    """
    p = voice.params
    if voice.kind == "real":
        if "asterisk" in p:
            return [(asterisk_dir(p["asterisk"]), voice.engine)]
        if "fillets" in p:
            lang = FILLETS_VOICES[p["fillets"]][0]
            return [(f"{FILLETS_ROOT}/script", "fillets-ng-data"), (f"{FILLETS_ROOT}/sound/*/{lang}", voice.engine)]
        if "glob" in p:
            return [(p["glob"], voice.engine)]
        return [(f, voice.engine) for f in voice.files]
    if voice.engine == "espeak-ng":
        return [("espeak-ng", "espeak-ng")]
    if voice.engine == "mbrola":
        name = p["voice"].split("-")[1]
        return [("espeak-ng", "espeak-ng"), ("mbrola", "mbrola"), (f"/usr/share/mbrola/{name}", f"mbrola-{name}")]
    if voice.engine == "flite":
        return [("flite", "flite")]
    if voice.engine == "festival":
        if "package" in p:  # a voice of the full corpus, in its own language's folder
            return [("text2wave", "festival"), (f"/usr/share/festival/voices/*/{p['voice']}", p["package"])]
        folder, package = FESTIVAL_DIRS[p["voice"]]
        return [("text2wave", "festival"), (f"/usr/share/festival/voices/{folder}/{p['voice']}", package)]
    if voice.engine == "rhvoice":
        package = p.get("package", "rhvoice-english")
        return [("RHVoice-test", "rhvoice"), (f"/usr/share/RHVoice/voices/{p['voice']}", package)]
    return [("pico2wave", "libttspico-utils")]
