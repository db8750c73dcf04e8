"""Evaluate a PRESS model on a corpus: per exit, dynamic inference, strategies, calibration.

Each utterance runs once through every exit of every segment (`press.inference.trace_exits`);
every strategy is a choice of one exit per segment on that same trace, stitched like
`press separate` stitches (`ExitTrace.stitch`). Per strategy point, totals are pooled over
utterances: quality metrics are means over utterances (of the mean over sources), GMAC/s is
total MACs over total audio seconds, regret is the mean over all core blocks and speakers.
Only running totals and the per-block calibration numbers are kept, so memory does not grow
with the utterances' audio.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from press.evaluation.analysis import UtteranceAnalysis, analyse
from press.evaluation.metrics import (
    align_to_reference,
    aligned_si_snri,
    pesq_score,
    sdr,
    stoi_score,
)
from press.evaluation.strategies import (
    dynamic_exits,
    oracle_exits,
    output_change_exits,
    regret,
    static_exits,
    uniform_exits,
)
from press.inference.runner import Separator
from press.inference.trace import trace_exits
from press.io.streaming import ArrayReader
from press.prob.calibration import (
    Recalibration,
    crps_error_power_db,
    fit_per_exit,
    fit_recalibration,
    ks_statistic,
    pit_values,
    reliability_diagram,
)

CONFIDENCE_SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
CHANGE_THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass
class Options:
    """What to sweep (the segments are the `Separator`'s). `quality` adds SDRi, PESQ and STOI for
    static exits and the dynamic points at `confidence` (the slow metrics; SI-SNRi always)."""

    targets: tuple[float, ...] = (10.0, 15.0, 20.0, 25.0)
    confidence: float = 0.9
    quantile: float = 1.0                  # share of a segment's valid blocks that must pass
    confidences: tuple[float, ...] = CONFIDENCE_SWEEP
    thresholds: tuple[float, ...] = CHANGE_THRESHOLDS
    seed: int = 0
    quality: bool = True


@dataclass
class PointTotals:
    """Running sums for one strategy point over utterances."""

    n: int = 0
    seconds: float = 0.0           # audio
    wall: float = 0.0              # estimated compute time
    macs: float = 0.0
    metrics: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    regret_sum: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    regret_n: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    exit_counts: np.ndarray | None = None

    def summary(self) -> dict:
        out = {name: float(np.nanmean(v)) if np.isfinite(v).any() else None
               for name, v in ((k, np.asarray(v, float)) for k, v in self.metrics.items())}
        out["gmacs_per_second"] = self.macs / max(self.seconds, 1e-12) / 1e9
        out["rtf"] = self.wall / max(self.seconds, 1e-12)
        out["regret_db"] = {f"{t:g}": self.regret_sum[t] / max(self.regret_n[t], 1) for t in self.regret_sum}
        if self.exit_counts is not None:
            out["exit_shares"] = (self.exit_counts / max(self.exit_counts.sum(), 1)).tolist()
        return out


@dataclass
class CalibrationData:
    """Per exit, valid core blocks of every utterance: PIT values, CRPS, and (prob, outcome) pairs."""

    pit: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)     # label -> per exit
    crps: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)
    reliability: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def add(self, a: UtteranceAnalysis, label: str, recal: Recalibration, targets: Iterable[float]) -> None:
        keep = (a.count > 0) & a.valid[None, :, None, :]
        alpha, beta = recal.apply(torch.from_numpy(a.alpha), torch.from_numpy(a.beta))
        pit = pit_values(alpha, beta, a.error_energy, a.count).numpy()
        crps = crps_error_power_db(alpha, beta, torch.from_numpy(a.error_energy),
                                   torch.from_numpy(a.count)).numpy()
        K = a.alpha.shape[0]
        self.pit.setdefault(label, [[] for _ in range(K)])
        self.crps.setdefault(label, [[] for _ in range(K)])
        for k in range(K):
            self.pit[label][k].append(pit[k][keep[k]])
            self.crps[label][k].append(crps[k][keep[k]])
        for t in targets:
            probs, _ = a.probabilities(t, recal)
            self.reliability.setdefault(label, []).append((probs[keep], a.exit_snr[keep] >= t))

    def summary(self) -> dict:
        out = {}
        for label in self.pit:
            per_exit = []
            for k, (u, c) in enumerate(zip(self.pit[label], self.crps[label])):
                u, c = np.concatenate(u), np.concatenate(c)
                per_exit.append({"exit": k + 1, "ks": ks_statistic(torch.from_numpy(u)) if len(u) else None,
                                 "crps_db": float(c.mean()) if len(c) else None, "blocks": int(len(u))})
            p, o = self.pooled_reliability(label)
            out[label] = {"exits": per_exit, "ece": reliability_diagram(torch.from_numpy(p),
                                                                      torch.from_numpy(o)).ece}
        return out

    def pooled_reliability(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        pairs = self.reliability[label]
        return np.concatenate([p for p, _ in pairs]), np.concatenate([o for _, o in pairs])

    def pit_per_exit(self, label: str) -> list[np.ndarray]:
        return [np.concatenate(u) for u in self.pit[label]]


@dataclass
class Evaluation:
    """Everything `press evaluate` reports."""

    summary: dict
    rows: list[dict]
    calibration: CalibrationData
    example: UtteranceAnalysis | None


def utterance_quality(estimate: np.ndarray, references: np.ndarray, mixture: np.ndarray,
                      sample_rate: int, full: bool, baseline_sdr: np.ndarray | None = None
                      ) -> dict[str, float]:
    """SI-SNRi (and with `full`, SDRi, PESQ, STOI) of an estimate (S, N), means over sources.

    baseline_sdr: the mixture's SDR per source, when the caller already has it (it is the same
    for every strategy of an utterance, and BSS Eval is the slowest metric here).
    """
    est = align_to_reference(estimate, references)
    out = {"si_snri": aligned_si_snri(est, references, mixture)}
    if full:
        if baseline_sdr is None:
            baseline_sdr = sdr(np.broadcast_to(mixture, references.shape), references)
        out["sdri"] = float((sdr(est, references) - baseline_sdr).mean())
        out["pesq"] = float(np.nanmean([pesq_score(e, r, sample_rate) for e, r in zip(est, references)]))
        out["stoi"] = float(np.mean([stoi_score(e, r, sample_rate) for e, r in zip(est, references)]))
    return out


def strategy_points(a: UtteranceAnalysis, options: Options, recal: Recalibration
                    ) -> dict[tuple, np.ndarray]:
    """Every strategy point's exits per segment for one utterance, keyed by (strategy, *params)."""
    tr, K, n_seg = a.trace, a.trace.n_exits, len(a.trace.plan)
    points: dict[tuple, np.ndarray] = {("static", k): static_exits(n_seg, k, K) for k in range(1, K + 1)}
    for t in options.targets:
        _, block_prob = a.probabilities(t, recal)
        for p in sorted(set(options.confidences) | {options.confidence}):
            points[("dynamic", t, p)] = dynamic_exits(block_prob, a.valid, p, options.quantile)
        points[("oracle", t)] = oracle_exits(a.exit_snr, a.valid, t)
    points[("uniform", options.seed)] = uniform_exits(n_seg, K, options.seed)
    for th in options.thresholds:
        points[("output_change", th)] = output_change_exits(tr.estimates, tr.core_samples, th)
    return points


