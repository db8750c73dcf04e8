"""The per-file report: the JSON `press separate` writes next to the sources, and `press.load(...)
.separate(...)` returns, whichever backend ran."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from press.engine.policies import Budget, ExitPolicy
from press.engine.results import SeparationResult


def file_report(result: SeparationResult, policy: ExitPolicy, *, model: str, sources: list[str],
                model_sample_rate: int, sample_rate: int, target_db: float, confidence: float,
                n_exits: int, backend: str | None = None) -> dict[str, Any]:
    """The report of one separation: the model and its outputs, the policy and target it ran with,
    compute spent against the last exit, and the exit, probabilities and compute per segment and block
    (`run`: "segments", or "stream" for a causal model's file run as one stream, a segment per block).

    `sample_rate` is the input's (the sources are written at it); `backend` names a backend other
    than torch ("onnx"), which the report then states first.
    """
    return {
        **({"backend": backend} if backend else {}),
        "model": model, "sources": sources, "model_sample_rate": model_sample_rate, "sample_rate": sample_rate,
        "run": result.run,
        "policy": type(policy).__name__.lower(), "target_db": target_db, "confidence": confidence,
        **({"budget_gmacs_per_second": policy.gmacs_per_second, "budget_threshold_db": policy.threshold_db}
           if isinstance(policy, Budget) else {}),
        "gmacs_per_second": result.gmacs_per_second,
        "last_exit_gmacs_per_second": result.last_exit_gmacs_per_second,
        "saving": result.saving, "exit_histogram": result.exit_histogram(n_exits),
        "seconds": result.seconds, "padding_share": result.padding_share, "note": result.note,
        "segments": [asdict(s) for s in result.segments],
        "blocks": [b.to_dict() for b in result.blocks],
    }
