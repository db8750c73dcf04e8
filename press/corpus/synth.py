"""Rebuild the built-in corpus's clean utterances from Debian packages, deterministically.

`press data synth OUT_DIR --seed N` runs `synthesize`. Real recordings are read from the packages'
files; TTS utterances are rendered by espeak-ng, flite, festival, RHVoice and pico (and, in the full
corpus only, espeak-ng with MBROLA voices, whose licence forbids commercial use) with texts and
prosody drawn from the seed. Every utterance then goes through the same fixed chain (mono, soxr to
8 kHz, silence trim, level normalisation, int16), so the PCM is a pure function of the seed and the
package versions; the manifest stores a SHA-256 of each utterance's int16 samples to prove it.
"""

from __future__ import annotations

import functools
import glob
import json
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from press.corpus.conditioning import condition
from press.corpus.text import foreign_text, utterance_text
from press.corpus.voices import (
    ASTERISK_ROOT,
    ASTERISK_VOICES,
    FILLETS_HELD_OUT_SECONDS,
    FILLETS_ROOT,
    FILLETS_VOICES,
    KDE_HELD_OUT_SECONDS,
    KDE_JOIN_SECONDS,
    PACKAGES,
    Voice,
    _stable_rng,
    all_voices,
    asterisk_dir,
    requirements,
)
from press.corpus.world_voices import TRANSFORMED_UTTERANCES, full_voices
from press.data.manifest import SAMPLE_RATE, pcm_sha256, write_manifest
from press.errors import PressError
from press.io.audio import load_audio, write_audio
from press.io.files import atomic_write

if TYPE_CHECKING:   # the WORLD vocoder (the `render` extra) is imported only by what renders transformed voices
    from press.corpus.transform import VoiceShift

TTS_UTTERANCES = 6  # per synthetic voice of the shipped corpus
TRANSFORM_F0_FILES = 5  # utterances a talent's median F0 is measured on, to place its transformed voices
# F0 tracker of the transformed voices: dio + stonemask analyses 3.5x faster than harvest (0.046 against
# 0.164 CPU s per s of audio), which makes the full corpus's ~2 h of transformed speech a quarter of an hour
# on two cores instead of an hour; on clean studio speech its contours serve resynthesis well.
TRANSFORM_F0_METHOD = "dio"
TTS_UTTERANCES_FULL = 12  # per synthetic voice the full corpus adds (press.corpus.world_voices)
FESTIVAL_ENCODINGS = {"cs": "iso-8859-2", "ca": "latin-1", "es": "latin-1", "fi": "latin-1", "it": "latin-1"}
ASTERISK_MIN_SECONDS = 1.5  # shorter prompts are single words
ASTERISK_FULL_MIN_SECONDS = 1.0  # the full corpus keeps words too: they are speech of the same voices
# More prompts by a voice in another language's folder: Asterisk's Mexican-Spanish prompts are Allison's.
ASTERISK_EXTRA_FOLDERS = {"allison": ("es_MX_f_Allison",)}


@dataclass(frozen=True)
class Plan:
    """What to render for one utterance: a source file (real), several joined (`parts`), or text and
    prosody (TTS)."""

    uid: str
    voice: Voice
    text: str
    source: str = ""
    parts: tuple[str, ...] = ()
    rate: float = 1.0
    pitch: float = 0.0


def _asterisk_files(name: str) -> list[str]:
    """The prompts kept for one Asterisk voice: sentences, in name order, within its seconds budget
    (the budgets keep the shipped corpus near 30 MB)."""
    _, package, budget = ASTERISK_VOICES[name]
    root = Path(asterisk_dir(name))
    if not root.is_dir():
        raise PressError(f"{root} not found; install it with: apt-get install {' '.join(PACKAGES[package])}")
    return _within([str(f) for f in sorted(root.glob("*.wav"))], ASTERISK_MIN_SECONDS, budget)


