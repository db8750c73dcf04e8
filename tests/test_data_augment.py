"""Training-time rooms and channels (press.data.augment): seeded, early-reflection targets that match
pyroomacoustics' own RIR cut at the boundary, filters and codecs that do what they say, and a
config switch that leaves validation and test alone."""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra
import pytest
import soxr
import torch
from scipy import signal
from torch.utils.data import DataLoader, Dataset

from press.data import get_dataset
from press.data.augment import (
    Acoustics,
    Recipe,
    augment,
    bank_room,
    clip_fraction,
    codec_round_trip,
    telephone_sos,
)
from press.errors import PressError
from press.model import load_config
from press.training.config import resolve_config
from press.training.data import build_dataset

SR = 8000
NOTHING = {"room": 0.0, "bandlimit": 0.0, "telephone": 0.0, "eq": 0.0, "noise_floor": 0.0, "clip": 0.0, "codec": 0.0}
SHORT_ROOMS = {"rt60": [0.2, 0.3], "rooms": 2}  # rooms of 0.2-0.3 s cost well under a second to simulate


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Three recorded/synthetic utterances of the built-in validation split, 1.5 s each: (3, 12000)."""
    ds = get_dataset("builtin", split="val", num_examples=3)
    return np.stack([ds[i]["sources"][0, :12000].numpy() for i in range(3)]).astype(np.float64)


def _si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    a = np.dot(est, ref) / np.dot(ref, ref)
    return float(10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2)))


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref ** 2) / np.sum((est - ref) ** 2)))


class Pairs(Dataset):
    """Two or three talkers from `speech`, summed: a corpus whose sources add up to the mixture."""

    sample_rate = SR

    def __init__(self, speech: np.ndarray, n_src: int, enhancement: bool = False):
        self.speech, self.n_src, self.enhancement = speech, n_src, enhancement

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        src = torch.from_numpy(np.roll(self.speech[: self.n_src], 1000 * i, axis=-1).astype(np.float32))
        if self.enhancement:   # speech + white noise, the second source being mixture - speech
            noise = torch.from_numpy(np.random.default_rng(i).standard_normal(src.shape[-1]).astype(np.float32)) * 0.01
            src = torch.stack([src[0], noise])
        return {"mixture": src.sum(0), "sources": src, "id": f"p{i}"}


def test_items_are_keyed_by_seed_epoch_and_index(speech, monkeypatch) -> None:
    monkeypatch.setenv("PRESS_CACHE_DIR", "")   # no disk cache: every process really builds its rooms
    recipe = Recipe(room=1.0, bandlimit=0.5, telephone=0.5, eq=0.5, noise_floor=1.0, clip=0.5, codec=1.0,
                    **SHORT_ROOMS)
    a, b = (Acoustics(Pairs(speech, 2), recipe, seed=7) for _ in range(2))
    bank_room.cache_clear()   # a fresh process builds the same rooms
    for i in (0, 3):
        assert torch.equal(a[i]["mixture"], b[i]["mixture"]) and torch.equal(a[i]["sources"], b[i]["sources"])
    first = a[1]["mixture"]
    a.set_epoch(1)
    assert not torch.allclose(a[1]["mixture"], first)
    a.set_epoch(0)
    assert torch.equal(a[1]["mixture"], first)
    assert not torch.allclose(Acoustics(Pairs(speech, 2), recipe, seed=8)[1]["mixture"], first)
    # a DataLoader worker (another process, building its own rooms) produces the same items
    bank_room.cache_clear()
    loaded = list(DataLoader(a, batch_size=None, num_workers=1))
    assert all(torch.equal(loaded[i]["mixture"], b[i]["mixture"]) for i in range(len(b)))
    # a new room per example (rooms=0) is drawn from the example's own generator
    fresh = Recipe(**{**NOTHING, "room": 1.0, "rt60": [0.2, 0.2], "rooms": 0})
    one, two = (augment(speech[:2], SR, np.random.default_rng(5), fresh) for _ in range(2))
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_targets_are_the_sources_through_the_rir_cut_at_direct_path_plus_50_ms(speech) -> None:
    recipe = Recipe(**{**NOTHING, "room": 1.0, "rt60": [0.6, 0.6], "rooms": 1})
    mixture, targets = augment(speech[:2], SR, np.random.default_rng(0), recipe)
    room = bank_room(0, SR, 2, (0.6, 0.6), 50.0)
    # the same shoebox simulated here by pyroomacoustics directly, and its RIRs cut by hand
    absorption, max_order = pra.inverse_sabine(room.rt60, room.dims.tolist(), c=343.0)
    ref = pra.ShoeBox(room.dims.tolist(), fs=SR, materials=pra.Material(absorption), max_order=max_order,
                      air_absorption=False)
    for t in room.talkers:
        ref.add_source(t.tolist())
    ref.add_microphone(room.mic.tolist())
    ref.compute_rir()
    half = pra.constants.get("frac_delay_length") // 2
    full_sum = np.zeros(speech.shape[1])
    for p in range(2):
        h = np.asarray(ref.rir[0][p])[: int(np.ceil(0.6 * SR))]
        arrival = np.linalg.norm(room.talkers[p] - room.mic) / 343.0 * SR + half
        cut = int(np.ceil(arrival)) + half + 400                        # 50 ms at 8 kHz
        early = np.convolve(speech[p], h[:cut])[: speech.shape[1]]
        full = np.convolve(speech[p], h)[: speech.shape[1]]
        assert _si_sdr(early, targets[p]) > 50                           # the same signal, up to a gain
        assert _si_sdr(full, targets[p]) < 15                            # and not the reverberant one
        assert 0.3 < np.sum(h[:cut] ** 2) / np.sum(h ** 2) < 0.99        # the tail holds real energy
        full_sum += full / np.sqrt(np.sum(h[:cut] ** 2))                  # each RIR at unit early energy
    assert _si_sdr(full_sum, mixture) > 50                               # mixture: all of every RIR
    # targets keep the talkers' own level ratio
    ratio = np.sum(targets[0].astype(np.float64) ** 2) / np.sum(targets[1].astype(np.float64) ** 2)
    assert abs(10 * np.log10(ratio / (np.sum(speech[0] ** 2) / np.sum(speech[1] ** 2)))) < 2.0


def test_telephone_band_stops_100_hz_and_passes_1_khz() -> None:
    t = np.arange(SR) / SR
    out = {f: signal.sosfilt(telephone_sos(SR), np.sin(2 * np.pi * f * t)) for f in (100, 1000)}
    level = {f: 20 * np.log10(np.sqrt(np.mean(y[SR // 2:] ** 2)) / np.sqrt(0.5)) for f, y in out.items()}
    assert level[100] < -20 and abs(level[1000]) < 1


def test_linear_channel_filters_reach_the_targets_so_they_still_sum_to_the_mixture(speech) -> None:
    recipe = Recipe(**{**NOTHING, "bandlimit": 1.0, "telephone": 1.0, "eq": 1.0})
    mixture, targets = augment(speech, SR, np.random.default_rng(1), recipe)
    assert np.allclose(targets.sum(0), mixture, atol=1e-6)
    assert _snr(speech.sum(0), mixture / np.sqrt(np.mean(mixture ** 2)) * np.sqrt(np.mean(speech.sum(0) ** 2))) < 10
    assert np.isclose(np.sqrt(np.mean(mixture.astype(np.float64) ** 2)), np.sqrt(np.mean(speech.sum(0) ** 2)),
                      rtol=1e-3)


@pytest.mark.parametrize("kind, lo, hi", [("mulaw", 30, 45), ("alaw", 30, 45), ("gsm", 5, 20), ("opus", 0, 30)])
def test_codec_round_trip_degrades_by_a_known_amount(speech, kind, lo, hi) -> None:
    x = speech[0] / np.max(np.abs(speech[0])) * 0.5
    y = codec_round_trip(x, SR, kind, np.random.default_rng(0))
    assert y.shape == x.shape and not np.allclose(x, y)
    assert lo < _snr(x, y) < hi
    x16 = soxr.resample(x, SR, 16000)
    y16 = codec_round_trip(x16, 16000, kind, np.random.default_rng(0))   # resampled to 8 kHz and back
    assert y16.shape == x16.shape and _snr(x16, y16) > lo - 10


def test_clipping_limits_the_peak_to_the_chosen_share_of_samples(speech) -> None:
    x = speech[0]
    y = clip_fraction(x, 1.0)
    level = np.quantile(np.abs(x), 0.99)
    assert np.max(np.abs(y)) <= level + 1e-12 < np.max(np.abs(x))
    assert 0.005 < np.mean(np.abs(x) > level) <= 0.011
    assert np.array_equal(y[np.abs(x) <= level], x[np.abs(x) <= level])


def test_noise_floor_and_codec_touch_only_the_mixture(speech) -> None:
    recipe = Recipe(**{**NOTHING, "noise_floor": 1.0, "codec": 1.0, "codecs": ["gsm"]})
    mixture, targets = augment(speech[:2], SR, np.random.default_rng(2), recipe)
    gain = np.dot(targets[0], speech[0]) / np.dot(speech[0], speech[0])
    assert np.allclose(targets, gain * speech[:2], atol=1e-6)          # targets clean, only rescaled
    assert _snr(targets.sum(0), mixture) < 25
    assert np.max(np.abs(mixture)) <= 0.99


@pytest.mark.parametrize("n_src", [2, 3])
def test_separation_and_enhancement_items(speech, n_src) -> None:
    recipe = Recipe(room=1.0, noise_floor=1.0, **SHORT_ROOMS)
    item = Acoustics(Pairs(speech, n_src), recipe)[2]
    assert item["sources"].shape == (n_src, speech.shape[1]) and item["mixture"].shape == (speech.shape[1],)
    assert torch.isfinite(item["sources"]).all() and item["mixture"].abs().max() <= 0.99
    enh = Acoustics(Pairs(speech, 1, enhancement=True), recipe)
    assert enh.enhancement
    item, dry = enh[2], enh.dataset[2]
    assert torch.allclose(item["sources"].sum(0), item["mixture"], atol=1e-6)   # speech + (mixture - speech)
    assert _si_sdr(dry["sources"][0].double().numpy(), item["sources"][0].double().numpy()) < 20


def test_bad_inputs_raise_press_error(speech) -> None:
    bad = speech[:2].copy()
    bad[1, 100] = np.nan
    with pytest.raises(PressError, match="NaN"):
        augment(bad, SR, np.random.default_rng(0))
    with pytest.raises(PressError, match="shorter"):
        augment(speech[:2, :400], SR, np.random.default_rng(0))
    with pytest.raises(PressError, match=r"\(S, L\)"):
        augment(speech[0], SR, np.random.default_rng(0))
    with pytest.raises(PressError, match="probabilities"):
        Recipe(codec=1.5)
    with pytest.raises(PressError, match="codecs"):
        Recipe(codecs=["mp3"])


def test_config_switches_train_only_and_leaves_val_and_test_alone() -> None:
    on = resolve_config(load_config("default", ["data.augment.enabled=true", "data.augment.rooms=1",
                                                "data.augment.rt60=[0.2,0.2]", "data.options.epoch_size=4"]))
    off = resolve_config(load_config("default", ["data.options.epoch_size=4"]))
    assert not off.data.augment.enabled
    assert isinstance(build_dataset(on, "train"), Acoustics)
    assert not isinstance(build_dataset(off, "train"), Acoustics)
    for split in ("val", "test"):
        a, b = build_dataset(on, split), build_dataset(off, split)
        assert not isinstance(a, Acoustics)
        for i in (0, 5):
            assert torch.equal(a[i]["mixture"], b[i]["mixture"]) and torch.equal(a[i]["sources"], b[i]["sources"])


def test_built_rooms_are_kept_on_disk_and_a_damaged_file_is_rebuilt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRESS_CACHE_DIR", str(tmp_path))
    args = (3, SR, 2, (0.3, 0.3), 50.0)
    bank_room.cache_clear()
    built = bank_room(*args)
    files = list((tmp_path / "rooms").glob("room-*.npz"))
    assert len(files) == 1
    bank_room.cache_clear()
    read = bank_room(*args)
    assert np.array_equal(read.rirs, built.rirs) and np.array_equal(read.early_end, built.early_end)
    assert read.rt60 == built.rt60
    files[0].write_bytes(b"truncated")
    bank_room.cache_clear()
    rebuilt = bank_room(*args)
    assert np.array_equal(rebuilt.rirs, built.rirs)
    with np.load(files[0]) as f:                 # and the damaged file was replaced
        assert np.array_equal(f["rirs"], built.rirs)
    bank_room.cache_clear()
