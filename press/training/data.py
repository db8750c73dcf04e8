"""The data plan: which items make each global batch, as a pure function of (stage, epoch, batch).

Crops (stage `train`) and full-length utterances capped at `finetune.max_seconds` (stage
`finetune`) come from `press.data.views`, whose randomness is keyed by (seed, epoch, index). A
global batch is the same whatever the number of ranks; rank r takes items r, r + W, ... of it. So
a run's data depends on its config only, a resume needs only the epoch and the count of batches
already consumed, and a W-rank run sees the same batches as a single process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Subset

from press.data import get_dataset
from press.data.augment import Acoustics
from press.data.base import FileDataset
from press.data.views import LengthBucketSampler, RandomCrop, collate_padded
from press.errors import PressError


def build_dataset(cfg: DictConfig, split: str) -> Dataset:
    """The corpus named in `cfg.data` for `split`, at the model's sample rate, checked against the model;
    the training split through `data.augment`'s rooms and channels when it is enabled, the validation
    split with `data.val_options` over `data.options`."""
    data, model = cfg.data, cfg.model
    options = dict(OmegaConf.to_container(data.options, resolve=True)) if data.options else {}
    if split == "val" and data.val_options:
        options.update(OmegaConf.to_container(data.val_options, resolve=True))
    if data.name == "builtin":
        options.setdefault("n_src", int(model.n_src))
    if data.name in ("builtin", "noisy"):   # they read every file when built; file corpora read lazily
        options["skip_bad_files"] = bool(data.skip_bad_files)
    root = None if data.root is None else str(data.root)
    ds = get_dataset(str(data.name), root, split=split, sample_rate=int(model.sample_rate),
                     mode=str(data.mode), **options)
    if data.skip_bad_files and isinstance(ds, FileDataset):
        ds.drop_unreadable()
    if ds.n_src != int(model.n_src):
        raise PressError(f"dataset {data.name} ({split}) has {ds.n_src} sources but the model separates "
                         f"{model.n_src} (model.n_src)")
    if len(ds) == 0:
        raise PressError(f"dataset {data.name} ({split}) is empty")
    if split == "train" and data.augment.enabled:
        ds = Acoustics(ds, OmegaConf.to_object(data.augment), seed=int(cfg.train.seed))
    return ds


def skipped_files(dataset: Dataset) -> list[str]:
    """The unreadable files the corpus under `dataset`'s views left out (`data.skip_bad_files`), one
    problem per file, each naming it."""
    while not hasattr(dataset, "skipped") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return list(getattr(dataset, "skipped", []))


def item_lengths(dataset: Dataset) -> list[int]:
    """Samples per item: from the dataset's `lengths()` when it has one (file corpora read headers),
    otherwise by loading each item (the built-in corpus mixes in well under a millisecond)."""
    inner = dataset.dataset if isinstance(dataset, RandomCrop) else dataset
    base = inner.dataset if isinstance(inner, Subset) else inner
    if hasattr(base, "lengths"):
        lengths = list(base.lengths())
        if isinstance(inner, Subset):
            lengths = [lengths[i] for i in inner.indices]
    else:
        lengths = [int(inner[i]["mixture"].shape[-1]) for i in range(len(inner))]
    if isinstance(dataset, RandomCrop):
        lengths = [min(n, dataset.crop) for n in lengths]
    return lengths


class StagePlan:
    """Global batches of one training stage, epoch by epoch."""

    def __init__(self, cfg: DictConfig, stage: str, train_set: Dataset):
        seed = int(cfg.train.seed)
        if stage == "train":
            self.dataset = RandomCrop(train_set, float(cfg.train.crop_seconds), seed=seed)
            self.batch_size, self.max_samples, self.varlen = int(cfg.train.batch_size), None, False
        else:
            ft = cfg.finetune
            self.dataset = RandomCrop(train_set, float(ft.max_seconds), seed=seed + 1)
            self.batch_size = int(ft.batch_size)
            self.max_samples = int(float(ft.max_batch_seconds) * int(cfg.model.sample_rate))
            self.varlen = True
        self.seed = seed

    def batches(self, epoch: int) -> list[list[int]]:
        """Every global batch of `epoch`, in order."""
        self.dataset.set_epoch(epoch)
        lengths = item_lengths(self.dataset) if self.varlen else len(self.dataset)
        sampler = LengthBucketSampler(lengths, batch_size=self.batch_size, max_samples=self.max_samples,
                                      seed=self.seed)
        sampler.set_epoch(epoch)
        return sampler.all_batches()


def pad_batch(batch: dict, multiple: int) -> dict:
    """The batch zero-padded at the end to a whole number of `multiple` samples, true lengths kept.

    For `train.compile`: a compiled network specialises on input shapes, and every new length of a
    fine-tuning batch (or of a crop batch of items shorter than the crop) would compile it again.
    Padded to whole multiples, a run sees a bounded set of shapes; the model and the loss mask the
    padding by the true lengths, so the step computes the same loss and gradients.
    """
    extra = -batch["mixture"].shape[-1] % multiple
    if not extra:
        return batch
    return {**batch, "mixture": F.pad(batch["mixture"], (0, extra)), "sources": F.pad(batch["sources"], (0, extra))}


def shard(batch: list[int], rank: int, world: int) -> tuple[list[int], bool]:
    """This rank's items of a global batch, and whether they count. A rank left without items
    (a batch smaller than the world) recomputes the first item with zero weight, so that every rank
    still takes part in the gradient all-reduce."""
    mine = batch[rank::world]
    return (mine, True) if mine else (batch[:1], False)


def _own_generator() -> torch.Generator:
    """A DataLoader draws its workers' base seed from this instead of the global torch RNG, so
    opening a loader (which a resume does at a different moment than an uninterrupted run) leaves
    the global RNG, and with it any randomness in the model, untouched. Items need no worker seed:
    their randomness is keyed by index."""
    return torch.Generator().manual_seed(0)


class ErrorsAsItems(Dataset):
    """A dataset whose PressError (an unreadable file, named) becomes an item `{"error": message}`.

    A DataLoader worker's exception reaches the loop re-raised with the worker's traceback pasted
    into its message; passed as data, the message arrives as written and `BatchStream` raises it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            return self.dataset[index]
        except PressError as err:
            return {"error": str(err)}