def _asterisk_rest(name: str, shipped: list[str]) -> list[str]:
    """Every other prompt of a voice of at least ASTERISK_FULL_MIN_SECONDS, in its own and its extra folders."""
    folders = [Path(asterisk_dir(name))] + [Path(ASTERISK_ROOT) / f for f in ASTERISK_EXTRA_FOLDERS.get(name, ())]
    for folder in folders:
        if not folder.is_dir():
            raise PressError(f"{folder} not found; install the asterisk-core-sounds-*-wav packages")
    taken = set(shipped)
    return [
        str(f) for folder in folders for f in sorted(folder.glob("*.wav"))
        if str(f) not in taken and _seconds(str(f)) >= ASTERISK_FULL_MIN_SECONDS
    ]


def fillets_files(name: str) -> list[str]:
    """One Fish Fillets actor's dialogue lines: the voice files whose line the game's scripts give that
    actor's font, in path order."""
    lang, font = FILLETS_VOICES[name]
    scripts = sorted(Path(FILLETS_ROOT, "script").glob(f"*/dialogs_{lang}.lua"))
    sounds = sorted(Path(FILLETS_ROOT, "sound").glob(f"*/{lang}/*.ogg"))
    if not scripts or not sounds:
        package = f"fillets-ng-data-{lang}"
        raise PressError(f"Fish Fillets voices not found; install: apt-get install {' '.join(PACKAGES[package])}")
    fonts = {}
    for script in scripts:
        fonts.update(re.findall(r'dialogId\("([^"]+)",\s*"([^"]*)"', script.read_text(errors="replace")))
    return [str(f) for f in sounds if fonts.get(f.stem) == font]


@functools.cache
def _seconds(path: str) -> float:
    """A source file's duration from its header, read once: budgets and joins both ask for it."""
    return sf.info(path).duration


def _within(files: list[str], min_seconds: float, budget: float) -> list[str]:
    """The files of at least `min_seconds`, in order, while their total stays within `budget` seconds."""
    chosen, total = [], 0.0
    for f in files:
        seconds = _seconds(f)
        if seconds >= min_seconds and total + seconds <= budget:
            chosen.append(f)
            total += seconds
    return chosen


@functools.cache
def _real_files(voice: Voice, full: bool) -> tuple[str, ...]:
    """The source files of a recorded voice; `full`: all of a training voice's material. Cached: the
    transformed voices of a talent all read its list."""
    p = voice.params
    if "asterisk" in p:
        files = _asterisk_files(p["asterisk"])
        return tuple(files + _asterisk_rest(p["asterisk"], files) if full and voice.split == "train" else files)
    if "fillets" in p:
        budget = float("inf") if voice.split == "train" else FILLETS_HELD_OUT_SECONDS
        return tuple(_within(fillets_files(p["fillets"]), ASTERISK_MIN_SECONDS, budget))
    if "glob" in p:
        files = sorted(glob.glob(p["glob"], recursive=True))
        if not files:
            raise PressError(f"no files match {p['glob']}; install: apt-get install {' '.join(PACKAGES[voice.engine])}")
        if p.get("join"):   # held out: every clip, single letters too, within the reader's budget
            return tuple(_within(files, 0.0, KDE_HELD_OUT_SECONDS))
        return tuple(_within(files, ASTERISK_FULL_MIN_SECONDS, float("inf")))
    return voice.files


