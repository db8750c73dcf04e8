"""Budget mode measured: how closely `separate(x, budget=G)` meets G GMAC/s, and at what SI-SNRi.

    python benchmarks/budget_policies.py [MODEL] [--limit 40] [--long 10]
                                         [--fractions 0.25,0.5,0.75] [--threads 1]

MODEL: a shipped model's name or a checkpoint (default: the shipped `default`). Segments are the
`Separator`'s defaults (2 s with 0.25 s of context; an input that fits in one 2.5 s window runs
whole as one segment).

Two inputs, both from the built-in test split:
  * pool: the first --limit mixtures, each separated on its own (few segments per input);
    GMAC/s is total MACs over total seconds, |err| input the mean over inputs of each one's
    |achieved / G - 1| and "err per input" their range;
  * long: the same mixtures, every --long consecutive ones concatenated into one input (sources
    concatenated too): 4 inputs of about 40 s by default; |err| input is then per long input.
SI-SNRi (dB) is the mean over utterances of the mean over sources, speakers aligned per utterance
by best SI-SNR (`press.evaluation.evaluate.utterance_quality`); in a long input each utterance
is scored on its own span of the output.

Budgets: for each input, the fraction f of the way from its exit-1 GMAC/s to its last exit's
(context included, so they differ between the pool and the long input). Per budget G:
  * budget mode: `Press.separate(x, budget=G)`, exactly what `press separate --budget G` runs:
    the threshold on the segments' expected exit-SNR fitted on the built-in corpus's first
    validation mixtures (press.api.BUDGET_CALIBRATION_MIXTURES), per input for its segment plan;
  * fitted on the input: the same rule with the threshold fitted on the test input(s) themselves
    (`threshold_for_budget` on their pooled costs, evaluated on an `ExitTrace`): what is left of
    the error when the calibration data are the input, i.e. the error due to discreteness.
Static exits and the default dynamic rule (t = 20 dB, p = 0.9) are printed for reference.

The rate controller that budget mode replaced (a threshold on P(exit-SNR >= t) steered after every
batch) and the offline knapsack optimum were measured against it before they were removed from
PRESS; docs/exits.md ("Compute budget") has both tables.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from press.api import load
from press.data import get_dataset
from press.engine.thresholds import first_exit_reaching, threshold_for_budget
from press.evaluation.evaluate import utterance_quality
from press.inference.budget import trace_quality
from press.inference.trace import ExitTrace, trace_exits
from press.io.streaming import ArrayReader


def items(split: str, n: int, sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    ds = get_dataset("builtin", split=split, sample_rate=sample_rate)
    return [(ds[i]["mixture"].numpy().astype(np.float32), ds[i]["sources"].numpy().astype(np.float32))
            for i in range(min(n, len(ds)))]


def quality(outputs: list[np.ndarray], groups: list[list[tuple[np.ndarray, np.ndarray]]], sr: int) -> float:
    """Mean SI-SNRi over utterances: outputs[i] (S, N) is groups[i]'s utterances end to end."""
    scores = []
    for out, utts in zip(outputs, groups):
        start = 0
        for m, s in utts:
            scores.append(utterance_quality(out[:, start:start + len(m)], s, m, sr, full=False)["si_snri"])
            start += len(m)
    return float(np.mean(scores))


