"""The inverse-gamma shape α per likelihood block, by how loud the block's reference source is.

A collapsed shape (α near its 1e-3 floor) makes P(exit-SNR >= t) say nothing: the distribution of
the error variance is so heavy-tailed that every target is "maybe". Weights trained with a loss
without a floor on the error energy had α collapsing in blocks where a source is quiet
(docs/experiments.md, "A floor in the loss's error energy"); this prints, for each set of
weights side by side, the share of blocks with α < 0.02 and the median α per bin of the reference
block's energy relative to the mixture's power, at the chosen exit.

    python experiments/shape_by_level.py default OTHER.safetensors \
        --split test --limit 30 [--subset real] [--exit 3]

Each mixture is separated whole in one forward pass; estimates are matched to references by the
permutation of least error over the whole mixture.
"""

from __future__ import annotations

import argparse
from itertools import pairwise

import numpy as np
import torch

from press.data import get_dataset
from press.model.pretrained import load
from press.prob.energy import block_energy, mean_power
from press.prob.permutation import best_permutation

EDGES_DB = [-np.inf, -40.0, -20.0, -10.0, 0.0, np.inf]
COLLAPSED = 0.02


@torch.no_grad()
def shapes(weights: str, split: str, limit: int, subset: str, exit: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference block energy in dB re the mixture's power, α) for every source-block."""
    model = load(weights)[0].eval()
    block = model.cfg.block
    data = get_dataset("builtin", split=split, subset=subset, num_examples=limit)
    levels, alphas = [], []
    for i in range(len(data)):
        item = data[i]
        mixture, refs = item["mixture"][None], item["sources"][None]              # (1, L), (1, S, L)
        out = model(mixture, n_exits=exit)[-1]
        est = out.estimate[..., :refs.shape[-1]]
        cost = (est[:, :, None] - refs[:, None]).pow(2).sum(-1)                    # (1, S, S)
        perm = best_permutation(cost)[0]                                          # estimate j -> ref perm[j]
        energy, count = block_energy(refs[0, perm], block)                         # (S, nb)
        power = mean_power(mixture)[0].clamp_min(1e-12)
        level = 10 * torch.log10((energy / count.clamp_min(1)).clamp_min(1e-20) / power)
        valid = count > 0
        levels.append(level[valid].numpy())
        alphas.append(out.alpha[0][..., :valid.shape[-1]][valid].numpy())
    return np.concatenate(levels), np.concatenate(alphas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", nargs="+", help="shipped names or .safetensors files")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subset", default="all", choices=["all", "real", "tts"])
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--exit", type=int, default=None, help="1-based exit (default: the last)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    results = {}
    for w in args.weights:
        exit = args.exit or load(w)[0].n_exits
        results[w] = shapes(w, args.split, args.limit, args.subset, exit)
    print(f"α at exit {args.exit or 'last'}, first {args.limit} mixtures of {args.split}"
          f" ({args.subset}): share of blocks with α < {COLLAPSED}, median α")
    print(f"{'reference block energy':<24}{'blocks':>8}" + "".join(f"  {w[-40:]:>40}" for w in args.weights))
    for lo, hi in pairwise(EDGES_DB):
        name = (f"below {hi:g} dB" if lo == -np.inf else f"{lo:g} dB and above" if hi == np.inf
                else f"{lo:g} … {hi:g} dB")
        cells, n = [], 0
        for level, alpha in results.values():
            a = alpha[(level >= lo) & (level < hi)]
            n = len(a)
            cells.append(f"{np.mean(a < COLLAPSED):6.0%}  median {np.median(a):7.3f}" if n else "—")
        print(f"{name:<24}{n:>8}" + "".join(f"  {c:>40}" for c in cells))


if __name__ == "__main__":
    main()