def _joined(files: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Consecutive clips grouped into utterances of at least KDE_JOIN_SECONDS (the last group may be shorter
    if it is the only one; otherwise a short tail joins the group before it)."""
    groups: list[list[str]] = [[]]
    total = 0.0
    for f in files:
        groups[-1].append(f)
        total += _seconds(f)
        if total >= KDE_JOIN_SECONDS:
            groups.append([])
            total = 0.0
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1 and total < KDE_JOIN_SECONDS:
        groups[-2].extend(groups.pop())
    return [tuple(g) for g in groups]


@functools.cache
def voice_shift(source: Voice, k: int, n: int) -> VoiceShift:
    """Shift k of the n transformed voices of a recorded talent, drawn around its median F0 (measured
    on its first TRANSFORM_F0_FILES voiced utterances) from a seed of the talent's name: the same in
    every process, so parallel rendering agrees."""
    from press.corpus.transform import analyse, draw_shifts

    medians = []
    for f in _real_files(source, full=True):
        try:   # a letter such as "s" read alone has no voiced frame: it says nothing of the voice's pitch
            medians.append(analyse(*_read_file(f, source), f0_method="dio").median_f0)
        except PressError:
            continue
        if len(medians) == TRANSFORM_F0_FILES:
            break
    if not medians:
        raise PressError(f"{source.speaker}: no utterance with voiced speech to measure its pitch on")
    return draw_shifts(float(np.median(medians)), n, seed=zlib.crc32(source.talent.encode()))[k]


def plan_voice(voice: Voice, seed: int, full: bool = False) -> list[Plan]:
    """The utterances of one voice, in order; ids are `<speaker>-<NNN>`.

    `full`: a training voice of Asterisk gets all its prompts, numbered after the shipped ones (whose
    ids and audio stay as shipped).
    """
    if voice.kind == "transformed":
        p = voice.params
        files = _real_files(p["source"], full=True)[p["shift"]::p["of"]][:TRANSFORMED_UTTERANCES]
        return [Plan(f"{voice.speaker}-{k:03d}", voice, Path(f).stem, source=f) for k, f in enumerate(files)]
    if voice.kind == "real":
        files = _real_files(voice, full)
        if voice.params.get("join"):
            return [
                Plan(f"{voice.speaker}-{k:03d}", voice, " ".join(Path(f).stem for f in group), parts=group)
                for k, group in enumerate(_joined(files))
            ]
        return [Plan(f"{voice.speaker}-{k:03d}", voice, Path(f).stem, source=f) for k, f in enumerate(files)]
    rng = _stable_rng(seed, "utt:" + voice.speaker)
    lang = voice.params.get("text_lang")
    plans = []
    for k in range(TTS_UTTERANCES_FULL if lang else TTS_UTTERANCES):
        text = foreign_text(rng, lang) if lang else utterance_text(rng)
        rate = float(rng.uniform(0.85, 1.2))
        pitch = float(rng.uniform(-1.0, 1.0))
        plans.append(Plan(f"{voice.speaker}-{k:03d}", voice, text, rate=rate, pitch=pitch))
    return plans


def _run(cmd: list[str], engine: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise PressError(f"{cmd[0]} not found; install: apt-get install {' '.join(PACKAGES[engine])}")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PressError(
            f"{' '.join(cmd[:3])} ... failed ({done.stderr.strip()[:300]}); check the packages "
            f"{' '.join(PACKAGES[engine])} are installed"
        )


def _render_tts(plan: Plan, tmp: Path) -> tuple[np.ndarray, int]:
    v, p = plan.voice, plan.voice.params
    out = tmp / "u.wav"
    if v.engine in ("espeak-ng", "mbrola"):
        pitch = int(np.clip(p["pitch"] + 8 * plan.pitch, 0, 99))
        rate = round(165 / plan.rate)
        _run(["espeak-ng", "-v", p["voice"], "-p", str(pitch), "-s", str(rate), "-w", str(out), plan.text], v.engine)
    elif v.engine == "flite":
        f0 = p["f0"] * (1 + 0.12 * plan.pitch)
        _run(
            [
                "flite",
                "-voice",
                p["voice"],
                "--setf",
                f"duration_stretch={plan.rate:.3f}",
                "--setf",
                f"int_f0_target_mean={f0:.1f}",
                "-t",
                plan.text,
                "-o",
                str(out),
            ],
            "flite",
        )
    elif v.engine == "festival":
        txt = tmp / "u.txt"
        # festival's voices read 8-bit text in their language's legacy encoding, not UTF-8
        txt.write_bytes(plan.text.encode(FESTIVAL_ENCODINGS.get(p.get("text_lang", "en"), "utf-8"), errors="ignore"))
        _run(
            [
                "text2wave",
                "-eval",
                f"(voice_{p['voice']})",
                "-eval",
                f"(Parameter.set 'Duration_Stretch {plan.rate:.3f})",
                "-o",
                str(out),
                str(txt),
            ],
            "festival",
        )
    elif v.engine == "rhvoice":
        txt = tmp / "u.txt"
        txt.write_text(plan.text)
        rate, pitch = round(100 / plan.rate), round(100 + 12 * plan.pitch)
        _run(
            ["RHVoice-test", "-p", p["voice"], "-r", str(rate), "-t", str(pitch), "-i", str(txt), "-o", str(out)],
            "rhvoice",
        )
    elif v.engine == "pico":
        speed, pitch = round(100 / plan.rate), round(100 + 12 * plan.pitch)
        markup = f"<speed level='{speed}'><pitch level='{pitch}'>{plan.text}</pitch></speed>"
        _run(["pico2wave", "-l", p["lang"], "-w", str(out), markup], "pico")
    else:
        raise PressError(f"unknown TTS engine {v.engine!r}")
    return load_audio(out, channel="mix")


def _read_file(source: str, voice: Voice) -> tuple[np.ndarray, int]:
    path = Path(source)
    if path.suffix == ".raw":  # headerless 16-bit little-endian mono
        rate = 16000 if voice.engine == "pocketsphinx-testdata" else 8000
        return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0, rate
    return load_audio(path, channel="mix")


JOIN_GAP_SECONDS = 0.3  # of silence between joined clips


def _read_real(plan: Plan) -> tuple[np.ndarray, int]:
    if not plan.parts:
        return _read_file(plan.source, plan.voice)
    # each clip conditioned alone (trimmed, at the common level), then read one after another
    gap = np.zeros(int(JOIN_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    clips = [condition(*_read_file(f, plan.voice)).astype(np.float32) / 32768.0 for f in plan.parts]
    return np.concatenate([x for clip in clips for x in (clip, gap)][:-1]), SAMPLE_RATE


def _transform(plan: Plan) -> tuple[np.ndarray, int]:
    """A recorded utterance in a transformed voice: its source conditioned first (so WORLD sees the
    same trimmed, levelled speech as the source voice's own utterance), then shifted."""
    from press.corpus.transform import analyse, synthesise

    p = plan.voice.params
    x, sr = _read_file(plan.source, p["source"])
    clean = condition(x, sr).astype(np.float32) / 32768.0
    shift = voice_shift(p["source"], p["shift"], p["of"])
    return synthesise(analyse(clean, SAMPLE_RATE, f0_method=TRANSFORM_F0_METHOD), shift), SAMPLE_RATE


def render(plan: Plan) -> np.ndarray:
    """Render one planned utterance to conditioned int16 PCM at 8 kHz."""
    if plan.voice.kind == "real":
        x, sr = _read_real(plan)
    elif plan.voice.kind == "transformed":
        x, sr = _transform(plan)
    else:
        with tempfile.TemporaryDirectory(prefix="press-synth-") as tmp:
            x, sr = _render_tts(plan, Path(tmp))
    return condition(x, sr)


def plan_corpus(
    seed: int, only: set[str] | None = None, full: bool = False, languages: bool = True, mbrola: bool = True,
) -> list[Plan]:
    """All planned utterances (or those with ids in `only`; voices not needed are not planned).

    `full`: the full training corpus (press.corpus.world_voices), a superset of the shipped one;
    `languages=False`: without its synthetic voices in other languages; `mbrola=False`: without the
    MBROLA voices, whose licence allows non-commercial use only (the shipped corpus never has them).
    """
    plans = []
    voices = full_voices(seed, languages) if full else all_voices(seed)
    for voice in (v for v in voices if mbrola or v.engine != "mbrola"):
        if only is not None and not any(u.rsplit("-", 1)[0] == voice.speaker for u in only):
            continue
        plans.extend(p for p in plan_voice(voice, seed, full) if only is None or p.uid in only)
    return plans


def check_installed(plans: list[Plan]) -> None:
    """Fail before rendering anything, naming every Debian package the plans need and lack."""
    missing: set[str] = set()
    for voice in {p.voice.speaker: p.voice for p in plans}.values():
        for need, package in requirements(voice):
            found = bool(glob.glob(need)) if "/" in need else shutil.which(need) is not None
            if not found:
                missing.add(package)
    if missing:
        raise PressError(
            "the built-in corpus is rendered from Debian packages that are not installed; run:\n"
            f"  apt-get install {' '.join(sorted(missing))}\n"
            "(mbrola-*, rhvoice* and libttspico-utils are in Debian's contrib and non-free components)"
        )


def _render_to(plan: Plan, out: Path) -> dict:
    """Render one utterance into `out` (or read it back if an earlier, interrupted run wrote it) and
    return its manifest row. Files are written atomically, so one that exists is complete."""
    rel = f"audio/{plan.voice.speaker}/{plan.uid}.flac"
    if (out / rel).exists():
        pcm, _ = sf.read(out / rel, dtype="int16")
    else:
        pcm = render(plan)
        write_audio(out / rel, pcm, SAMPLE_RATE)
    v = plan.voice
    return {
        "id": plan.uid,
        "path": rel,
        "speaker": v.speaker,
        "talent": v.talent,
        "kind": v.kind,
        "engine": v.engine,
        "split": v.split,
        "seconds": f"{len(pcm) / SAMPLE_RATE:.3f}",
        "sha256": pcm_sha256(pcm),
        "licence": v.licence,
        "text": plan.text,
    }


def _check_settings(out: Path, settings: dict) -> None:
    """An output folder holds one corpus: resuming into it with another seed or corpus would mix two."""
    path = out / "synth.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise PressError(f"{out} holds a corpus rendered with {previous}, not {settings}; use another folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(settings)))


