"""Each real-corpus loader reads a tiny fake tree built in exactly the layout its scripts write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from press.data import NAMES, get_dataset
from press.errors import PressError

RNG = np.random.default_rng(0)


def wav(path: Path, n: int, sr: int, x: np.ndarray | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (0.1 * RNG.standard_normal(n)).astype(np.float32) if x is None else x
    sf.write(path, x, sr, subtype="FLOAT")
    return x


def check_items(ds, n_src: int, sr: int, n_items: int) -> None:
    assert len(ds) == n_items and ds.n_src == n_src and ds.sample_rate == sr
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"mixture", "sources", "id"}
        assert item["mixture"].dtype == torch.float32 and item["sources"].dtype == torch.float32
        assert item["sources"].shape == (n_src, item["mixture"].shape[0])
    assert ds.lengths() == [ds[i]["mixture"].shape[0] for i in range(len(ds))]


def make_wsj(root: Path, n_src: int, rate: str = "wav8k", sr: int = 8000) -> None:
    for split in ("tr", "cv", "tt"):
        for k, name in enumerate(["011a0101_0.1_401c020r_-0.1.wav", "40na010x_1.2_027o030a_-1.2.wav"]):
            for folder in ["mix"] + [f"s{i}" for i in range(1, n_src + 1)]:
                wav(root / f"{n_src}speakers" / rate / "min" / split / folder / name, 800 + 80 * k, sr)


@pytest.mark.parametrize("n_src", [2, 3])
def test_wsj0mix(tmp_path, n_src):
    make_wsj(tmp_path, n_src)
    make_wsj(tmp_path, n_src, "wav16k", 16000)
    ds = get_dataset(f"wsj0-{n_src}mix", tmp_path, split="val")
    check_items(ds, n_src, 8000, 2)
    assert ds[0]["id"] == "011a0101_0.1_401c020r_-0.1"
    check_items(get_dataset(f"wsj0-{n_src}mix", tmp_path, split="test", sample_rate=16000), n_src, 16000, 2)
    with pytest.raises(PressError, match=r"speakers/wav\{8k,16k\}"):
        get_dataset(f"wsj0-{n_src}mix", tmp_path, mode="max")
    (tmp_path / f"{n_src}speakers/wav8k/min/tr/s2/40na010x_1.2_027o030a_-1.2.wav").unlink()
    with pytest.raises(PressError, match="40na010x.*is missing"):
        get_dataset(f"wsj0-{n_src}mix", tmp_path, split="train")


def make_librimix(root: Path, n_src: int, absolute: bool) -> None:
    base = root / f"Libri{n_src}Mix" / "wav8k" / "min"
    for task in ("mix_clean", "mix_both", "mix_single"):
        rows = []
        for k, mid in enumerate(["1272-128104-0000_2035-147961-0014", "1988-24833-0018_6295-64301-0002"]):
            n = 700 + 100 * k
            s = [wav(base / "dev" / f"s{i}" / f"{mid}.wav", n, 8000) for i in range(1, n_src + 1)]
            noise = wav(base / "dev" / "noise" / f"{mid}.wav", n, 8000)
            mix = {"mix_clean": sum(s), "mix_both": sum(s) + noise, "mix_single": s[0] + noise}[task]
            wav(base / "dev" / task / f"{mid}.wav", n, 8000, mix)
            # The generation scripts write absolute paths; a moved corpus keeps its old prefix.
            prefix = "/old/place/" if absolute else ""
            row = {"mixture_ID": mid, "mixture_path": f"{prefix}Libri{n_src}Mix/wav8k/min/dev/{task}/{mid}.wav"}
            for i in range(1, n_src + 1):
                row[f"source_{i}_path"] = f"{prefix}Libri{n_src}Mix/wav8k/min/dev/s{i}/{mid}.wav"
            if task != "mix_clean":
                row["noise_path"] = f"{prefix}Libri{n_src}Mix/wav8k/min/dev/noise/{mid}.wav"
            row["length"] = n
            rows.append(row)
        meta = base / "metadata" / f"mixture_dev_{task}.csv"
        meta.parent.mkdir(parents=True, exist_ok=True)
        with open(meta, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


@pytest.mark.parametrize("n_src,absolute", [(2, True), (3, False)])
def test_librimix(tmp_path, n_src, absolute):
    make_librimix(tmp_path, n_src, absolute)
    name = f"libri{n_src}mix"
    for task in ("mix_clean", "mix_both"):
        check_items(get_dataset(name, tmp_path, split="val", task=task), n_src, 8000, 2)
    enh = get_dataset(name, tmp_path, split="dev", task="mix_single")
    check_items(enh, 2, 8000, 2)
    item = enh[1]
    noise, _ = sf.read(tmp_path / f"Libri{n_src}Mix/wav8k/min/dev/noise/{item['id']}.wav", dtype="float32")
    assert torch.allclose(item["sources"][1], torch.from_numpy(noise), atol=1e-6)
    assert torch.allclose(item["sources"].sum(0), item["mixture"])
    with pytest.raises(PressError, match="metadata/mixture_"):
        get_dataset(name, tmp_path, split="test")
    with pytest.raises(PressError, match="unknown task"):
        get_dataset(name, tmp_path, split="val", task="mix_noisy")


def make_wham(root: Path, folders: list[str]) -> None:
    for split in ("tr", "cv", "tt"):
        for name in ("01aa010b_0.97_209a010p_-0.97.wav", "01zo030l_1.1_20ac010s_-1.1.wav"):
            for f in folders:
                wav(root / "wav8k" / "max" / split / f / name, 640, 8000)


def test_wham_tasks(tmp_path):
    make_wham(tmp_path, ["mix_clean", "mix_both", "mix_single", "s1", "s2", "noise"])
    for task, n_src in (("sep_clean", 2), ("sep_noisy", 2), ("enh_single", 2), ("enh_both", 2)):
        ds = get_dataset("wham", tmp_path, split="test", mode="max", task=task)
        check_items(ds, n_src, 8000, 2)
    item = get_dataset("wham", tmp_path, split="train", mode="max", task="enh_single")[0]
    s1, _ = sf.read(tmp_path / "wav8k/max/tr/s1" / f"{item['id']}.wav", dtype="float32")
    assert torch.allclose(item["sources"][0], torch.from_numpy(s1))
    assert torch.allclose(item["sources"].sum(0), item["mixture"])
    with pytest.raises(PressError, match="wav8k/min/cv/mix_both not found"):
        get_dataset("wham", tmp_path, split="val")


def test_whamr_variants(tmp_path):
    folders = [f"mix_{m}_{r}" for m in ("clean", "both", "single") for r in ("anechoic", "reverb")]
    folders += [f"s{i}_{r}" for i in (1, 2) for r in ("anechoic", "reverb")] + ["noise"]
    make_wham(tmp_path, folders)
    ds = get_dataset("whamr", tmp_path, split="val", mode="max")
    assert ds.examples[0].mixture.parent.name == "mix_both_reverb"
    assert [p.parent.name for p in ds.examples[0].sources] == ["s1_anechoic", "s2_anechoic"]
    check_items(ds, 2, 8000, 2)
    dry = get_dataset("whamr", tmp_path, split="val", mode="max", task="sep_clean", reverb=False, target="reverb")
    assert dry.examples[0].mixture.parent.name == "mix_clean_anechoic"
    assert dry.examples[0].sources[1].parent.name == "s2_reverb"
    check_items(get_dataset("whamr", tmp_path, split="test", mode="max", task="enh_single"), 2, 8000, 2)
    with pytest.raises(PressError, match="load it as 'whamr'"):
        get_dataset("wham", tmp_path, split="test", mode="max", task="sep_clean")


def test_dns2020(tmp_path):
    train = tmp_path / "training"
    for n in (0, 1, 2, 20, 21):
        wav(train / "noisy" / f"book_00{n}_chp_0009_reader_06709_8_door_Freesound_snr13_fileid_{n}.wav", 1600, 16000)
        wav(train / "clean" / f"clean_fileid_{n}.wav", 1600, 16000)
        wav(train / "noise" / f"noise_fileid_{n}.wav", 1600, 16000)
    test = tmp_path / "datasets/test_set/synthetic/no_reverb"
    for n in (5, 158):
        wav(test / "noisy" / f"clnsp1_train_69005_1_snr15_tl-21_fileid_{n}.wav", 1600, 16000)
        wav(test / "clean" / f"clean_fileid_{n}.wav", 1600, 16000)
    tr = get_dataset("dns2020", tmp_path, split="train", sample_rate=16000)
    va = get_dataset("dns2020", tmp_path, split="val", sample_rate=16000)
    assert [e.id for e in tr.examples] == ["fileid_1", "fileid_2", "fileid_21"]
    assert [e.id for e in va.examples] == ["fileid_0", "fileid_20"]
    check_items(tr, 2, 16000, 3)
    te = get_dataset("dns2020", tmp_path, split="test")  # resampled to 8 kHz
    check_items(te, 2, 8000, 2)
    assert te[0]["mixture"].shape[0] == 800
    (test / "clean" / "clean_fileid_158.wav").unlink()
    with pytest.raises(PressError, match="clean_fileid_158.wav is missing"):
        get_dataset("dns2020", tmp_path, split="test")
    with pytest.raises(PressError, match="no_reverb"):
        get_dataset("dns2020", tmp_path / "training" / "noise", split="test")


def test_voicebank_demand(tmp_path):
    for part, names in (
        ("trainset_28spk", ["p226_001", "p230_002", "p287_010"]),
        ("testset", ["p232_001", "p257_003"]),
    ):
        for name in names:
            clean = wav(tmp_path / f"clean_{part}_wav" / f"{name}.wav", 4800, 48000)
            wav(tmp_path / f"noisy_{part}_wav" / f"{name}.wav", 4800, 48000, clean + 0.01)
    tr = get_dataset("voicebank-demand", tmp_path, split="train", sample_rate=16000)
    va = get_dataset("voicebank-demand", tmp_path, split="val", sample_rate=16000)
    assert [e.id for e in tr.examples] == ["p230_002"] and [e.id for e in va.examples] == ["p226_001", "p287_010"]
    check_items(va, 2, 16000, 2)
    te = get_dataset("voicebank-demand", tmp_path, split="test", sample_rate=16000)
    check_items(te, 2, 16000, 2)
    assert te[0]["mixture"].shape[0] == 1600
    assert torch.allclose(te[0]["sources"][1][200:-200], torch.full((1200,), 0.01), atol=2e-3)
    with pytest.raises(PressError, match="clean_trainset_"):
        get_dataset("voicebank-demand", tmp_path, speakers=56)


def test_entry_point_errors(tmp_path):
    assert "builtin" in NAMES and "noisy" in NAMES and len(NAMES) == 10
    with pytest.raises(PressError, match="unknown dataset"):
        get_dataset("timit", tmp_path)
    with pytest.raises(PressError, match="root= is required"):
        get_dataset("wham")
    with pytest.raises(PressError, match="does not exist"):
        get_dataset("wsj0-2mix", tmp_path / "nowhere")
    with pytest.raises(PressError, match="unknown option"):
        get_dataset("dns2020", tmp_path, task="x")
    with pytest.raises(PressError, match="unknown split"):
        get_dataset("wsj0-2mix", tmp_path, split="dev")
