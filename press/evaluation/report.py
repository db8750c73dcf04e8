"""`press evaluate`'s shell: load the model and corpus, run press.evaluation.evaluate, write the files.

Kept apart from press.evaluation.evaluate so that the evaluation itself stays a function of a model and an
iterable of items (testable without files), and so that model loading is one function
(`resolve_model`) that shipped-model names can later plug into.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from press.errors import PressError
from press.model import PressNet
from press.prob.calibration import Recalibration, reliability_diagram


def resolve_model(spec: str, device: str | torch.device | None = None
                  ) -> tuple[PressNet, object, Recalibration, dict]:
    """(model, config, its stored recalibration or identity, checkpoint extras) for a shipped
    model's name or a checkpoint path."""
    from press.model.device import resolve_device
    from press.model.pretrained import load

    model, cfg, extra = load(spec, device=resolve_device(device))
    recal = Recalibration.from_dict(extra["recalibration"]) if "recalibration" in extra else Recalibration()
    return model, cfg, recal, extra


def dataset_items(name: str, root: str | None, split: str, model: PressNet, subset: str | None,
                  limit: int | None):
    """The first `limit` items of a corpus at the model's rate, checked to have its source count."""
    from press.data import get_dataset

    options = {}
    if name == "builtin":
        options = {"n_src": model.cfg.n_src, **({"subset": subset} if subset else {})}
    elif subset is not None:
        raise PressError("--subset applies to the builtin dataset only")
    if root is not None and not Path(root).exists():
        raise PressError(f"--root {root} does not exist")
    ds = get_dataset(name, root, split=split, sample_rate=model.cfg.sample_rate, **options)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise PressError(f"{name} {split}: no utterances found")
    first = ds[0]
    if first["sources"].shape[0] != model.cfg.n_src:
        raise PressError(f"{name} has {first['sources'].shape[0]} sources per mixture, "
                         f"the model separates {model.cfg.n_src}")
    return (ds[i] for i in range(n)), n


@dataclass(frozen=True)
class Request:
    """What `press evaluate` was asked: the model, the corpus items, the report's settings and an
    optional recalibration to fit (and save) on another split."""

    model: str
    dataset: str
    out: Path
    targets: tuple[float, ...]
    confidence: float = 0.9
    quantile: float = 1.0                # share of a segment's blocks that must pass
    quality: bool = True                 # SDRi, PESQ and STOI besides SI-SNRi
    root: str | None = None
    split: str = "test"
    subset: str | None = None
    limit: int | None = None
    device: str | None = None
    segment: float | None = None         # None: the API's defaults
    context: float | None = None
    batch_size: int = 8
    calibrate_split: str | None = None
    calibrate_limit: int | None = None
    calibrate_method: str = "crps"
    calibrate_pooled: bool = False
    save_calibrated: str | None = None


@torch.no_grad()
def run_request(req: Request) -> dict:
    """Everything `press evaluate` does after parsing; returns the summary it wrote into `req.out`."""
    from tqdm import tqdm

    from press.engine.operating_point import OperatingPoint
    from press.evaluation.evaluate import Options, evaluate, fit_on
    from press.inference.runner import Separator
    from press.model.checkpoint import save_model

    model, cfg, recal, extra = resolve_model(req.model, req.device)
    options = Options(targets=req.targets, confidence=req.confidence, quantile=req.quantile, quality=req.quality)
    segment, context, whole = OperatingPoint.from_dict(extra.get("operating_point")).cut(req.segment, req.context)
    separator = Separator(model, segment=segment, context=context, whole=whole, batch_size=req.batch_size,
                          recalibration=recal)
    items, n = dataset_items(req.dataset, req.root, req.split, model, req.subset, req.limit)
    fitted = None
    if req.calibrate_split:
        val, n_val = dataset_items(req.dataset, req.root, req.calibrate_split, model, req.subset,
                                   req.calibrate_limit)
        fitted = fit_on(separator, tqdm(val, total=n_val, desc="fit recalibration", unit="utt",
                                        disable=None), method=req.calibrate_method,
                        per_exit=not req.calibrate_pooled)
        if req.save_calibrated:
            save_model(req.save_calibrated, model, cfg, {**extra, "recalibration": fitted.to_dict()})
    with tqdm(total=n, desc="evaluate", unit="utt", disable=None) as bar:
        result = evaluate(separator, items, options, recal, fitted, progress=bar.update)
    summary = {"model": str(req.model), "dataset": req.dataset, "split": req.split, "subset": req.subset,
               "recalibration": recal.to_dict(), "fitted_recalibration": fitted and fitted.to_dict(),
               **result.summary}
    write_outputs(req.out, summary, result, req.targets, options.confidence, fitted or recal)
    return summary


def write_outputs(out: Path, summary: dict, result, targets: tuple[float, ...], confidence: float,
                  recal: Recalibration) -> None:
    """summary.json, utterances.csv and the figures into `out`."""
    from press.evaluation.figures import (
        plot_calibration_curves,
        plot_exits_example,
        plot_quality_vs_compute,
        plot_regret_vs_compute,
        plot_reliability,
    )

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    fields = list(dict.fromkeys(k for row in result.rows for k in row))
    with open(out / "utterances.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(result.rows)
    target = min(targets, key=lambda t: abs(t - 20.0))
    plot_exits_example(result.example, target, confidence, out / "exits_example.png", recal)
    plot_quality_vs_compute(summary, out / "quality_vs_compute.png")
    plot_regret_vs_compute(summary, target, out / "regret_vs_compute.png")
    cal = result.calibration
    curves = {f"exit {k + 1}, {label}": torch.from_numpy(u)
              for label in cal.pit for k, u in enumerate(cal.pit_per_exit(label))}
    plot_calibration_curves(curves, out / "calibration.png")
    diagrams = {label: reliability_diagram(*(torch.from_numpy(x) for x in cal.pooled_reliability(label)))
                for label in cal.reliability}
    plot_reliability(diagrams, out / "reliability.png")
