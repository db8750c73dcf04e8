"""The score every training comparison here is judged by: SI-SNRi on the validation split's recorded speech.

    python benchmarks/realval.py [MODEL] [--split val|test] [--limit 200] [--rooms]

The mixtures are those of `press evaluate --split val --subset real` (speakers no training corpus
holds), each separated whole in one forward pass: the validation utterances last a few seconds, so
no segmenting is needed and PRESS and peer models are scored the same way. MODEL: a shipped model's
name or a .safetensors checkpoint (default: the shipped `default`); prints the mean SI-SNRi (dB) of
each exit. `--split test` only reports on a model already chosen on validation. `--rooms` sends the
same mixtures through the simulated rooms and channels the shipped `default` model was trained with
(ROOMS, seed 7) first. The experiments in experiments/ import `score` and `press_separator`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from press.data.augment import Acoustics, Recipe

# mixture (1, L) -> one (1, S, L) estimate per output (a PRESS exit, or the one output of a peer)
Separator = Callable[[torch.Tensor], list[torch.Tensor]]
# the rooms and channels of the shipped `default` model's training (its model card's data.augment)
ROOMS = Recipe(room=0.3, rt60=[0.1, 0.6], eq=0.4, noise_floor=0.3, clip=0.05, codec=0.15)


@torch.no_grad()
def score(separate: Separator, limit: int = 200, split: str = "val", recipe: Recipe | None = None,
          seed: int = 7) -> list[float]:
    """Mean SI-SNRi (dB, best source order) per output over the first `limit` mixtures of recorded
    speech of `split` (validation; "test" only to report a model already chosen).

    With `recipe` (a `press.data.augment.Recipe`), the same mixtures go through its simulated rooms
    and channels first (drawn from `seed`) and are scored against its targets: robustness to the
    recordings users make, which the clean held-out splits do not test.
    """
    from press.data import get_dataset
    from press.evaluation.metrics import aligned_si_snri

    data = get_dataset("builtin", split=split, subset="real", num_examples=limit)
    if recipe is not None:
        data = Acoustics(data, recipe, seed=seed)
    scores = []
    for i in range(len(data)):
        item = data[i]
        estimates = separate(item["mixture"][None])
        scores.append([aligned_si_snri(e[0].numpy(), item["sources"].numpy(), item["mixture"].numpy())
                       for e in estimates])
    return np.mean(scores, axis=0).tolist()


def press_separator(weights: str) -> Separator:
    """A PRESS model (shipped name or .safetensors path) as a Separator: every exit's estimate."""
    from press.model.pretrained import load

    model = load(weights)[0].eval()
    return lambda mixture: [o.estimate for o in model(mixture)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="default", help="shipped model name or .safetensors")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--limit", type=int, default=200, help="the first this many recorded-speech mixtures")
    parser.add_argument("--rooms", action="store_true", help="through ROOMS's simulated rooms and channels")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    values = score(press_separator(args.model), args.limit, split=args.split, recipe=ROOMS if args.rooms else None)
    print(f"{args.model}, {args.split} recorded speech, {args.limit} whole mixtures"
          f"{', through rooms and channels' if args.rooms else ''}: SI-SNRi (dB) per exit "
          + " / ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
