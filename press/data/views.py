"""Training views over any PRESS dataset: random crops, padded batches, length buckets.

All randomness comes from NumPy generators keyed by (seed, epoch, index), never from global or
per-worker state, so an item is the same whichever DataLoader worker (or rank) produces it. Call
`set_epoch(e)` on the view and the sampler at the start of every epoch for fresh crops and order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from press.errors import PressError


def _set_epoch(obj: object, epoch: int) -> None:
    if hasattr(obj, "set_epoch"):
        obj.set_epoch(epoch)


class RandomCrop(Dataset):
    """Fixed-length random crops (default 4 s), the same span cut from the mixture and every source.

    Items shorter than the crop are returned whole, not padded: `collate_padded` pads the batch and
    reports each item's true length, so a loss can mask the padding instead of learning from it.
    """

    def __init__(self, dataset: Dataset, seconds: float = 4.0, seed: int = 0):
        if seconds <= 0:
            raise PressError(f"crop length must be positive, got {seconds} s")
        self.dataset = dataset
        self.sample_rate = dataset.sample_rate
        self.n_src = dataset.n_src
        self.crop = int(round(seconds * dataset.sample_rate))
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        _set_epoch(self.dataset, epoch)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        length = item["mixture"].shape[-1]
        if length <= self.crop:
            return item
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(0, length - self.crop + 1))
        stop = start + self.crop
        return {
            "mixture": item["mixture"][start:stop],
            "sources": item["sources"][:, start:stop],
            "id": f"{item['id']}@{start}",
        }


def collate_padded(items: Sequence[dict]) -> dict:
    """Stack items of different lengths, zero-padded at the end; `lengths` holds the true lengths."""
    if not items:
        raise PressError("cannot collate an empty batch")
    n_src = {it["sources"].shape[0] for it in items}
    if len(n_src) != 1:
        raise PressError(f"items in one batch have different numbers of sources: {sorted(n_src)}")
    lengths = torch.tensor([it["mixture"].shape[-1] for it in items], dtype=torch.long)
    lmax = int(lengths.max())
    mixture = torch.zeros(len(items), lmax, dtype=torch.float32)
    sources = torch.zeros(len(items), n_src.pop(), lmax, dtype=torch.float32)
    for b, it in enumerate(items):
        n = it["mixture"].shape[-1]
        mixture[b, :n] = it["mixture"]
        sources[b, :, :n] = it["sources"]
    return {"mixture": mixture, "sources": sources, "lengths": lengths, "ids": [it["id"] for it in items]}


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length items for full-length training, sharded over distributed ranks.

    Items are sorted by length (ties in a seeded random order), cut into batches of at most
    `batch_size` items and at most `max_samples` padded samples (batch size x longest item), and
    the batches are shuffled. Rank r takes batches r, r + W, r + 2W, ...; when the batch count does
    not divide by W the largest batches are split until it does, so every rank runs the same number
    of steps and every item is used exactly once per epoch: nothing duplicated, nothing dropped.
    Only when every batch already holds a single item (batch_size=1) and the item count does not
    divide by W do the first (count mod W) ranks run one extra step (use DDP's join() there).
    `lengths=None` treats all items as equally long (plain shuffled batches, e.g. for crops).
    """

    def __init__(
        self,
        lengths: Sequence[int] | int,
        batch_size: int | None = None,
        max_samples: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ):
        if batch_size is None and max_samples is None:
            raise PressError("LengthBucketSampler needs batch_size and/or max_samples")
        if not 0 <= rank < num_replicas:
            raise PressError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.lengths = (
            np.ones(lengths, dtype=np.int64) if isinstance(lengths, int) else np.asarray(lengths, dtype=np.int64)
        )
        if len(self.lengths) < num_replicas:
            raise PressError(f"{len(self.lengths)} items cannot be shared by {num_replicas} ranks without duplicates")
        self.batch_size, self.max_samples = batch_size, max_samples
        self.num_replicas, self.rank, self.shuffle, self.seed = num_replicas, rank, shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _fits(self, count: int, longest: int) -> bool:
        return (self.batch_size is None or count <= self.batch_size) and (
            self.max_samples is None or count * longest <= self.max_samples or count == 1
        )

    def all_batches(self) -> list[list[int]]:
        """Every rank's batches for this epoch, in order (rank r gets entries r::num_replicas)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order.tolist():
            if current and not self._fits(len(current) + 1, int(self.lengths[i])):
                batches.append(current)
                current = []
            current.append(i)
        batches.append(current)
        while len(batches) % self.num_replicas and max(map(len, batches)) > 1:
            k = max(range(len(batches)), key=lambda j: len(batches[j]))
            big = batches.pop(k)
            batches[k:k] = [big[: len(big) // 2], big[len(big) // 2 :]]
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.all_batches()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return len(self.all_batches()[self.rank :: self.num_replicas])
