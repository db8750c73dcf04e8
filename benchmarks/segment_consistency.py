"""Segment-wise against whole-utterance separation on long inputs: is stitching free?

    python benchmarks/segment_consistency.py [MODEL] [--mixtures 24] [--per-input 8] [--exit 3]

MODEL: a shipped model's name (default: default) or a checkpoint. The first --mixtures built-in
test mixtures are concatenated, --per-input at a time, into long inputs (with their sources, so
every piece keeps its references). Each long input is separated at a fixed exit twice: segment by
segment with the Separator's defaults (2 s segments, 0.25 s context, stitched), and whole (one
segment, the network sees everything at once). SI-SNRi is scored per piece, each piece with its
own best speaker permutation (speakers change between pieces), and averaged over pieces; each
mixture separated on its own (as `press evaluate` does) is the third column. The script uses
only the public Separator, so running it on an older checkout compares implementations.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--mixtures", type=int, default=24)
    p.add_argument("--per-input", type=int, default=8)
    p.add_argument("--exit", type=int, default=None, help="fixed exit (default: the last)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from press.data import get_dataset
    from press.evaluation.metrics import aligned_si_snri
    from press.inference import Separator, Static
    from press.io.streaming import ArrayReader
    from press.model.pretrained import load

    model = load(args.model)[0]
    exit_ = args.exit or model.n_exits
    sep = Separator(model)
    ds = get_dataset("builtin", split="test", sample_rate=model.cfg.sample_rate)
    items = [ds[i] for i in range(min(args.mixtures, len(ds)))]

    def score(est: np.ndarray, item: dict) -> float:
        return aligned_si_snri(est, item["sources"].numpy(), item["mixture"].numpy())

    rows = {"segment-wise": [], "whole": [], "alone": []}
    seconds = 0.0
    for first in range(0, len(items), args.per_input):
        group = items[first:first + args.per_input]
        mixture = np.concatenate([g["mixture"].numpy() for g in group])
        seconds += len(mixture) / model.cfg.sample_rate
        for name, utterance in (("segment-wise", False), ("whole", True)):
            out = sep.run(ArrayReader(mixture), Static(exit_), utterance=utterance).sources
            start = 0
            for g in group:
                n = g["mixture"].shape[-1]
                rows[name].append(score(out[:, start:start + n], g))
                start += n
        for g in group:
            rows["alone"].append(score(sep.run(ArrayReader(g["mixture"].numpy()), Static(exit_)).sources, g))
    print(f"{args.model}, exit {exit_}: {len(items)} built-in test mixtures in "
          f"{-(-len(items) // args.per_input)} long inputs ({seconds:.0f} s); SI-SNRi dB per piece")
    print(f"{'mode':>13} {'mean':>6} {'median':>7}")
    for name, values in rows.items():
        v = np.array(values)
        print(f"{name:>13} {v.mean():>6.2f} {np.median(v):>7.2f}")
    diff = np.array(rows["segment-wise"]) - np.array(rows["whole"])
    print(f"segment-wise - whole: mean {diff.mean():+.2f} dB, worst piece {diff.min():+.2f} dB")


if __name__ == "__main__":
    main()
