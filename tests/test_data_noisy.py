"""The recorded enhancement corpus: the noise and speech catalogues on a fake Debian root laid out as
the real packages are, the renderer, the shipped slice and the on-the-fly mixer."""

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from press.corpus.debian import licence_of, read_audio, seconds_of
from press.corpus.noise_catalogue import RESERVED, SOURCES, SPEECH, plan_noise, split_of
from press.corpus.noisy_render import fingerprint, hf_db, render_noisy_corpus
from press.corpus.wideband_catalogue import speakers
from press.data import get_dataset
from press.data.noisy import SHIPPED, NoisySpeech
from press.errors import PressError

SR = 16000
COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: The UFO:AI Team
License: GPL-2+

Files: debian/*
License: GPL-2+

Files:
 base/sound/ambience/rain.ogg
Copyright: someone
License: CC-BY-SA-3.0
"""


def tone(seconds: float, f: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def ogg_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def speechlike(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Wideband noise bursts at a syllable rate: energy above 4 kHz like recorded speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    env = np.repeat(rng.uniform(0.05, 1.0, n // (sr // 8) + 1), sr // 8)[:n]
    return (0.2 * rng.standard_normal(n) * env).astype(np.float32)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """Files where the real packages install them: a zipped game archive with ambience, weapons and a
    soldier's taunt, megaglest tilesets with a cow, the same wind in two packages, Asterisk's G.722
    prompts and KLettres' word lists."""
    root = tmp_path_factory.mktemp("debroot")
    pk3 = root / "usr/share/games/ufoai/base/0snd.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as zf:
        zf.writestr("sound/ambience/rain.ogg", ogg_bytes(tone(3.0, 300, seed=1)))
        zf.writestr("sound/weapons/shot.ogg", ogg_bytes(tone(0.4, 900, seed=2)))
        zf.writestr("sound/soldiers/taunt1.ogg", ogg_bytes(tone(1.0, 200, seed=3)))
    (root / "usr/share/doc/ufoai-sound").mkdir(parents=True)
    (root / "usr/share/doc/ufoai-sound/copyright").write_text(COPYRIGHT)
    tiles = root / "usr/share/games/megaglest/tilesets/forest/sounds"
    tiles.mkdir(parents=True)
    wind = tone(2.0, 150, seed=4)
    sf.write(tiles / "wind.wav", wind, SR)
    sf.write(tiles / "cow.wav", tone(1.0, 120, seed=5), SR)
    lincity = root / "usr/share/games/lincity-ng/sounds"
    lincity.mkdir(parents=True)
    sf.write(lincity / "Wind.wav", wind, SR)  # the same recording shipped by another game
    import G722

    prompts = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    prompts.mkdir(parents=True)
    for k in range(3):
        pcm = (speechlike(1.5 + k, SR, seed=10 + k) * 32767).astype(np.int16)
        (prompts / f"prompt{k}.g722").write_bytes(G722.G722(SR, 64000).encode(pcm))
    for lang in ("en", "da"):
        words = root / f"usr/share/klettres/{lang}/alpha"
        words.mkdir(parents=True)
        for k in range(6):
            sf.write(words / f"w{k}.ogg", speechlike(0.8, 44100, seed=20 + k), 44100)
    return root


def test_reserved_packages_are_not_catalogued():
    packages = {s.package for s in SOURCES}
    assert not packages & set(RESERVED)
    assert "warzone2100-music" in RESERVED and "tuxpaint-stamps-default" in RESERVED
    assert all("warzone" not in s.location and "tuxpaint" not in s.location for s in SOURCES)


@pytest.mark.parametrize("path,speech", [
    ("audio/voice/greek/civ/attack.ogg", True), ("sound/announcer/male/prepareforbattle.ogg", True),
    ("sound/player/marine/taunt.wav", True), ("Sounds/tcas/climb.wav", True), ("Sounds/mk-viii/pull-up.wav", True),
    ("samples/ambi_choir.flac", True), ("data/sfx/nolok_speech.ogg", True), ("tilesets/x/sounds/cow.wav", True),
    ("sound/ambience/rain.ogg", False), ("Sounds/jet.wav", False), ("samples/drum_snare_hard.flac", False),
])
def test_speech_is_screened_out_by_path(path, speech):
    assert bool(SPEECH.search("/" + path)) is speech


def test_noise_plan_kinds_licences_and_exclusions(fake_root):
    plans = {p.ref.rsplit("/", 1)[-1]: p for p in plan_noise(fake_root)}
    assert set(plans) == {"rain.ogg", "shot.ogg", "wind.wav", "Wind.wav"}  # no taunt, no cow
    assert plans["rain.ogg"].kind == "ambience" and plans["rain.ogg"].licence == "CC-BY-SA-3.0"
    assert plans["shot.ogg"].kind == "impulses" and plans["shot.ogg"].licence == "GPL-2+"
    assert plans["Wind.wav"].kind == "machines" and plans["wind.wav"].kind == "ambience"
    assert plans["rain.ogg"].ref.endswith(".pk3!sound/ambience/rain.ogg")
    assert all(p.split == split_of(p.ref) for p in plans.values())


def test_splits_are_drawn_per_file_in_shares():
    counts = Counter(split_of(f"pkg/file{k}.ogg") for k in range(4000))
    assert 0.77 < counts["train"] / 4000 < 0.83 and 0.08 < counts["val"] / 4000 < 0.12
    assert split_of("a/b.ogg") == split_of("a/b.ogg")


def test_dep5_patterns_match_installed_paths(fake_root):
    ref = "usr/share/games/ufoai/base/0snd.pk3!sound/ambience/rain.ogg"
    assert licence_of(fake_root, "ufoai-sound", ref, "?") == "CC-BY-SA-3.0"
    assert licence_of(fake_root, "ufoai-sound", ref.replace("rain", "storm"), "?") == "GPL-2+"
    assert licence_of(fake_root, "no-such-package", ref, "fallback") == "fallback"


def test_reading_archives_and_g722(fake_root):
    x, sr = read_audio(fake_root, "usr/share/games/ufoai/base/0snd.pk3!sound/ambience/rain.ogg")
    assert sr == SR and abs(len(x) / sr - 3.0) < 0.05
    g = "usr/share/asterisk/sounds/en_US_f_Allison/prompt0.g722"
    y, sr = read_audio(fake_root, g)
    assert sr == 16000 and abs(len(y) / sr - 1.5) < 0.01 and abs(seconds_of(fake_root, g) - 1.5) < 0.01
    with pytest.raises(PressError, match="cannot decode"):
        (fake_root / "broken.ogg").write_bytes(b"OggS not really")
        read_audio(fake_root, "broken.ogg")


def test_empty_root_names_the_packages(tmp_path):
    with pytest.raises(PressError, match="apt-get install .*ufoai-sound"):
        plan_noise(tmp_path)
    with pytest.raises(PressError, match="asterisk-core-sounds-en-g722"):
        speakers(tmp_path)


def test_render_conditions_joins_and_deduplicates(fake_root, tmp_path):
    speech, noise = render_noisy_corpus(fake_root, tmp_path / "out")
    by_speaker = Counter(r["speaker"] for r in speech)
    assert by_speaker["asterisk-allison"] == 3 and set(by_speaker) == {"asterisk-allison", "klettres-en",
                                                                       "klettres-da"}
    assert {r["split"] for r in speech if r["speaker"] == "klettres-en"} == {"test"}  # a held-out reader
    words = [r for r in speech if r["speaker"] == "klettres-da"]
    assert words and all(len(r["sources"].split()) == 4 and float(r["seconds"]) >= 4.0 for r in words)  # joined
    for r in speech:
        x, sr = sf.read(tmp_path / "out" / r["path"])
        assert sr == SR and float(r["hf_db"]) > -30  # wideband content survives the chain
    files = {r["source"].rsplit("/", 1)[-1] for r in noise}
    assert len({"wind.wav", "Wind.wav"} & files) == 1  # the same recording kept once
    assert {"rain.ogg", "shot.ogg"} <= files
    for r in noise:
        x, sr = sf.read(tmp_path / "out" / r["path"])
        assert sr == SR and abs(10 * np.log10(np.mean(x ** 2)) - (-26.0)) < 0.5
    with open(tmp_path / "out" / "noise.csv") as fh:
        assert {r["licence"] for r in csv.DictReader(fh)} >= {"CC-BY-SA-3.0", "GPL-2+"}


def test_hf_db_tells_narrowband_from_wideband():
    wide = speechlike(2.0, SR, seed=1)
    import soxr

    narrow = soxr.resample(soxr.resample(wide, SR, 8000), 8000, SR)
    assert hf_db(wide) > -10 and hf_db(narrow) < -45
    assert fingerprint(wide) == fingerprint(wide * 1.0001) != fingerprint(narrow[: SR])


def test_shipped_slice_splits_are_disjoint():
    with open(SHIPPED / "speech.csv") as fh:
        speech = list(csv.DictReader(fh))
    with open(SHIPPED / "noise.csv") as fh:
        noise = list(csv.DictReader(fh))
    speakers_of = {s: {r["speaker"] for r in speech if r["split"] == s} for s in ("train", "val", "test")}
    assert speakers_of["train"] and speakers_of["val"] and speakers_of["test"]
    assert not (speakers_of["train"] & speakers_of["val"]) and not (speakers_of["train"] & speakers_of["test"])
    sources_of = {s: {r["source"] for r in noise if r["split"] == s} for s in ("train", "val", "test")}
    assert not (sources_of["train"] & sources_of["test"]) and not (sources_of["train"] & sources_of["val"])
    assert {r["kind"] for r in noise} == {"ambience", "machines", "impulses", "music"}
    assert all(r["licence"] and r["package"] not in RESERVED for r in noise)


def test_mixtures_sum_and_keep_the_snr():
    ds = get_dataset("noisy", split="test", sample_rate=SR, num_examples=12)
    assert len(ds) == 12 and ds.n_src == 2
    for i in range(12):
        item = ds[i]
        mix, src = item["mixture"].numpy(), item["sources"].numpy()
        np.testing.assert_allclose(src.sum(0), mix, atol=1e-6)
        snr = float(item["id"].split("snr")[1].split(":")[0])
        speech, noise = src[0], src[1]
        active = np.abs(speech) > 0
        measured = 10 * np.log10(np.mean(speech[active] ** 2) / np.mean(noise ** 2))
        assert abs(measured - snr) < 0.11, (item["id"], measured)
        assert -5.0 <= snr <= 20.0 and np.abs(mix).max() <= 0.99 + 1e-6
    again = NoisySpeech(split="test", num_examples=12)[5]
    np.testing.assert_array_equal(again["mixture"].numpy(), ds[5]["mixture"].numpy())


def test_training_epochs_differ_and_narrowband_removes_the_upper_band():
    ds = NoisySpeech(split="train", epoch_size=4, narrowband=1.0)
    first = ds[0]["mixture"].numpy()
    ds.set_epoch(1)
    assert not np.array_equal(first, ds[0]["mixture"].numpy())
    for i in range(4):
        speech = ds[i]["sources"][0].numpy()
        assert hf_db(speech) < -40
    with pytest.raises(PressError, match="narrowband"):
        NoisySpeech(split="train", narrowband=1.5)
    with pytest.raises(PressError, match="press data noisy"):
        NoisySpeech(root="/nonexistent", split="train")