class Pool:
    """Traces of several inputs seen as one pool of segments (costs scaled so that mean = GMAC/s)."""

    def __init__(self, traces: list[ExitTrace], recalibration) -> None:
        self.traces = traces
        self.seconds = sum(t.plan.n_samples / t.sample_rate for t in traces)
        self.sizes = [len(t.plan) for t in traces]
        n = sum(self.sizes)
        self.cost = np.concatenate([
            np.tile(np.array(t.gmacs) * t.plan.window / t.sample_rate, (len(t.plan), 1)) for t in traces
        ]) * n / self.seconds
        self.quality = np.concatenate([trace_quality(t, recalibration) for t in traces])

    def split(self, exits: np.ndarray) -> list[np.ndarray]:
        return np.split(np.asarray(exits), np.cumsum(self.sizes)[:-1])

    def gmacs(self, exits: np.ndarray) -> list[float]:
        """Pooled GMAC/s, then each input's."""
        per = [t.macs(e) / (t.plan.n_samples / t.sample_rate) / 1e9 for t, e in zip(self.traces, self.split(exits))]
        pooled = sum(t.macs(e) for t, e in zip(self.traces, self.split(exits))) / self.seconds / 1e9
        return [pooled, *per]

    def outputs(self, exits: np.ndarray) -> list[np.ndarray]:
        return [t.stitch(e) for t, e in zip(self.traces, self.split(exits))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="default")
    p.add_argument("--limit", type=int, default=40, help="test mixtures in the pool")
    p.add_argument("--long", type=int, default=10, help="test mixtures concatenated into each long input")
    p.add_argument("--fractions", default="0.25,0.5,0.75", help="budgets, from exit 1 (0) to the last (1)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    model = load(args.model, device="cpu")
    sep = model.separator()
    sr, K = model.sample_rate, model.n_exits
    test = items("test", args.limit, sr)
    calibration = model.budget_calibration(sep)
    print(f"model {args.model}: {K} exits, GMAC/s per exit {[round(g, 3) for g in sep.gmacs]}; "
          f"segment {sep.segment_samples / sr:g} s, context {sep.context_samples / sr:g} s; budget mode "
          f"calibrated on {len(calibration.quality)} segments of built-in validation mixtures")
    settings = {"pool": [[u] for u in test],
                "long": [test[i:i + args.long] for i in range(0, len(test), args.long)]}
    rows = []
    for name, groups in settings.items():
        inputs = [np.concatenate([m for m, _ in g]) for g in groups]
        pool = Pool([trace_exits(sep, ArrayReader(x)) for x in inputs], model.recalibration)
        n_seg = sum(pool.sizes)
        print(f"{name}: {len(test)} utterances, {pool.seconds:.1f} s, {n_seg} segments in {len(inputs)} input(s)")

        def add(policy, outputs, gm, budget=None, shares=None, tau=None, name=name, groups=groups):
            row = {"input": name, "policy": policy, "budget": budget, "gmacs": gm[0], "tau": tau,
                   "si_snri": quality(outputs, groups, sr), "shares": shares}
            if budget is not None:
                row["err"] = gm[0] / budget - 1.0
                if len(gm) > 2:
                    each = [g / budget - 1.0 for g in gm[1:]]
                    row["err_each"] = (float(np.mean(np.abs(each))), min(each), max(each))
            rows.append(row)

        static = {}
        for k in range(1, K + 1):
            ex = np.full(n_seg, k)
            static[k] = pool.gmacs(ex)[0]
            add(f"static exit {k}", pool.outputs(ex), pool.gmacs(ex))
        runs = [model.separate(x) for x in inputs]
        gm = [r.report["gmacs_per_second"] for r in runs]
        add("dynamic t=20 p=0.9", [r.sources for r in runs],
            [sum(g * len(x) for g, x in zip(gm, inputs)) / sr / pool.seconds, *gm])
        for f in (float(v) for v in args.fractions.split(",")):
            G = static[1] + f * (static[K] - static[1])
            runs = [model.separate(x, budget=G) for x in inputs]
            gm = [r.report["gmacs_per_second"] for r in runs]
            hist = np.sum([r.report["exit_histogram"] for r in runs], axis=0)
            taus = sorted({round(r.report["budget_threshold_db"], 1) for r in runs})
            add("budget mode", [r.sources for r in runs],
                [sum(g * len(x) for g, x in zip(gm, inputs)) / sr / pool.seconds, *gm], G, hist / hist.sum(),
                taus[0] if len(taus) == 1 else f"{taus[0]}..{taus[-1]}")
            tau = threshold_for_budget(pool.quality, pool.cost, G)
            ex = first_exit_reaching(pool.quality, tau) + 1
            add("fitted on the input", pool.outputs(ex), pool.gmacs(ex), G, np.bincount(ex - 1, minlength=K) / n_seg,
                round(tau, 1))
        print(f"  done {name} at {time.perf_counter() - tic:.0f} s", flush=True)

    print()
    print("| input | budget GMAC/s | policy | tau dB | achieved GMAC/s | err | \\|err\\| input | err per input "
          "| SI-SNRi dB | exit shares |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = "—" if r["budget"] is None else f"{r['budget']:.3f}"
        err = f"{100 * r['err']:+.1f} %" if "err" in r else ""
        eu = rng = ""
        if "err_each" in r:
            mean, lo, hi = r["err_each"]
            eu, rng = f"{100 * mean:.1f} %", f"{100 * lo:+.0f}..{100 * hi:+.0f} %"
        sh = "" if r["shares"] is None else " / ".join(f"{v:.2f}" for v in r["shares"])
        tau = "" if r["tau"] is None else str(r["tau"])
        print(f"| {r['input']} | {b} | {r['policy']} | {tau} | {r['gmacs']:.3f} | {err} | {eu} | {rng} "
              f"| {r['si_snri']:.2f} | {sh} |")
    print(f"\n{time.perf_counter() - tic:.0f} s in all")


if __name__ == "__main__":
    main()
