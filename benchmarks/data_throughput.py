"""Crop-loader throughput on the built-in corpus: examples per second through a DataLoader.

Measures what a training loop sees: BuiltinMixtures (mixing on the fly) -> RandomCrop(4 s) ->
collate_padded, for a few worker counts. Run: python benchmarks/data_throughput.py [--examples N]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from press.data import get_dataset
from press.data.views import RandomCrop, collate_padded


def measure(task: str, n_src: int, workers: int, examples: int, batch_size: int) -> float:
    ds = RandomCrop(get_dataset("builtin", split="train", task=task, n_src=n_src, epoch_size=examples), seconds=4.0)
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=collate_padded, num_workers=workers)
    start = time.perf_counter()
    n = sum(batch["mixture"].shape[0] for batch in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'task':<12}{'workers':>8}{'examples/s':>12}")
    for task, n_src in (("separate", 2), ("separate", 3), ("enhance", 2)):
        for w in args.workers:
            rate = measure(task, n_src, w, args.examples, args.batch_size)
            print(f"{task + str(n_src) if task == 'separate' else task:<12}{w:>8}{rate:>12.0f}")


if __name__ == "__main__":
    main()
