"""What the engine asks of a network: run a batch of windows to exit 1, then one exit further.

press.inference.runner.TorchBackend (a PressNet) and press.runtime.OnnxModel (the exported graphs)
are the two backends. The state between exits is theirs; the engine only carries it along and
keeps the rows of the windows that have not left yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np


class Exit(NamedTuple):
    """One exit's outputs for a batch of windows, in the input's units, as the network gives them."""

    estimate: np.ndarray   # (N, S, W) float32
    alpha: np.ndarray      # (N, S, W / block) inverse-gamma shape per likelihood block
    beta: np.ndarray       # (N, S, W / block) inverse-gamma scale, squared input units


class Backend(Protocol):
    sample_rate: int
    block: int                          # likelihood block, samples
    n_src: int
    n_exits: int
    gmacs: Sequence[float]              # GMAC per second of audio to reach each exit, earlier heads included
    sources: Sequence[str] | None       # fixed-order named outputs (speech, noise); None: speakers, any order

    def first(self, windows: np.ndarray, lengths: np.ndarray, levels: np.ndarray) -> tuple[Exit, Any]:
        """Exit 1 of windows (N, W) float32 with their valid samples (N,) int64 and levels (N,) float32."""
        ...

    def advance(self, state: Any) -> tuple[Exit, Any]:
        """The next exit from the state the previous one returned."""
        ...

    def select(self, state: Any, keep: np.ndarray) -> Any:
        """The state of the rows `keep` (int indices) only: the windows that go on."""
        ...


def exit_scales(recalibration: dict, n_exits: int) -> list[tuple[float, float]]:
    """(alpha, beta) scale per exit from a recalibration's stored form
    (press.prob.calibration.Recalibration.to_dict, also the export manifest's): numbers, or one per exit."""
    a, b = recalibration["alpha_scale"], recalibration["beta_scale"]
    if isinstance(a, (list, tuple)):
        return [(float(x), float(y)) for x, y in zip(a, b)]
    return [(float(a), float(b))] * n_exits
