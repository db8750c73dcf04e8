"""The demo's figure: a mixture's spectrogram over the exit each block took, per target."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_exit_map(mixture: np.ndarray, sample_rate: int, blocks_by_target: dict[str, list[dict]],
                  n_exits: int, path: str | Path, title: str = "") -> Path:
    """Spectrogram on top; below it, one row per target with the exit taken by every block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(blocks_by_target)
    fig, axes = plt.subplots(1 + rows, 1, figsize=(10, 2.6 + 0.9 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [3] + [1] * rows})
    seconds = len(mixture) / sample_rate
    with np.errstate(divide="ignore"):  # digital silence: -inf dB bins are drawn as the floor
        axes[0].specgram(mixture, NFFT=256, Fs=sample_rate, noverlap=192, cmap="magma")
    axes[0].set_ylabel("Hz")
    axes[0].set_title(title)
    cmap = plt.get_cmap("viridis", n_exits)
    for ax, (label, blocks) in zip(axes[1:], blocks_by_target.items()):
        for b in blocks:
            ax.axvspan(b["start"], b["end"], color=cmap(b["exit"] - 1), lw=0)
            bright = sum(cmap(b["exit"] - 1)[:3]) > 1.5
            ax.text((b["start"] + b["end"]) / 2, 0.5, str(b["exit"]), ha="center", va="center",
                    fontsize=7, color="black" if bright else "white")
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[-1].set_xlim(0, seconds)
    axes[-1].set_xlabel("time (s); number = exit taken by the block")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
