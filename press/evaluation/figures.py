"""The paper's figures from an evaluation, as PNG files (matplotlib's Agg backend).

1. `plot_exits_example`: one mixture, the reconstruction at every exit as spectrograms, the
   predicted per-block exit-SNR (median and 10–90 % band) against the truth, and the exit each
   block's segment takes at a target (paper Figure 1);
2. `plot_quality_vs_compute`: SI-SNRi against GMAC/s, static exits and the dynamic curve over t;
3. `plot_regret_vs_compute`: one-sided regret against GMAC/s at one target for dynamic (sweeping
   p), static, oracle, uniform and the output-change heuristic;
4. `plot_calibration_curves` and `plot_reliability`: PIT calibration curves and the reliability
   diagram of P(exit-SNR ≥ t) (the calibration curves of the paper's Figure 5);
5. `plot_exit_map`: the demo's figure, a mixture's spectrogram over the exit each block took.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from press.evaluation.analysis import UtteranceAnalysis, predicted_exit_snr  # noqa: E402
from press.evaluation.metrics import align_to_reference  # noqa: E402
from press.evaluation.strategies import dynamic_exits  # noqa: E402
from press.prob.calibration import (  # noqa: E402
    Recalibration,
    ReliabilityDiagram,
    calibration_curve,
    ks_statistic,
)


def _spectrogram(ax: plt.Axes, x: np.ndarray, sr: int, title: str) -> None:
    ax.specgram(x + 1e-9, NFFT=256, Fs=sr, noverlap=192, cmap="magma", vmin=-130, vmax=-20)
    ax.set_ylabel("Hz")
    ax.set_title(title, fontsize=9, loc="left")


def _blocks(a: UtteranceAnalysis, x: np.ndarray) -> np.ndarray:
    """(..., n_seg, n_core) -> (..., n_blocks) in time order, padding blocks dropped."""
    return x.reshape(*x.shape[:-2], -1)[..., a.valid.reshape(-1)]


def plot_exits_example(a: UtteranceAnalysis, target_db: float, confidence: float, path: str | Path,
                       recalibration: Recalibration = Recalibration()) -> Path:
    """Figure 1 for one analysed utterance (speaker 1's reconstruction shown)."""
    tr, sr = a.trace, a.trace.sample_rate
    K = tr.n_exits
    _, block_prob = a.probabilities(target_db, recalibration)
    exits = dynamic_exits(block_prob, a.valid, confidence)
    q = predicted_exit_snr(a, (0.1, 0.5, 0.9), recalibration)     # (3, K, n_seg, S, n_core)
    t_block = np.arange(a.valid.sum()) * tr.block / sr + tr.block / sr / 2
    fig, axes = plt.subplots(K + 1, 2, figsize=(11, 1.9 * (K + 1)), sharex=True,
                             gridspec_kw={"width_ratios": [3, 2]})
    _spectrogram(axes[0, 0], a.mixture, sr, "mixture")
    taken = _blocks(a, np.repeat(exits[:, None], a.valid.shape[1], 1))
    axes[0, 1].step(t_block, taken, where="mid", color="C3")
    axes[0, 1].set(ylabel="exit", yticks=range(1, K + 1), ylim=(0.5, K + 0.5))
    axes[0, 1].set_title(f"exit taken at t = {target_db:g} dB, p = {confidence:g}", fontsize=9, loc="left")
    for k in range(K):
        est = align_to_reference(tr.stitch(np.full(len(tr.plan), k + 1)), a.references)
        _spectrogram(axes[k + 1, 0], est[0], sr, f"exit {k + 1}: speaker 1")
        ax = axes[k + 1, 1]
        for s, color in zip(range(q.shape[3]), ("C0", "C1", "C2", "C4")):
            lo, med, hi = (_blocks(a, q[i, k, :, s]) for i in range(3))
            ax.fill_between(t_block, lo, hi, step="mid", color=color, alpha=0.25, lw=0)
            ax.step(t_block, med, where="mid", color=color, lw=1, label=f"spk {s + 1} predicted")
            ax.plot(t_block, _blocks(a, a.exit_snr[k, :, s]), ".", color=color, ms=3)
        ax.axhline(target_db, color="0.3", ls="--", lw=0.8)
        ax.set_ylabel("exit-SNR (dB)")
        if k == 0:
            ax.legend(fontsize=7, loc="upper left", ncol=2, framealpha=0.6,
                      title="predicted: median, 10–90 % band; dots: true", title_fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (s)")
    return _save(fig, path)


def plot_quality_vs_compute(summary: dict, path: str | Path) -> Path:
    """Figure 2: SI-SNRi against mean GMAC/s, static exits and dynamic over targets at p."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ex = summary["exits"]
    ax.plot([e["gmacs_per_second"] for e in ex], [e["si_snri"] for e in ex], "s-", color="0.3",
            label="static exits")
    for e in ex:
        ax.annotate(f"{e['exit']}", (e["gmacs_per_second"], e["si_snri"]), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")
    dyn = sorted(summary["dynamic"], key=lambda d: d["target_db"])
    if dyn:
        ax.plot([d["gmacs_per_second"] for d in dyn], [d["si_snri"] for d in dyn], "o-", color="C3",
                label=f"dynamic, p = {dyn[0]['confidence']:g}")
        for d in dyn:
            ax.annotate(f"{d['target_db']:g} dB", (d["gmacs_per_second"], d["si_snri"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points", color="C3")
    orc = summary.get("oracle", [])
    if orc:
        ax.plot([o["gmacs_per_second"] for o in orc], [o["si_snri"] for o in orc], "^:", color="C2",
                label="oracle")
    ax.set(xlabel="mean GMAC/s", ylabel="SI-SNRi (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_regret_vs_compute(summary: dict, target_db: float, path: str | Path) -> Path:
    """Figure 3: one-sided exit-SNR regret at `target_db` against mean GMAC/s per strategy."""
    key = f"{target_db:g}"
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    dyn = sorted((d for d in summary["dynamic_sweep"] if d["target_db"] == target_db),
                 key=lambda d: d["gmacs_per_second"])
    ax.plot([d["gmacs_per_second"] for d in dyn], [d["regret_db"][key] for d in dyn], "o-", color="C3",
            label="dynamic (sweeping p)")
    ex = summary["exits"]
    ax.plot([e["gmacs_per_second"] for e in ex], [e["regret_db"][key] for e in ex], "s-", color="0.3",
            label="static exits")
    for name, marker, color in (("oracle", "^", "C2"), ("uniform", "D", "C0"), ("output_change", "v", "C1")):
        pts = [p for p in summary.get(name, []) if name != "oracle" or p["target_db"] == target_db]
        if pts:
            pts = sorted(pts, key=lambda p: p["gmacs_per_second"])
            ax.plot([p["gmacs_per_second"] for p in pts], [p["regret_db"][key] for p in pts],
                    marker=marker, ls=":" if len(pts) > 1 else "", color=color,
                    label=name.replace("_", " ") + (" (sweeping threshold)" if len(pts) > 1 else ""))
    ax.set(xlabel="mean GMAC/s", ylabel=f"one-sided regret at t = {target_db:g} dB (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


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


def plot_exit_map(mixture: np.ndarray, sample_rate: int, blocks_by_target: dict[str, list[dict]],
                  n_exits: int, path: str | Path, title: str = "") -> Path:
    """Spectrogram on top; below it, one row per target with the exit taken by every block."""
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
