"""`press data synth` rebuilds the shipped utterances; missing tools fail clearly.

The rebuild test renders a small subset (espeak-ng, flite, codec2, pocketsphinx, Asterisk's Italian
prompts, Fish Fillets' Czech lines and the KDE readers' joined clips) and
needs those Debian packages; .ci/run installs them. It is skipped, saying so, where they are absent.
Utterances read from recorded files must come back bit-identical (fixed inputs, fixed chain). A TTS
engine's output is Debian's, not PRESS's: a new espeak-ng or flite release renders other samples, so
for those the test checks what PRESS controls (the plan's text, split and ids, the sample rate, the
conditioning chain's level and trim, a duration near the shipped one, identical bytes when rendered
twice).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from press.commands import data as data_command
from press.corpus.conditioning import TARGET_DBFS
from press.corpus.synth import Plan, plan_corpus, plan_voice, render, synthesize
from press.corpus.voices import all_voices
from press.corpus.world_voices import full_voices
from press.data.builtin import CORPUS_DIR, load_manifest
from press.data.manifest import SAMPLE_RATE, pcm_sha256
from press.errors import PressError

SUBSET_ENGINES = {"espeak-ng": 3, "flite": 2, "codec2-examples": 2, "pocketsphinx-testdata": 2,
                  "asterisk-core-sounds-it-wav": 2, "fillets-ng-data-cs": 2, "klettres-data": 2, "ktuberling-data": 1}
TOOLS_PRESENT = (
    shutil.which("espeak-ng")
    and shutil.which("flite")
    and Path("/usr/share/codec2/raw/hts1.raw").exists()
    and Path("/usr/share/pocketsphinx/test/data/cards/001.wav").exists()
    and Path("/usr/share/asterisk/sounds/it_IT_m_Carlo").is_dir()
    and Path("/usr/share/games/fillets-ng/sound/airplane/cs").is_dir()
    and Path("/usr/share/klettres/fr").is_dir()
    and Path("/usr/share/ktuberling/sounds/lt").is_dir()
)


def subset_ids() -> set[str]:
    """A fixed spread of utterances over the cheap engines: the first few of each, plus late ones."""
    rows = load_manifest()
    out = set()
    for engine, n in SUBSET_ENGINES.items():
        ids = [r["id"] for r in rows if r["engine"] == engine]
        out.update(ids[:n] + ids[-1:])
    return out


FRAME = SAMPLE_RATE // 100           # the conditioning chain's 10 ms frames
TRIM_MARGIN_FRAMES = 8               # frames it keeps around the speech
# A TTS utterance's duration may move with the engine's release (phoneme durations, pauses), not by
# much: a wrong text, rate or trim moves it further.
TTS_SECONDS_TOLERANCE = 0.15


def assert_conditioned(pcm: np.ndarray, uid: str) -> None:
    """What press.corpus.conditioning promises of every utterance: int16 mono, trimmed to its speech
    (at most TRIM_MARGIN_FRAMES kept beyond the first and last frames within 45 dB of the loudest;
    46 here, as rounding to int16 moves a frame on that edge by a few hundredths of a dB), active
    level TARGET_DBFS unless the 0.98 peak limit lowered it."""
    assert pcm.dtype == np.int16 and pcm.ndim == 1, uid
    x = pcm.astype(np.float64) / 32767.0
    n = len(x) // FRAME
    frames = x[: n * FRAME].reshape(n, FRAME)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    peak = float(np.abs(x).max())
    assert peak <= 0.98 + 1e-4, uid
    level = 10 * np.log10(np.mean(frames[db > db.max() - 30] ** 2))
    if peak < 0.97:
        assert abs(level - TARGET_DBFS) < 0.1, (uid, level)
    else:
        assert level < TARGET_DBFS + 0.1, (uid, level)
    voiced = np.flatnonzero(db > db.max() - 46)
    assert voiced[0] <= TRIM_MARGIN_FRAMES and n - 1 - voiced[-1] <= TRIM_MARGIN_FRAMES, uid


@pytest.mark.skipif(
    not TOOLS_PRESENT,
    reason="needs apt packages espeak-ng flite codec2-examples pocketsphinx-testdata asterisk-core-sounds-it-wav "
    "fillets-ng-data fillets-ng-data-cs klettres-data ktuberling-data",
)
def test_synth_rebuilds_the_shipped_subset(tmp_path):
    manifest = load_manifest()
    expected = {r["id"]: r for r in manifest}
    ids = subset_ids()
    rows = synthesize(tmp_path, seed=0, only=ids, progress=False)
    # the shipped ids, in the shipped order, each with the shipped voice, split, text and licence
    assert [r["id"] for r in rows] == [r["id"] for r in manifest if r["id"] in ids]
    assert {r["kind"] for r in rows} == {"real", "tts"}
    for r in rows:
        want = expected[r["id"]]
        for key in ("path", "speaker", "talent", "kind", "engine", "split", "licence", "text"):
            assert r[key] == want[key], (r["id"], key, r[key], want[key])
        pcm, rate = sf.read(tmp_path / r["path"], dtype="int16")
        assert rate == SAMPLE_RATE and pcm_sha256(pcm) == r["sha256"], r["id"]
        assert float(r["seconds"]) == round(len(pcm) / SAMPLE_RATE, 3), r["id"]
        assert_conditioned(pcm, r["id"])
        if r["kind"] == "real":     # recorded files through a fixed chain: the very samples shipped
            assert r["sha256"] == want["sha256"] and float(r["seconds"]) == want["seconds"], r["id"]
        else:                        # the engine's release decides the samples; PRESS decides the rest
            shipped, _ = sf.read(CORPUS_DIR / want["path"], dtype="int16")
            assert_conditioned(shipped, want["id"])   # the check holds for what was shipped
            seconds = float(r["seconds"])
            assert abs(seconds - want["seconds"]) <= TTS_SECONDS_TOLERANCE * want["seconds"], (r["id"], seconds)
    tts = {r["id"]: r["sha256"] for r in rows if r["kind"] == "tts"}
    again = {p.uid: pcm_sha256(render(p)) for p in plan_corpus(0, only=set(tts))}
    assert again == tts                # rendering is a function of the plan: the same bytes twice
    assert [r["id"] for r in load_manifest(tmp_path)] == [r["id"] for r in rows]


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs the apt package flite")
def test_synth_resumes_a_killed_run_and_renders_the_same_in_parallel(tmp_path):
    import soundfile as sf

    ids = {"tts-flite-slt-000", "tts-flite-awb-003", "tts-flite-kal-001"}
    serial = synthesize(tmp_path / "a", seed=0, only=ids, progress=False)
    parallel = synthesize(tmp_path / "b", seed=0, only=ids, progress=False, jobs=2)
    assert serial == parallel
    # a killed run leaves complete files (atomic writes) and no manifest: the next run reads them back
    (tmp_path / "a" / "manifest.csv").unlink()
    kept = tmp_path / "a" / serial[0]["path"]
    pcm, sr = sf.read(kept, dtype="int16")
    sf.write(kept, pcm[: len(pcm) // 2], sr, subtype="PCM_16", format="FLAC")   # marks the file as not re-rendered
    again = synthesize(tmp_path / "a", seed=0, only=ids, progress=False)
    assert again[1:] == serial[1:] and again[0]["sha256"] != serial[0]["sha256"]
    with pytest.raises(PressError, match="another folder"):
        synthesize(tmp_path / "a", seed=1, only=set(), progress=False)


def test_the_shipped_plan_is_the_shipped_manifest():
    """`press data synth` without --full plans exactly the manifest's rows, in its order: every TTS
    utterance with its voice, split, licence and text (planning them needs no package), and every
    recorded speaker. Nothing under a non-commercial licence (MBROLA) is planned or shipped."""
    rows = load_manifest()
    voices = all_voices(0)
    planned = [p for v in voices if v.kind == "tts" for p in plan_voice(v, 0)]
    assert [
        (p.uid, f"audio/{p.voice.speaker}/{p.uid}.flac", p.voice.speaker, p.voice.talent, p.voice.engine,
         p.voice.split, p.voice.licence, p.text) for p in planned
    ] == [
        (r["id"], r["path"], r["speaker"], r["talent"], r["engine"], r["split"], r["licence"], r["text"])
        for r in rows if r["kind"] == "tts"
    ]
    assert [v.speaker for v in voices if v.kind == "real"] == list(dict.fromkeys(
        r["speaker"] for r in rows if r["kind"] == "real"))
    assert not [r["id"] for r in rows if r["engine"] == "mbrola" or "non-commercial" in r["licence"]]


def test_plan_is_a_function_of_the_seed():
    a = [(p.uid, p.text, p.rate) for p in plan_corpus(0, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    b = [(p.uid, p.text, p.rate) for p in plan_corpus(0, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    c = [(p.uid, p.text, p.rate) for p in plan_corpus(1, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    assert a == b and a != c
    shipped = {r["id"]: r["text"] for r in load_manifest()}
    assert {u: t for u, t, _ in a} == {u: shipped[u] for u, _, _ in a}
    with pytest.raises(PressError, match="unknown utterance ids"):
        synthesize("/nonexistent", seed=0, only={"tts-flite-slt-999"}, progress=False)


def test_missing_tool_names_the_apt_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no TTS binaries reachable
    voice = next(v for v in all_voices(0) if v.engine == "flite")
    with pytest.raises(PressError, match="apt-get install flite"):
        render(Plan("x-000", voice, "hello there"))
    with pytest.raises(PressError, match=r"apt-get install .*espeak-ng.*flite"):
        synthesize(tmp_path, seed=0, only={"tts-flite-slt-000", "tts-espeak-m1-en-gb-000"}, progress=False)
    assert not (tmp_path / "manifest.csv").exists()  # nothing rendered before the check


def test_info_command_reports_splits(capsys):
    parser = argparse.ArgumentParser()
    data_command.add_arguments(parser)
    assert data_command.run(parser.parse_args(["info"])) == 0
    out = capsys.readouterr().out
    assert f"{len(load_manifest())} utterances" in out.splitlines()[0]
    assert any(line.startswith("test    real") for line in out.splitlines())


def test_no_mbrola_leaves_the_non_commercial_voices_out_of_the_full_corpus(tmp_path):
    mbrola_id = next(v.speaker for v in full_voices(0, languages=False) if v.engine == "mbrola") + "-000"
    assert [p.uid for p in plan_corpus(0, only={mbrola_id}, full=True, languages=False)] == [mbrola_id]
    assert plan_corpus(0, only={mbrola_id}, full=True, languages=False, mbrola=False) == []
    with pytest.raises(PressError, match="--no-mbrola applies to the full corpus"):
        synthesize(tmp_path, mbrola=False, progress=False)
