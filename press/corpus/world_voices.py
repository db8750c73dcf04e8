"""The voices the full training corpus adds to the shipped ones: every language the packages speak.

`press data synth OUT --full` renders the shipped corpus's voices unchanged (its training voices with
all their recorded material) plus these, so that the
validation and test splits stay exactly the shipped ones (models trained on either corpus are scored
on the same mixtures) and every addition goes to training. An addition whose talent (the diphone
donor or recorded person) is held out is left out, not moved: a held-out talent must never be heard
in training, in any language or engine.

The MBROLA voices are licensed for non-commercial, non-military use only, so the shipped corpus has
none and they are rendered only here, on the user's machine: the English-reading ones of
press.corpus.voices.mbrola_voices whose seeded split is training, and the native-language ones below.
The talents that split holds out stay out of the full corpus altogether (`held_out_talents`).

Recorded: the Dutch Fish Fillets actors (95 min), KLettres' and KTuberling's training readers (9 voices,
about 18 min of letters, syllables and words; the other 12 are held out in the shipped corpus).
Transformed: 8 new speakers from each of the six training talents with the most speech, 3 from each
training KLettres / KTuberling reader. Synthetic voices
here speak their own language, with text from `press.corpus.text.foreign_text`:
  MBROLA     every diphone voice of Debian (75; `mbrola_voices` has 20 of them reading English),
  festival   Catalan, Czech, Finnish, Italian, Russian and Spanish voices (its Hindi voice fails to render),
  RHVoice    the Russian, Ukrainian and Brazilian-Portuguese voices whose licences allow derivatives
             (the CC-BY-NC-ND / CC-BY-ND / CC-BY-NC-SA ones are left out, as in the shipped corpus),
  pico       German, Spanish, French and Italian.
"""

from __future__ import annotations

from press.corpus.voices import (
    FILLETS_VOICES,
    LICENCES,
    MBROLA_ACCENTED,
    MBROLA_VOICES,
    Voice,
    all_voices,
    kde_voices,
    mbrola_voices,
)

