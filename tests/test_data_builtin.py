"""The built-in corpus: shipped files, splits, on-the-fly mixtures and their determinism."""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from press.data import get_dataset
from press.data.builtin import CORPUS_DIR, load_manifest
from press.data.manifest import pcm_sha256
from press.data.mixing import MIX_DBFS, PEAK, place_sources
from press.data.views import RandomCrop, collate_padded
from press.errors import PressError

ROWS = load_manifest()


def test_shipped_files_match_manifest_and_budget():
    size = sum(f.stat().st_size for f in CORPUS_DIR.rglob("*.flac"))  # with the noisy slice beside it
    assert size < 60e6  # the corpus ships inside the package: the wheel's corpus stays <= 60 MB
    utterances = [f for f in CORPUS_DIR.rglob("*.flac") if f.relative_to(CORPUS_DIR).parts[0] == "audio"]
    assert len(utterances) == len(ROWS)
    for row in ROWS:
        pcm, sr = sf.read(CORPUS_DIR / row["path"], dtype="int16")
        assert sr == 8000 and pcm.ndim == 1
        assert pcm_sha256(pcm) == row["sha256"], row["id"]
        assert abs(len(pcm) / 8000 - row["seconds"]) < 1e-3


def test_splits_are_speaker_and_talent_disjoint_with_real_test_speech():
    splits_of = defaultdict(set)
    for row in ROWS:
        splits_of[row["talent"]].add(row["split"])
        splits_of["speaker:" + row["speaker"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    kinds = {(r["split"], r["kind"]) for r in ROWS}
    assert {
        ("train", "real"),
        ("val", "real"),
        ("test", "real"),
        ("train", "tts"),
        ("test", "tts"),
        ("babble", "tts"),
    } <= kinds
    assert all(r["licence"] for r in ROWS)
    # held-out splits that can rank models: >= 10 minutes of recorded speech from >= 8 speakers
    # each, >= 6 of them with a minute or more, so that no one talker decides the score
    for split in ("val", "test"):
        real = [r for r in ROWS if r["split"] == split and r["kind"] == "real"]
        seconds = defaultdict(float)
        for r in real:
            seconds[r["speaker"]] += r["seconds"]
        assert len(seconds) >= 8 and sum(v >= 60 for v in seconds.values()) >= 6, split
        assert sum(seconds.values()) >= 600.0, split


def test_held_out_speakers_are_drawn_by_their_speech_up_to_a_cap():
    from press.data.builtin import HELD_OUT_CAP_SECONDS

    seconds = defaultdict(float)
    for r in ROWS:
        if r["split"] == "test" and r["kind"] == "real":
            seconds[r["speaker"]] += r["seconds"]
    ds = get_dataset("builtin", split="test", subset="real", num_examples=600)
    count = defaultdict(int)
    for i in range(len(ds)):
        for uid in ds[i]["id"].split(":")[1].split("+"):
            count[uid.rsplit("-", 1)[0]] += 1
    capped = {k: min(v, HELD_OUT_CAP_SECONDS) for k, v in seconds.items()}
    tiny, full = min(capped, key=capped.get), max(capped, key=capped.get)
    assert capped[tiny] < 10 and capped[full] == HELD_OUT_CAP_SECONDS
    # uniform draws would put every one of the 11 talkers in ~2/11 of the mixtures (109 of 600)
    assert count[tiny] < 30 < 80 < count[full]
    # at the cap, a talker with five minutes is drawn about as often as one with a minute and a half
    long = [k for k, v in seconds.items() if v > 200][0]
    short = [k for k, v in seconds.items() if 70 < v < 100][0]
    assert 0.6 < count[long] / count[short] < 1.6


@pytest.mark.parametrize("n_src", [2, 3])
def test_separation_items(n_src):
    ds = get_dataset("builtin", split="test", n_src=n_src)
    assert len(ds) == 1000 and ds.n_src == n_src and ds.sample_rate == 8000
    for i in range(20):
        item = ds[i]
        mix, src = item["mixture"], item["sources"]
        assert mix.dtype == torch.float32 and src.shape == (n_src, mix.shape[0])
        assert torch.allclose(src.sum(0), mix, atol=1e-6)
        assert float(mix.abs().max()) <= PEAK + 1e-6
        rms_db = 20 * np.log10(float(mix.pow(2).mean().sqrt()))
        assert MIX_DBFS[0] - 0.01 <= rms_db <= MIX_DBFS[1] + 0.01 or float(mix.abs().max()) > PEAK - 1e-3
        assert (src.abs().sum(1) > 0).all()  # every talker is audible
        assert len(item["id"].split(":")[1].split("+")) == n_src


def test_fixed_lists_and_seeded_training_epochs():
    a = get_dataset("builtin", split="val")
    b = get_dataset("builtin", split="val")
    assert torch.equal(a[7]["mixture"], b[7]["mixture"]) and a[7]["id"] == b[7]["id"]
    a.set_epoch(3)
    assert torch.equal(a[7]["mixture"], b[7]["mixture"])  # val is fixed whatever the epoch
    train = get_dataset("builtin", split="train", epoch_size=50)
    assert len(train) == 50
    first = train[4]["id"]
    train.set_epoch(1)
    assert train[4]["id"] != first
    other_seed = get_dataset("builtin", split="train", epoch_size=50, seed=1)
    assert other_seed[4]["id"] != first
    with pytest.raises(IndexError):
        train[50]
    assert train.lengths() == [train[i]["mixture"].shape[0] for i in range(50)]
    enh = get_dataset("builtin", split="val", task="enhance", num_examples=10)
    assert enh.lengths() == [enh[i]["mixture"].shape[0] for i in range(10)]


def test_overlap_modes():
    def overlaps(ds):
        return {re.search(r"-sep2-(\w+):", ds[i]["id"]).group(1) for i in range(60)}

    ds = get_dataset("builtin", split="val", mode="min")
    assert overlaps(get_dataset("builtin", split="val", mode="max")) == {"full", "partial", "sequential"}
    assert overlaps(ds) == {"full", "partial"}


@pytest.mark.parametrize("mode", ["min", "max"])
def test_placement_levels_and_extent(mode):
    utts = [np.ones(800, np.float32), np.ones(1200, np.float32), np.ones(1000, np.float32)]
    for k in range(30):
        src, overlap = place_sources(utts, np.random.default_rng(k), 8000, mode)
        peaks = src.max(axis=1)
        assert np.all(np.abs(20 * np.log10(peaks[1:] / peaks[0])) <= 5.0 + 1e-6)  # relative levels -5...5 dB
        if mode == "min":  # ends where the first talker ends, so every talker is still active at the end
            assert np.all(src[:, -1] > 0)
        else:  # every talker is there in full
            assert np.allclose((src > 0).sum(axis=1), [800, 1200, 1000])


def test_enhancement_items_and_noise_kinds():
    ds = get_dataset("builtin", split="test", task="enhance")
    assert ds.n_src == 2
    seen = set()
    for i in range(40):
        item = ds[i]
        speech, noise = item["sources"]
        assert torch.allclose(speech + noise, item["mixture"], atol=1e-6)
        kinds, snr = re.search(r"enh-(.+)-snr(-?[\d.]+):", item["id"]).groups()
        seen.update(kinds.split("+"))
        assert -5.0 <= float(snr) <= 20.0
        active = speech != 0
        measured = 10 * np.log10(float(speech[active].pow(2).mean()) / float(noise.pow(2).mean()))
        assert abs(measured - float(snr)) < 0.5
    assert seen == {"coloured", "babble", "hum", "clicks", "tones"}


def one_speaker_corpus(root) -> Path:
    from press.data.manifest import write_manifest

    rows = [r for r in ROWS if r["speaker"] == "real-sphinx-cards"][:2]
    assert len({r["speaker"] for r in rows}) == 1
    for r in rows:
        (root / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS_DIR / r["path"], root / r["path"])
    write_manifest(root / "manifest.csv", [{**r, "seconds": f"{r['seconds']:.3f}"} for r in rows])
    return root


def test_real_subset_and_other_rates(tmp_path):
    real_speakers = {r["speaker"] for r in ROWS if r["kind"] == "real" and r["split"] == "test"}
    ds = get_dataset("builtin", split="test", subset="real", num_examples=30)
    for i in range(30):
        assert set(s.rsplit("-", 1)[0] for s in ds[i]["id"].split(":")[1].split("+")) <= real_speakers
    wide = get_dataset("builtin", split="val", sample_rate=16000, num_examples=3)
    narrow = get_dataset("builtin", split="val", num_examples=3)
    assert wide.sample_rate == 16000
    assert abs(wide[0]["mixture"].shape[0] - 2 * narrow[0]["mixture"].shape[0]) <= 4
    with pytest.raises(PressError, match="speaker"):   # a corpus whose val split holds one recorded speaker
        get_dataset("builtin", str(one_speaker_corpus(tmp_path)), split="val", subset="real")
    with pytest.raises(PressError, match="unknown task"):
        get_dataset("builtin", task="dereverb")


def test_crop_loader_with_workers_is_deterministic():
    ds = RandomCrop(get_dataset("builtin", split="train", epoch_size=8), seconds=2.0, seed=0)

    def batches(workers):
        loader = DataLoader(ds, batch_size=4, collate_fn=collate_padded, num_workers=workers)
        return [b["mixture"] for b in loader]

    for x, y in zip(batches(0), batches(2)):
        assert x.shape == (4, 16000) and torch.equal(x, y)


def test_training_augmentations_change_train_items_only():
    plain = get_dataset("builtin", split="train", epoch_size=300)
    aug = get_dataset("builtin", split="train", epoch_size=300, speed=(0.9, 1.1), real_weight=3.0)
    # speed perturbation stretches utterances, so item lengths move, and lengths() still predicts them
    assert aug.lengths()[:20] == [aug[i]["mixture"].shape[-1] for i in range(20)]
    assert aug.lengths() != plain.lengths()
    # recorded speakers drawn 3x as often: far more mixtures hold recorded speech
    share = lambda ds: np.mean(["real-" in ds[i]["id"] for i in range(300)])  # noqa: E731
    assert share(aug) > 1.5 * share(plain)
    # val and test lists are fixed evaluation sets: the options must not touch them
    for split in ("val", "test"):
        a = get_dataset("builtin", split=split, speed=(0.9, 1.1), real_weight=3.0)
        b = get_dataset("builtin", split=split)
        for i in (0, 7, 99):
            assert a[i]["id"] == b[i]["id"] and torch.equal(a[i]["mixture"], b[i]["mixture"])
    for bad in ({"speed": (1.2, 0.9)}, {"speed": (0.1, 1.0)}, {"real_weight": 0.0}, {"real_cap_seconds": 0.0}):
        with pytest.raises(PressError):
            get_dataset("builtin", split="train", **bad)


def test_recorded_speakers_drawn_by_their_capped_seconds():
    """real_cap_seconds shares the recorded speakers' draws by their speech up to the cap: the four
    codec2 talkers (one 2-5 s clip each) are drawn far less than the Asterisk voices (5-10 minutes
    each), while recorded speech keeps its share of all draws."""
    def counts(**options) -> Counter:
        ds = get_dataset("builtin", split="train", epoch_size=1000, real_weight=3.0, **options)
        return Counter(uid.rsplit("-", 1)[0] for i in range(1000) for uid in ds._layout(i)[3])

    uniform, capped = counts(), counts(real_cap_seconds=60.0)
    recorded = lambda c: sum(v for k, v in c.items() if k.startswith("real-"))  # noqa: E731
    assert abs(recorded(capped) - recorded(uniform)) < 0.15 * recorded(uniform)
    tiny = lambda c: sum(v for k, v in c.items() if k.startswith("real-codec2"))  # noqa: E731
    assert tiny(capped) < tiny(uniform) / 4
    assert capped["real-allison"] > 1.4 * uniform["real-allison"]
    # a cap longer than every speaker's speech draws in proportion to the seconds themselves
    by_seconds = counts(real_cap_seconds=1e6)
    assert by_seconds["real-allison"] > 1.4 * by_seconds["real-june-fr"]