def _full_metrics(key: tuple, options: Options) -> bool:
    return options.quality and (key[0] == "static" or (key[0] == "dynamic" and key[2] == options.confidence))


def evaluate(separator: Separator, items: Iterable[dict], options: Options,
             recalibration: Recalibration = Recalibration(), fitted: Recalibration | None = None,
             progress: Callable[[], None] | None = None) -> Evaluation:
    """Run the evaluation over `items` ({"mixture", "sources", "id"}); see the module docstring.

    Dynamic decisions use `recalibration` (the model's own, identity if it has none); calibration
    is reported raw ("raw"), with the model's own recalibration ("stored") when it has one, since
    those are the probabilities its exits are decided by, and after `fitted` ("recalibrated") when
    one was fitted.
    """
    sr = separator.model.cfg.sample_rate
    # an enhancement model's quality is its speech's: the removed noise is no output a listener hears
    names = separator.model.cfg.source_names
    scored = slice(names.index("speech"), names.index("speech") + 1) if "speech" in names else slice(None)
    totals: dict[tuple, PointTotals] = defaultdict(PointTotals)
    calibration = CalibrationData()
    rows, example, trace_wall, audio = [], None, 0.0, 0.0
    for item in items:
        mixture = item["mixture"].numpy().astype(np.float32)
        refs = item["sources"].numpy().astype(np.float32)
        tic = time.perf_counter()
        trace = trace_exits(separator, ArrayReader(mixture))
        trace_wall += time.perf_counter() - tic
        a = analyse(trace, mixture, refs)
        audio += a.seconds
        example = example or a
        calibration.add(a, "raw", Recalibration(), options.targets)
        if recalibration != Recalibration():
            calibration.add(a, "stored", recalibration, options.targets)
        if fitted is not None:
            calibration.add(a, "recalibrated", fitted, options.targets)
        row = {"id": item["id"], "seconds": round(a.seconds, 3)}
        baseline = sdr(np.broadcast_to(mixture, refs[scored].shape), refs[scored]) if options.quality else None
        cache: dict[tuple[bytes, bool], dict[str, float]] = {}  # strategies often agree on exits
        for key, exits in strategy_points(a, options, recalibration).items():
            full = _full_metrics(key, options)
            if (exits.tobytes(), full) not in cache:
                cache[exits.tobytes(), full] = utterance_quality(trace.stitch(exits)[scored], refs[scored],
                                                                 mixture, sr, full, baseline)
            metrics = cache[exits.tobytes(), full]
            tot = totals[key]
            tot.n += 1
            tot.seconds += a.seconds
            tot.macs += trace.macs(exits)
            tot.wall += trace.seconds(exits)
            counts = np.bincount(exits - 1, minlength=trace.n_exits)
            tot.exit_counts = counts if tot.exit_counts is None else tot.exit_counts + counts
            for name, v in metrics.items():
                tot.metrics[name].append(v)
            for t in ([key[1]] if key[0] in ("dynamic", "oracle") else options.targets):
                s, n = regret(a.exit_snr, a.valid, exits, t)
                tot.regret_sum[t] += s
                tot.regret_n[t] += n
            if full:
                tag = f"exit{key[1]}" if key[0] == "static" else f"t{key[1]:g}"
                row.update({f"{m}_{tag}": round(v, 4) for m, v in metrics.items()})
                row[f"gmacs_{tag}"] = round(trace.macs(exits) / a.seconds / 1e9, 4)
        rows.append(row)
        if progress is not None:
            progress()
    summary = _summary(totals, calibration, options, separator, trace_wall, audio, len(rows))
    return Evaluation(summary, rows, calibration, example)