# espeak-ng MBROLA voice -> (text language for wordfreq, sex). Voices whose language wordfreq lacks read
# the nearest language it has (Afrikaans voice: Dutch words; Estonian: Finnish words), or are left out
# (Latin, Maori, Telugu, the ancient-Greek variant of de6; cn1, which espeak-ng does not find).
MBROLA_NATIVE = {
    "mb-af1": ("nl", "m"), "mb-ar1": ("ar", "m"), "mb-ar2": ("ar", "m"),
    "mb-br1": ("pt", "m"), "mb-br2": ("pt", "f"), "mb-br3": ("pt", "m"), "mb-br4": ("pt", "f"),
"mb-cr1": ("sh", "m"), "mb-cz1": ("cs", "f"), "mb-cz2": ("cs", "m"),
    "mb-nl1": ("nl", "m"), "mb-nl2": ("nl", "m"), "mb-nl3": ("nl", "f"), "mb-ee1": ("fi", "m"),
    "mb-ca1": ("fr", "m"), "mb-ca2": ("fr", "m"), "mb-fr1": ("fr", "m"), "mb-fr2": ("fr", "f"),
    "mb-fr3": ("fr", "m"), "mb-fr4": ("fr", "f"), "mb-fr5": ("fr", "m"), "mb-fr6": ("fr", "m"),
    "mb-fr7": ("fr", "m"), "mb-de1": ("de", "f"), "mb-de2": ("de", "m"), "mb-de3": ("de", "f"),
    "mb-de4": ("de", "m"), "mb-de5": ("de", "f"), "mb-de6": ("de", "m"), "mb-de7": ("de", "f"),
    "mb-de8": ("de", "m"), "mb-gr1": ("el", "m"), "mb-gr2": ("el", "m"), "mb-hb1": ("he", "m"),
    "mb-hb2": ("he", "f"), "mb-in1": ("hi", "m"), "mb-in2": ("hi", "f"), "mb-hu1": ("hu", "f"),
    "mb-ic1": ("is", "m"), "mb-id1": ("id", "m"), "mb-it1": ("it", "m"), "mb-it2": ("it", "f"),
    "mb-it3": ("it", "m"), "mb-it4": ("it", "f"), "mb-jp1": ("ja", "m"), "mb-jp2": ("ja", "f"),
    "mb-jp3": ("ja", "f"), "mb-lt1": ("lt", "m"), "mb-lt2": ("lt", "m"), "mb-ma1": ("ms", "f"),
    "mb-mx1": ("es", "m"), "mb-mx2": ("es", "m"), "mb-ir1": ("fa", "m"), "mb-pl1": ("pl", "f"),
    "mb-pt1": ("pt", "f"), "mb-ro1": ("ro", "m"), "mb-es1": ("es", "m"), "mb-es2": ("es", "m"),
    "mb-es3": ("es", "f"), "mb-es4": ("es", "m"), "mb-sw1": ("sv", "m"), "mb-sw2": ("sv", "f"),
    "mb-tr1": ("tr", "m"), "mb-tr2": ("tr", "f"), "mb-vz1": ("es", "m"),
}
# festival voice -> (talent, text language, Debian package)
FESTIVAL_WORLD = {
    "upc_ca_ona_hts": ("upc-ona", "ca", "festvox-ca-ona-hts"),
    "czech_dita": ("czech-dita", "cs", "festvox-czech-dita"),
    "czech_krb": ("czech-krb", "cs", "festvox-czech-krb"),
    "czech_machac": ("czech-machac", "cs", "festvox-czech-machac"),
    "czech_ph": ("czech-ph", "cs", "festvox-czech-ph"),
    "hy_fi_mv_diphone": ("suopuhe-mv", "fi", "festvox-suopuhe-mv"),
    "suo_fi_lj_diphone": ("suopuhe-lj", "fi", "festvox-suopuhe-lj"),
    "lp_diphone": ("italian-lp", "it", "festvox-italp16k"),
    "pc_diphone": ("italian-pc", "it", "festvox-itapc16k"),
    "msu_ru_nsh_clunits": ("msu-nsh", "ru", "festvox-ru"),
    "el_diphone": ("spanish-el", "es", "festvox-ellpc11k"),
}
# RHVoice voice -> (talent, text language): the voices under the package's LGPL-2.1+ or CC-BY-SA-4.0
RHVOICE_WORLD = {
    "Leticia-F123": ("leticia", "pt"), "aleksandr": ("aleksandr", "ru"), "aleksandr-hq": ("aleksandr", "ru"),
    "anatol": ("anatol", "uk"), "anna": ("anna", "ru"), "elena": ("elena", "ru"), "irina": ("irina", "ru"),
    "natalia": ("natalia", "uk"),
}
RHVOICE_PACKAGES = {"pt": "rhvoice-brazilian-portuguese", "ru": "rhvoice-russian", "uk": "rhvoice-ukrainian"}
PICO_WORLD = {"de-DE": ("pico-gl0", "de"), "es-ES": ("pico-zl0", "es"), "fr-FR": ("pico-nk0", "fr"),
              "it-IT": ("pico-cm0", "it")}


def world_real_voices() -> list[Voice]:
    """Recorded voices only the full corpus has: the Dutch Fish Fillets actors, KLettres' and KTuberling's
    training readers."""
    voices = [
        Voice(f"real-{name}", "real", f"fillets-ng-data-{lang}", name, "train", LICENCES[f"fillets-ng-data-{lang}"],
              {"fillets": name})
        for name, (lang, _) in FILLETS_VOICES.items() if lang == "nl"
    ]
    return voices + kde_voices("train")


# Transformed voices (press.corpus.transform): new speakers made from recorded training talents by
# WORLD with F0 and vocal-tract-length shifts. Each transformed voice is a speaker of its own in the
# split of its source talent; voice k of n reads the source's utterances k, k + n, k + 2n, ... (at most
# TRANSFORMED_UTTERANCES), so no two voices say the same thing. The counts were chosen by measurement
# (12 and 6 over 8 and 3: docs/experiments.md); draw_shifts fits 8-14 around one talker.
TRANSFORMED_PER_TALENT = {"allison": 12, "june-fr": 12, "carlo-it": 12, "maxim-ru": 12,
                          "fillets-nl-small": 12, "fillets-nl-big": 12}
