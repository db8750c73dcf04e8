"""Training views: crops, padded collation, length buckets under distributed ranks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from press.data.views import LengthBucketSampler, RandomCrop, collate_padded
from press.errors import PressError


class Ramp(Dataset):
    """Items whose samples encode (item, source, position), so crops can be checked exactly."""

    sample_rate = 100
    n_src = 2

    def __init__(self, lengths):
        self._lengths = list(lengths)

    def __len__(self):
        return len(self._lengths)

    def lengths(self):
        return self._lengths

    def __getitem__(self, i):
        n = self._lengths[i]
        pos = torch.arange(n, dtype=torch.float32)
        sources = torch.stack([1000 * i + pos, -(1000 * i + pos)])
        return {"mixture": sources[0] * 2, "sources": sources, "id": f"r{i}"}


def test_random_crop_same_span_for_all_and_short_items_whole():
    ds = RandomCrop(Ramp([1000, 250, 400]), seconds=3.0, seed=1)
    item = ds[0]
    assert item["mixture"].shape == (300,) and item["sources"].shape == (2, 300)
    start = int(item["sources"][0, 0])
    assert item["id"] == f"r0@{start}"
    assert torch.equal(item["sources"][0], torch.arange(start, start + 300, dtype=torch.float32))
    assert torch.equal(item["sources"][1], -item["sources"][0]) and torch.equal(item["mixture"], 2 * item["sources"][0])
    assert ds[1]["mixture"].shape == (250,)  # shorter than the crop: whole, unpadded
    again = RandomCrop(Ramp([1000, 250, 400]), seconds=3.0, seed=1)
    assert torch.equal(again[0]["mixture"], item["mixture"])
    starts = set()
    for epoch in range(6):
        again.set_epoch(epoch)
        starts.add(int(again[0]["sources"][0, 0]))
    assert len(starts) > 1
    with pytest.raises(PressError):
        RandomCrop(Ramp([10]), seconds=0)


def test_collate_padded():
    items = [Ramp([5, 3])[0], Ramp([5, 3])[1]]
    batch = collate_padded(items)
    assert batch["mixture"].shape == (2, 5) and batch["sources"].shape == (2, 2, 5)
    assert batch["lengths"].tolist() == [5, 3] and batch["lengths"].dtype == torch.long
    assert batch["ids"] == ["r0", "r1"]
    assert (
        torch.equal(batch["sources"][1, 0, :3], items[1]["sources"][0]) and batch["sources"][1, :, 3:].abs().sum() == 0
    )
    bad = dict(items[1], sources=items[1]["sources"][:1])
    with pytest.raises(PressError, match="different numbers of sources"):
        collate_padded([items[0], bad])


@pytest.mark.parametrize(
    "n,world,bs,max_samples", [(103, 4, 8, None), (50, 3, None, 4000), (7, 2, 1, None), (64, 8, 4, 900)]
)
def test_bucket_sampler_shards_without_duplicates_or_drops(n, world, bs, max_samples):
    g = torch.Generator().manual_seed(n)
    lengths = torch.randint(50, 400, (n,), generator=g).tolist()
    per_rank = [list(LengthBucketSampler(lengths, bs, max_samples, world, r, seed=3)) for r in range(world)]
    flat = [i for batches in per_rank for b in batches for i in b]
    assert sorted(flat) == list(range(n))  # every item exactly once over all ranks
    steps = [len(b) for b in per_rank]
    assert max(steps) - min(steps) <= (1 if bs == 1 else 0)
    assert steps == [len(LengthBucketSampler(lengths, bs, max_samples, world, r, seed=3)) for r in range(world)]
    for batches in per_rank:
        for b in batches:
            assert b and (bs is None or len(b) <= bs)
            longest = max(lengths[i] for i in b)
            assert max_samples is None or len(b) == 1 or len(b) * longest <= max_samples
    # Bucketing: batches are far more uniform in length than random batches would be.
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for bs_ in per_rank for b in bs_]
    assert sum(spread) / len(spread) < 150


def test_bucket_sampler_deterministic_per_epoch_and_seed():
    lengths = list(range(100, 160))
    a = LengthBucketSampler(lengths, 4, seed=0)
    b = LengthBucketSampler(lengths, 4, seed=0)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # a new epoch, a new order
    assert list(LengthBucketSampler(lengths, 4, seed=1)) != first
    plain = list(LengthBucketSampler(60, 6))  # lengths=None-style: an item count
    assert sorted(i for b in plain for i in b) == list(range(60)) and all(len(b) == 6 for b in plain)
    with pytest.raises(PressError, match="without duplicates"):
        LengthBucketSampler([5, 6], 1, num_replicas=3, rank=0)


def test_dataloader_workers_are_deterministic():
    ds = RandomCrop(Ramp([300 + 37 * i for i in range(12)]), seconds=2.0, seed=5)
    sampler = LengthBucketSampler(len(ds), 4, seed=2)

    def run(workers):
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_padded, num_workers=workers)
        return [(b["ids"], b["mixture"].sum().item()) for b in loader]

    assert run(0) == run(2)
