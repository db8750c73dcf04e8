"""The full training corpus's plan: a superset of the shipped corpus that never touches its held-out talents."""

from __future__ import annotations

import glob
import shutil
from collections import Counter

import numpy as np
import pytest

from press.corpus.synth import plan_corpus, plan_voice
from press.corpus.text import foreign_text
from press.corpus.voices import all_voices, mbrola_voices
from press.corpus.world_voices import (
    TRANSFORMED_UTTERANCES,
    full_voices,
    held_out_talents,
    world_tts_voices,
)
from press.errors import PressError


def test_full_voices_keep_the_shipped_splits_and_add_only_training_talents():
    shipped = {v.speaker: v for v in all_voices(0)}
    full = full_voices(0)
    assert len({v.speaker for v in full}) == len(full)                       # speaker ids stay unique
    held_out = held_out_talents(0)
    assert {v.talent for v in shipped.values() if v.split != "train"} <= held_out
    for v in full:
        if v.speaker in shipped:
            assert v == shipped[v.speaker] and v.split == shipped[v.speaker].split
        else:
            assert v.split == "train" and v.talent not in held_out
    # a held-out diphone donor reading its own language is left out, not moved to training
    dropped = [v for v in world_tts_voices() if v.talent in held_out]
    assert dropped and not {v.speaker for v in dropped} & {v.speaker for v in full}
    languages = Counter(v.params["text_lang"] for v in full if "text_lang" in v.params)
    assert len(languages) >= 25


def test_mbrola_voices_are_never_shipped_and_train_only_in_the_full_corpus():
    """MBROLA's licence forbids commercial use: no shipped voice renders with it, and the full corpus a
    user renders has its English voices in training only, never the talents its seeded split holds out."""
    assert all(v.engine != "mbrola" and "non-commercial" not in v.licence for v in all_voices(0))
    english = mbrola_voices(0)
    assert len(english) == 24 and {v.split for v in english} == {"train", "val", "test", "babble"}
    full = {v.speaker: v for v in full_voices(0)}
    assert {name for name, v in full.items() if v.engine == "mbrola" and "text_lang" not in v.params} == {
        v.speaker for v in english if v.split == "train"}
    assert all(v.split == "train" for v in full.values() if v.engine == "mbrola")
    assert {v.talent for v in english if v.split != "train"} <= held_out_talents(0)



def test_without_languages_the_full_corpus_drops_only_the_world_tts_voices(tmp_path):
    """`press data synth --full --no-languages`: the recommended training mix."""
    from press.corpus.synth import synthesize
    from press.errors import PressError

    every, mix = full_voices(0), full_voices(0, languages=False)
    world = {v.speaker for v in world_tts_voices()}
    assert {v.speaker for v in every} - {v.speaker for v in mix} == world & {v.speaker for v in every}
    assert not world & {v.speaker for v in mix}
    shipped = {v.speaker for v in all_voices(0)}
    assert shipped <= {v.speaker for v in mix}                            # shipped TTS voices stay
    assert {v.speaker for v in mix if v.kind == "transformed"} == {v.speaker for v in every if v.kind == "transformed"}
    with pytest.raises(PressError, match="--full"):
        synthesize(tmp_path, languages=False, progress=False)

def installed(voice) -> bool:
    """Whether the Debian packages a voice renders from are here (CI installs only a few of them)."""
    from press.corpus.voices import requirements

    source = voice.params.get("source", voice)
    return all(glob.glob(need) if "/" in need else shutil.which(need) for need, _ in requirements(source))


def test_full_plan_contains_the_shipped_plan_unchanged():
    try:
        shipped = {p.uid: p for p in plan_corpus(0)}
    except PressError as err:   # the shipped plan lists recorded prompts that Debian packages install
        if "install it with" not in str(err):
            raise
        pytest.skip(str(err))
    voices = [v for v in full_voices(0) if v.kind == "tts" or installed(v)]
    assert any(v.kind == "real" for v in voices)          # CI installs Carlo's prompts, codec2, Sphinx, Fish Fillets cs
    full = {p.uid: p for v in voices for p in plan_voice(v, 0, full=True)}
    for uid, p in shipped.items():
        if p.voice in voices:
            got = full[uid]
            assert (got.voice, got.text, got.source, got.rate) == (p.voice, p.text, p.source, p.rate)
    extra = [p for uid, p in full.items() if uid not in shipped]
    assert extra and all(p.voice.split == "train" for p in extra)


def test_transformed_voices_are_training_speakers_of_their_source_talent():
    full = full_voices(0)
    transformed = [v for v in full if v.kind == "transformed"]
    assert transformed and len({v.speaker for v in transformed}) == len(transformed)
    for v in transformed:
        source = v.params["source"]
        assert source.kind == "real" and source.split == "train" == v.split and v.talent == source.talent
    carlo = [v for v in transformed if v.talent == "carlo-it"]
    if not installed(carlo[0]):
        pytest.skip("needs the apt package asterisk-core-sounds-it-wav")
    plans = [plan_voice(v, 0, full=True) for v in carlo]
    sources = [p.source for plan in plans for p in plan]
    assert len(sources) == len(set(sources))              # no two voices read the same utterance
    assert all(0 < len(plan) <= TRANSFORMED_UTTERANCES for plan in plans)


@pytest.mark.parametrize("lang", ["de", "ru", "ja", "es"])
def test_foreign_text_is_seeded_and_in_its_language(lang):
    a = foreign_text(np.random.default_rng(3), lang)
    assert a == foreign_text(np.random.default_rng(3), lang)
    assert a != foreign_text(np.random.default_rng(4), lang)
    assert a[-1] in ".?"
    if lang == "ru":      # Cyrillic words only: the English that wordfreq's lists carry is dropped
        assert all("\u0400" <= ch <= "\u04ff" for ch in a if ch.isalpha())
    if lang == "ja":
        assert " " not in a.split(".")[0]
    with pytest.raises(ValueError):
        foreign_text(np.random.default_rng(0), "tlh")


def test_a_missing_rendered_corpus_says_how_to_render_it(tmp_path):
    from press.data import get_dataset
    from press.errors import PressError

    with pytest.raises(PressError, match=r"press data synth .*not-rendered --full"):
        get_dataset("builtin", str(tmp_path / "not-rendered"), split="train")
