"""Does training-time augmentation keep up with the model? Examples/s of the augmented training loader
against the time of one training step of the `default` config, in the same run.

Loader: builtin train (the `default` config's options) -> Acoustics (the default Recipe) ->
RandomCrop(2 s) -> collate_padded, batch 4, one DataLoader worker with one thread, the examples a
`press train default` run with `data.augment.enabled=true` would load. The room bank is built in the
main process before the worker forks, so the loader rate is the steady state; the one-off cost of
simulating a room is printed apart (a run pays it once per room and process). Step: forward through
every exit, loss, backward, clipping and AdamW on batch 4 x 2 s (train_throughput.measure).

Run: python benchmarks/augment_throughput.py [--examples 200] [--rooms 16] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from press.data import get_dataset
from press.data.augment import Acoustics, Recipe, augment, bank_room
from press.data.views import RandomCrop, collate_padded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import measure  # a sibling script, not a package


def loader_rate(recipe: Recipe | None, examples: int, batch: int) -> float:
    """Examples per second through one worker (recipe None: the plain loader, for reference)."""
    ds = get_dataset("builtin", split="train", epoch_size=examples, speed=(0.9, 1.1), real_weight=3.0)
    view = RandomCrop(Acoustics(ds, recipe) if recipe else ds, seconds=2.0)
    loader = DataLoader(view, batch_size=batch, collate_fn=collate_padded, num_workers=1)
    start = time.perf_counter()
    n = sum(b["mixture"].shape[0] for b in loader)
    return n / (time.perf_counter() - start)


def effect_costs(rooms: int, sr: int = 8000, reps: int = 10) -> dict[str, float]:
    """Milliseconds per example of each effect alone (probability 1), and of the default recipe (over
    10x as many draws, its effects being random), on a 3 s two-talker item; rooms from the built bank."""
    src = get_dataset("builtin", split="train", epoch_size=1)[0]["sources"][:, : 3 * sr].numpy()
    off = {k: 0.0 for k in ("room", "bandlimit", "telephone", "eq", "noise_floor", "clip", "codec")}
    alone = {"nothing": {}, "room (bank)": {"room": 1.0}, "bandlimit": {"bandlimit": 1.0},
             "telephone": {"telephone": 1.0}, "eq": {"eq": 1.0}, "noise_floor": {"noise_floor": 1.0},
             "clip": {"clip": 1.0}, **{f"codec {c}": {"codec": 1.0, "codecs": [c]} for c in ("mulaw", "gsm", "opus")}}
    cases = [(name, Recipe(**{**off, **kw, "rooms": rooms}), reps) for name, kw in alone.items()]
    cases.append(("default recipe", Recipe(rooms=rooms), 10 * reps))
    out = {}
    for name, recipe, n in cases:
        start = time.perf_counter()
        for i in range(n):
            augment(src, sr, np.random.default_rng(i), recipe)
        out[name] = (time.perf_counter() - start) / n * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=16, help="room bank size (the default recipe has 128)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the training step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = Recipe(rooms=args.rooms)
    start = time.perf_counter()
    rooms = [bank_room(k, 8000, 2, tuple(recipe.rt60), recipe.early_ms) for k in range(args.rooms)]
    build = time.perf_counter() - start
    print(f"room bank: {args.rooms} rooms (2 talkers, RT60 {recipe.rt60[0]}-{recipe.rt60[1]} s) in {build:.1f} s, "
          f"{build / args.rooms:.2f} s per room (longest RIR {max(r.rirs.shape[1] for r in rooms) / 8000:.2f} s)")
    for name, ms in effect_costs(args.rooms).items():
        print(f"  {name:<14}{ms:7.1f} ms per 3 s example")
    plain = loader_rate(None, args.examples, 4)
    aug = loader_rate(recipe, args.examples, 4)
    torch.set_num_threads(args.threads)
    step = measure("default", "cpu", args.steps, 1, "off", False)["s_per_step"]
    load = os.getloadavg()[0]
    batch_load = 4 / aug
    print(f"loader, 1 worker: plain {plain:.0f} ex/s, augmented {aug:.0f} ex/s "
          f"({batch_load * 1000:.0f} ms per batch of 4)")
    print(f"training step, default, batch 4 x 2 s, {args.threads} threads: {step:.2f} s (load average {load:.1f})")
    print(f"augmented loading / step: {batch_load / step:.3f} (the worker needs {100 * batch_load / step:.1f} % "
          f"of a step's time per batch)")


if __name__ == "__main__":
    main()
