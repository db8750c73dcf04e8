"""Seeded English sentences for the TTS voices of the built-in corpus.

A small template grammar rather than a shipped text corpus: it costs a few kilobytes, has no
licence of its own, and gives every utterance different words, lengths and prosody (statements,
questions, lists, numbers), so that no two voices read the same script.
"""

from __future__ import annotations

import numpy as np

from press.errors import optional_module

_SUBJECTS = (
    "the old sailor", "my neighbour", "a tired doctor", "the young painter", "our teacher", "the quiet child",
    "a clever student", "the farmer", "her brother", "the new driver", "his grandmother", "the baker",
    "a careful pilot", "the small dog", "the manager", "a local musician", "the nurse", "my cousin",
    "the engineer", "a stranger", "the gardener", "their uncle", "the librarian", "a busy waiter",
)
_VERBS = (
    "carried", "painted", "forgot", "found", "repaired", "opened", "described", "borrowed", "cleaned",
    "noticed", "ordered", "wrapped", "followed", "counted", "moved", "watched", "packed", "returned",
    "measured", "collected", "dropped", "lifted", "checked", "sold",
)
_OBJECTS = (
    "a heavy wooden box", "the broken clock", "two green apples", "an old letter", "the red bicycle",
    "a bag of flour", "the kitchen window", "three blue cups", "a map of the coast", "the garden gate",
    "a warm blanket", "the silver key", "a pile of books", "the little boat", "a jar of honey",
    "the yellow umbrella", "a pair of boots", "the morning paper", "a basket of bread", "the last ticket",
)
_PLACES = (
    "near the station", "behind the church", "at the market", "by the river", "in the hallway",
    "on the top shelf", "under the bridge", "across the square", "beside the harbour", "in the attic",
    "at the bus stop", "outside the bakery", "along the beach", "in the back garden",
)
_TIMES = (
    "yesterday", "this morning", "last winter", "before dinner", "on Sunday", "after the storm",
    "every evening", "at midnight", "in early spring", "on a rainy Tuesday", "late last night",
)
_ADJECTIVES = ("cold", "bright", "strange", "quiet", "noisy", "lovely", "difficult", "simple", "long", "short")
_NOUNS = ("day", "journey", "idea", "question", "story", "meeting", "winter", "lesson", "walk", "song")
_QUESTIONS = (
    "Did {s} really say that {t}?", "Why would {s} leave {o} {p}?", "Have you seen {o} {p}?",
    "Who {v} {o} {t}?", "Is it true that {s} {v} {o}?",
)
_STATEMENTS = (
    "{S} {v} {o} {p} {t}.", "{T}, {s} {v} {o}.", "{S} {v} {o} and then {v2} {o2}.",
    "It was a {a} {n}, so {s} {v} {o} {p}.", "{S} said the {n} was {a}, but nobody listened.",
    "{S} {v} {o} {p}, while {s2} {v2} {o2}.", "We met {s} {p} {t}, and it was a {a} {n}.",
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _number_sentence(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 9999))
    year = int(rng.integers(1890, 2030))
    pick = int(rng.integers(3))
    if pick == 0:
        return f"The bill came to {n} pounds and {int(rng.integers(1, 99))} pence."
    if pick == 1:
        return f"The house was built in {year} and sold {int(rng.integers(2, 60))} years later."
    area, number, hour = rng.integers(100, 999), rng.integers(1000, 9999), int(rng.integers(1, 12))
    return f"Please call me back on {area} {number} before {hour} o'clock."


def sentence(rng: np.random.Generator) -> str:
    """One sentence drawn from the grammar with `rng` (statements, questions or numbers)."""
    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    kind = rng.random()
    if kind < 0.12:
        return _number_sentence(rng)
    template = pick(_QUESTIONS) if kind < 0.3 else pick(_STATEMENTS)
    s = pick(_SUBJECTS)
    t = pick(_TIMES)
    return template.format(
        s=s, S=_cap(s), v=pick(_VERBS), o=pick(_OBJECTS), p=pick(_PLACES), t=t, T=_cap(t),
        s2=pick(_SUBJECTS), v2=pick(_VERBS), o2=pick(_OBJECTS), a=pick(_ADJECTIVES), n=pick(_NOUNS),
    )


def utterance_text(rng: np.random.Generator) -> str:
    """One or two sentences, so utterances last roughly 2 to 7 seconds."""
    n = 1 if rng.random() < 0.6 else 2
    return " ".join(sentence(rng) for _ in range(n))


# Languages whose text has no spaces between words.
_UNSPACED = {"zh", "ja"}
_LEXICON_SIZE = 3000


def _lexicon(lang: str) -> tuple[list[str], np.ndarray]:
    """The language's most frequent written words (letters only) and Zipf weights over their ranks."""
    wordfreq = optional_module("wordfreq", "render", "texts in other languages")
    if lang not in wordfreq.available_languages():   # wordfreq would silently fall back to English
        raise ValueError(f"no word list for language {lang!r}")
    # wordfreq's lists hold loanwords and English from the web ("the" in Russian): a word that is more
    # frequent in English than in the language itself is dropped
    english = {w: rank for rank, w in enumerate(wordfreq.top_n_list("en", _LEXICON_SIZE))} if lang != "en" else {}
    words = [
        w for rank, w in enumerate(wordfreq.top_n_list(lang, _LEXICON_SIZE))
        if w.isalpha() and (len(w) > 1 or lang in _UNSPACED) and english.get(w, _LEXICON_SIZE) >= rank
    ]
    weights = 1.0 / (np.arange(len(words)) + 10.0)   # Zipf's law, flattened at the top ranks
    return words, weights / weights.sum()


_LEXICONS: dict[str, tuple[list[str], np.ndarray]] = {}


def foreign_text(rng: np.random.Generator, lang: str) -> str:
    """One or two "sentences" of a language other than English: frequent words drawn by rank.

    Not grammar, but the language's own words at their natural frequencies, so a voice reads
    them with its language's phonemes, phonotactics and sentence prosody: what a separator needs
    from speech in that language. Words come from wordfreq's lists (pinned in the `render` extra, so
    the same seed gives the same text); a language it lacks raises ValueError.
    """
    if lang not in _LEXICONS:
        _LEXICONS[lang] = _lexicon(lang)
    words, p = _LEXICONS[lang]
    joiner = "" if lang in _UNSPACED else " "
    sentences = []
    for _ in range(1 if rng.random() < 0.6 else 2):
        picked = [words[i] for i in rng.choice(len(words), size=int(rng.integers(5, 15)), p=p)]
        if len(picked) > 7 and rng.random() < 0.5 and lang not in _UNSPACED:
            picked[int(rng.integers(3, len(picked) - 3))] += ","
        end = "?" if rng.random() < 0.2 else "."
        sentences.append(_cap(joiner.join(picked)) + end)
    return " ".join(sentences)