TRANSFORMED_SHORT = 6   # per KLettres / KTuberling reader (a minute or two of letters and words each)
TRANSFORMED_UTTERANCES = 30


def transformed_voices(real: list[Voice]) -> list[Voice]:
    """The transformed voices of the recorded training talents in `real`."""
    out = []
    for source in real:
        if source.split != "train":
            continue
        n = TRANSFORMED_PER_TALENT.get(source.talent)
        if n is None and source.engine in ("klettres-data", "ktuberling-data"):
            n = TRANSFORMED_SHORT
        for k in range(n or 0):
            out.append(Voice(
                f"xf-{source.talent}-{k}", "transformed", "world", source.talent, source.split,
                f"{source.licence}; pitch and formants changed (WORLD)", {"source": source, "shift": k, "of": n},
            ))
    return out


def mbrola_talent(voice: str) -> str:
    """The talent name an MBROLA diphone database has in `mbrola_voices` (e.g. mb-de1 -> mbrola-mb-de1-en),
    which it keeps in every language it reads."""
    if voice in MBROLA_VOICES:
        return f"mbrola-{voice}"
    if f"{voice}-en" in MBROLA_ACCENTED:
        return f"mbrola-{voice}-en"
    return f"mbrola-{voice}"


def world_tts_voices() -> list[Voice]:
    """Synthetic voices speaking their own languages, before the held-out talents are removed."""
    voices = []
    for name, (lang, sex) in MBROLA_NATIVE.items():
        voices.append(Voice(
            f"tts-mbrola-{name[3:]}-{lang}", "tts", "mbrola", mbrola_talent(name), "train", LICENCES["mbrola"],
            {"voice": name, "pitch": 55 if sex == "f" else 40, "text_lang": lang},
        ))
    for name, (talent, lang, package) in FESTIVAL_WORLD.items():
        voices.append(Voice(
            f"tts-festival-{talent}", "tts", "festival", f"festival-{talent}", "train", LICENCES["festival"],
            {"voice": name, "text_lang": lang, "package": package},
        ))
    for name, (talent, lang) in RHVOICE_WORLD.items():
        voices.append(Voice(
            f"tts-rhvoice-{name.lower()}", "tts", "rhvoice", f"rhvoice-{talent}", "train",
            LICENCES["rhvoice-world"], {"voice": name, "text_lang": lang, "package": RHVOICE_PACKAGES[lang]},
        ))
    for lang_code, (talent, lang) in PICO_WORLD.items():
        voices.append(Voice(
            f"tts-{talent}", "tts", "pico", talent, "train", LICENCES["pico"], {"lang": lang_code, "text_lang": lang},
        ))
    return voices


def held_out_talents(seed: int) -> set[str]:
    """Talents the full corpus never trains on: those of the shipped corpus's validation, test and
    babble voices, and the MBROLA talents whose seeded split (`mbrola_voices`) is not training."""
    return {v.talent for v in all_voices(seed) + mbrola_voices(seed) if v.split != "train"}


def full_voices(seed: int, languages: bool = True) -> list[Voice]:
    """The shipped voices, then every addition whose talent is not held out (`held_out_talents`): the
    English MBROLA voices of training, the recorded voices and the synthetic voices in other languages.

    `languages=False` leaves out the synthetic voices in other languages: the data ablation
    (docs/data.md) found that at their share of mixtures they cost more than they teach.
    """
    shipped = all_voices(seed)
    held_out = held_out_talents(seed)
    others = world_tts_voices() if languages else []
    added = [v for v in mbrola_voices(seed) + world_real_voices() + others if v.talent not in held_out]
    real = [v for v in shipped + added if v.kind == "real"]
    return shipped + added + transformed_voices(real)
