"""Block-wise inference with early exits: segment plan, exit policies, runner, stitching, traces.

The names below load their module on first use (PEP 562), so that the torch-free modules of this
package (plan, thresholds) can be imported without torch, as the deployment runtime does.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Budget": "policies", "Dynamic": "policies", "ExitContext": "policies", "ExitPolicy": "policies",
    "OutputChange": "policies", "Static": "policies",
    "BlockReport": "results", "SegmentReport": "results", "SeparationResult": "results",
    "Separator": "runner", "separate": "runner",
    "ExitTrace": "trace", "trace_exits": "trace",
    "BudgetCalibration": "budget",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'press.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(f"press.inference.{_WHERE[name]}"), name)
