"""`press data synth` rebuilds the shipped utterances bit-identically; missing tools fail clearly.

The rebuild test renders a small subset (espeak-ng, flite, codec2, pocketsphinx, Asterisk's Italian
prompts, Fish Fillets' Czech lines and the KDE readers' joined clips) and
needs those Debian packages; .ci/run installs them. It is skipped, saying so, where they are absent.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from press.commands import data as data_command
from press.data.builtin import load_manifest
from press.data.synth import Plan, plan_corpus, render, synthesize
from press.data.voices import all_voices
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


@pytest.mark.skipif(
    not TOOLS_PRESENT,
    reason="needs apt packages espeak-ng flite codec2-examples pocketsphinx-testdata asterisk-core-sounds-it-wav "
    "fillets-ng-data fillets-ng-data-cs klettres-data ktuberling-data",
)
def test_synth_rebuilds_shipped_subset_bit_identically(tmp_path):
    expected = {r["id"]: r for r in load_manifest()}
    ids = subset_ids()
    rows = synthesize(tmp_path, seed=0, only=ids, progress=False)
    assert {r["id"] for r in rows} == ids
    for r in rows:
        assert r["sha256"] == expected[r["id"]]["sha256"], r["id"]
        assert r["split"] == expected[r["id"]]["split"] and r["text"] == expected[r["id"]]["text"]
        assert (tmp_path / r["path"]).exists()
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


def test_plan_is_a_function_of_the_seed():
    a = [(p.uid, p.text, p.rate) for p in plan_corpus(0, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    b = [(p.uid, p.text, p.rate) for p in plan_corpus(0, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    c = [(p.uid, p.text, p.rate) for p in plan_corpus(1, only={"tts-flite-slt-000", "tts-flite-awb-003"})]
    assert a == b and a != c
    shipped = {r["id"]: r["text"] for r in load_manifest()}
    assert dict((u, t) for u, t, _ in a) == {u: shipped[u] for u, _, _ in a}
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