def synthesize(
    out_dir: str | Path, seed: int = 0, only: set[str] | None = None, progress: bool = True, full: bool = False,
    jobs: int = 1, languages: bool = True, mbrola: bool = True,
) -> list[dict]:
    """Write `out_dir/audio/<speaker>/<id>.flac` and `out_dir/manifest.csv`; return the manifest rows.

    `full`: the full training corpus (the shipped voices plus press.corpus.world_voices), not the shipped one;
    `languages=False`: the full corpus without its synthetic voices in other languages; `mbrola=False`:
    without MBROLA's voices (non-commercial terms), so that everything rendered may be used commercially.
    A run that was killed resumes where it stopped: utterances already in `out_dir` are read, not
    rendered again. `jobs` > 1 renders in that many processes (same output, in the same order).
    """
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from tqdm import tqdm

    out = Path(out_dir)
    if not full and not languages:
        raise PressError("leaving out the synthetic voices in other languages applies to the full corpus (--full)")
    if not full and not mbrola:
        raise PressError("the shipped corpus has no MBROLA voices; --no-mbrola applies to the full corpus (--full)")
    plans = plan_corpus(seed, only, full, languages, mbrola)
    if only is not None and len(plans) != len(only):
        missing = sorted(only - {p.uid for p in plans})
        raise PressError(f"unknown utterance ids for seed {seed}: {missing[:5]}")
    check_installed(plans)
    settings = {"seed": seed, "full": full}
    if not languages:   # only then: folders rendered before the option existed hold every language
        settings["languages"] = False
    if not mbrola:
        settings["mbrola"] = False
    _check_settings(out, settings)
    work = partial(_render_to, out=out)
    bar = partial(tqdm, total=len(plans), desc="press data synth", unit="utt", disable=not progress)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            rows = list(bar(pool.map(work, plans, chunksize=8)))
    else:
        rows = list(bar(map(work, plans)))
    write_manifest(out / "manifest.csv", rows)
    return rows
