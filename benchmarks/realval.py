"""The score every training comparison here is judged by: SI-SNRi on the validation split's recorded speech.

The mixtures are those of `press evaluate --split val --subset real` (speakers no training corpus
holds), each separated whole in one forward pass: the validation utterances last a few seconds, so
no segmenting is needed and PRESS and peer models are scored the same way. Imported by
data_ablation.py, recipe_comparison.py and peer_baseline.py (benchmarks/ is on sys.path there).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from press.data.augment import Acoustics, Recipe

# mixture (1, L) -> one (1, S, L) estimate per output (a PRESS exit, or the one output of a peer)
Separator = Callable[[torch.Tensor], list[torch.Tensor]]


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
