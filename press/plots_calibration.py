"""Calibration figures (SPEC §8, figure 4 of the list): PIT calibration curves and reliability.

Thin matplotlib wrappers over press.calibration's data; they write PNG files with the Agg
backend, so they work on machines without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from press.calibration import ReliabilityDiagram, calibration_curve, ks_statistic  # noqa: E402


def plot_calibration_curves(pit: dict[str, Tensor], path: str | Path, levels: int = 101) -> Path:
    """One curve per label (e.g. "train, before FT") of empirical vs nominal PIT level.

    pit maps a label to its PIT values (any shape); the legend shows each curve's KS distance.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for label, u in pit.items():
        nominal, observed = calibration_curve(u, levels)
        ax.plot(
            nominal.numpy(), observed.numpy(), lw=1.5, label=f"{label} (KS {ks_statistic(u):.3f})"
        )
    ax.set(
        xlabel="nominal level", ylabel="fraction of PIT values ≤ level", xlim=(0, 1), ylim=(0, 1)
    )
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_reliability(diagrams: dict[str, ReliabilityDiagram], path: str | Path) -> Path:
    """Observed frequency against mean predicted P(exit-SNR ≥ t), per label, ECE in the legend.

    Empty bins (NaN) are left out of the lines.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for label, d in diagrams.items():
        keep = d.count > 0
        ax.plot(
            d.mean_predicted[keep].numpy(),
            d.observed[keep].numpy(),
            marker="o",
            ms=3,
            lw=1.5,
            label=f"{label} (ECE {d.ece:.3f})",
        )
    ax.set(
        xlabel="predicted P(exit-SNR ≥ t)", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1)
    )
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