def _summary(totals: dict[tuple, PointTotals], calibration: CalibrationData, options: Options,
             separator: Separator, trace_wall: float, audio: float, n: int) -> dict:
    def rows(kind: str, fields: Callable[[tuple], dict]) -> list[dict]:
        return [{**fields(k), **v.summary()} for k, v in sorted(totals.items(), key=lambda kv: kv[0][1:])
                if k[0] == kind]

    dynamic = rows("dynamic", lambda k: {"target_db": k[1], "confidence": k[2]})
    return {
        "utterances": n,
        "audio_seconds": audio,
        "segment_seconds": separator.segment_samples / separator.model.cfg.sample_rate,
        "context_seconds": separator.context_samples / separator.model.cfg.sample_rate,
        "whole_seconds": separator.cut.whole / separator.model.cfg.sample_rate,
        "quantile": options.quantile,
        "rtf_all_exits": trace_wall / max(audio, 1e-12),
        "exits": rows("static", lambda k: {"exit": k[1]}),
        "dynamic": [d for d in dynamic if d["confidence"] == options.confidence],
        "dynamic_sweep": dynamic,
        "oracle": rows("oracle", lambda k: {"target_db": k[1]}),
        "uniform": rows("uniform", lambda k: {"seed": k[1]}),
        "output_change": rows("output_change", lambda k: {"threshold": k[1]}),
        "calibration": calibration.summary() if n else {},
    }


def fit_on(separator: Separator, items: Iterable[dict], method: str = "crps", per_exit: bool = True
           ) -> Recalibration:
    """Post-hoc recalibration fitted on `items` (a validation set) by `method` (see
    fit_recalibration): one pair of scales per exit (`fit_per_exit`), or pooled over exits."""
    parts: list[tuple[np.ndarray, ...]] = []
    for item in items:
        mixture = item["mixture"].numpy().astype(np.float32)
        a = analyse(trace_exits(separator, ArrayReader(mixture)), mixture,
                    item["sources"].numpy().astype(np.float32))
        keep = (a.count > 0) & a.valid[None, :, None, :]                   # (K, n_seg, S, n_core)
        parts.append(tuple(np.stack([x[k][keep[k]] for k in range(len(x))]) for x in
                           (a.alpha, a.beta, a.error_energy, a.count)))   # (K, blocks) each
    alpha, beta, energy, count = (torch.from_numpy(np.concatenate(p, axis=1)) for p in zip(*parts))
    if per_exit:
        return fit_per_exit(alpha, beta, energy, count, method=method)
    return fit_recalibration(alpha, beta, energy, count, method=method)