def collate_or_error(items: list[dict]) -> dict:
    """`collate_padded`, or the first `{"error": message}` among the items."""
    errors = [it["error"] for it in items if "error" in it]
    return {"error": errors[0]} if errors else collate_padded(items)


@dataclass
class Position:
    epoch: int = 0
    batch: int = 0   # global batches of `epoch` already consumed


class BatchStream:
    """This rank's batches of one stage from a position on, across epochs; `position` is what a
    checkpoint stores (batches a DataLoader worker has prefetched but the loop has not taken do not
    count)."""

    def __init__(self, plan: StagePlan, position: Position, rank: int, world: int, num_workers: int,
                 pin_memory: bool = False):
        self.plan, self.rank, self.world, self.num_workers = plan, rank, world, num_workers
        self.pin_memory = pin_memory
        self.position = Position(position.epoch, position.batch)
        self._it: Iterator | None = None

    def _open(self) -> None:
        batches = self.plan.batches(self.position.epoch)[self.position.batch:]
        shards = [shard(b, self.rank, self.world) for b in batches]
        self._counts = iter([c for _, c in shards])
        # One loader per epoch (the epoch's plan is fixed when it opens), so its workers live for an
        # epoch, thousands of steps: `persistent_workers` would change nothing. Pinned host memory lets
        # the copy to a GPU run asynchronously (`.to(device, non_blocking=True)` in the loop).
        loader = DataLoader(ErrorsAsItems(self.plan.dataset), batch_sampler=[s for s, _ in shards],
                            collate_fn=collate_or_error, num_workers=self.num_workers, pin_memory=self.pin_memory,
                            generator=_own_generator())
        self._it = iter(loader)

    def __next__(self) -> tuple[dict, bool]:
        """(collated batch, counts) for the next global batch."""
        for _ in range(2):
            if self._it is None:
                self._open()
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                self.position = Position(self.position.epoch + 1, 0)
                continue
            if "error" in batch:
                raise PressError(batch["error"])
            self.position.batch += 1
            return batch, next(self._counts)
        raise PressError("the training set yields no batches (is it empty?)")


def val_loader(cfg: DictConfig, rank: int, world: int) -> DataLoader:
    """A fixed validation set (the first `data.val_examples` items, each cut to `data.val_max_seconds`),
    in length buckets, each rank a disjoint share. Its cost is bounded by their product: the same
    items, in the same batches, at every validation and after a resume (`press.training.config.DataConfig`)."""
    ds = build_dataset(cfg, "val")
    n = min(len(ds), int(cfg.data.val_examples))
    if n < world:
        raise PressError(f"{n} validation examples cannot be shared by {world} ranks (raise data.val_examples)")
    subset = Subset(ds, range(n))
    subset.sample_rate, subset.n_src = ds.sample_rate, ds.n_src
    view = RandomCrop(subset, float(cfg.data.val_max_seconds), seed=0)
    sr = int(cfg.model.sample_rate)
    sampler = LengthBucketSampler(item_lengths(view), batch_size=int(cfg.data.val_batch_size),
                                  max_samples=int(float(cfg.data.val_max_batch_seconds) * sr),
                                  num_replicas=world, rank=rank, shuffle=False)
    return DataLoader(view, batch_sampler=sampler, collate_fn=collate_padded, num_workers=0,
                      generator=_own_generator())
