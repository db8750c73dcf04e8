"""Accuracy of press.prob.exits.gammaincc (Q(a, x)) against scipy.special.gammaincc.

Prints max absolute and relative error over a grid of a in [1e-3, 1e7] (81 values, log-spaced)
and x = 0, 1e-12 ... 1e12 (97 values) plus x/a in [0.8, 1.2] (41 values) and x/a in [1e-6, 1e2]
(49 values) where large a is hardest, per decade band of a, and the share of NaN/Inf.
Run: python benchmarks/gammaincc_accuracy.py
"""

from __future__ import annotations

import numpy as np
import scipy.special
import torch

from press.prob.exits import gammaincc


def grid() -> tuple[np.ndarray, np.ndarray]:
    a = np.logspace(-3, 7, 81)
    ratios = np.concatenate([np.logspace(-6, 2, 49), np.linspace(0.8, 1.2, 41)])
    xs = np.concatenate([[0.0], np.logspace(-12, 12, 97)])
    a_all = np.concatenate([np.repeat(a, ratios.size), np.repeat(a, xs.size)])
    x_all = np.concatenate([(a[:, None] * ratios[None]).ravel(), np.tile(xs, a.size)])
    return a_all, x_all


def report(a: np.ndarray, x: np.ndarray, got: np.ndarray, ref: np.ndarray, label: str) -> None:
    err = np.abs(got - ref)
    tail = ref > 1e-250
    rel = err[tail] / ref[tail]
    print(
        f"{label:<22} n={a.size:6d}  max abs {err.max():.2e}  max rel {rel.max():.2e}"
        f"  (rel where Q > 1e-250)  non-finite {int((~np.isfinite(got)).sum())}"
    )


def main() -> None:
    torch.set_num_threads(1)
    a, x = grid()
    ref = scipy.special.gammaincc(a, x)
    got = gammaincc(torch.from_numpy(a), torch.from_numpy(x)).numpy()
    report(a, x, got, ref, "all")
    for lo, hi in ((1e-3, 1.0), (1.0, 1e3), (1e3, 1e5), (1e5, 1.1e7)):
        band = (a >= lo) & (a < hi)
        report(a[band], x[band], got[band], ref[band], f"a in [{lo:g}, {hi:g})")
    near = np.abs(x / a - 1.0) <= 0.2
    report(a[near], x[near], got[near], ref[near], "x/a in [0.8, 1.2]")
    edges = gammaincc(torch.tensor([1.0, 1e7, 1e-3]), torch.tensor([0.0, float("inf"), -1.0]))
    print("edges Q(1, 0), Q(1e7, inf), Q(1e-3, -1):", edges.tolist())
    got32 = torch.special.gammaincc(torch.from_numpy(a).float(), torch.from_numpy(x).float())
    err32 = np.abs(got32.double().numpy() - ref).max()
    print(f"(float32 torch.special.gammaincc for comparison: max abs {err32:.2e})")


if __name__ == "__main__":
    main()
