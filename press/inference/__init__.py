"""Inference in torch: PRESS-Net as press.engine's backend (runner), every exit traced for evaluation
(trace), and budget mode's calibration (budget).

The policies and reports are press.engine's (numpy, shared with the ONNX runtime); their names are
here too. Every name loads its module on first use (PEP 562), so that importing this package
imports no torch until a torch module is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Budget": "press.engine.policies", "Dynamic": "press.engine.policies",
    "ExitContext": "press.engine.policies", "ExitPolicy": "press.engine.policies",
    "OutputChange": "press.engine.policies", "Static": "press.engine.policies",
    "BlockReport": "press.engine.results", "SegmentReport": "press.engine.results",
    "SeparationResult": "press.engine.results",
    "Separator": "press.inference.runner", "TorchBackend": "press.inference.runner",
    "separate": "press.inference.runner",
    "ExitTrace": "press.inference.trace", "trace_exits": "press.inference.trace",
    "BudgetCalibration": "press.inference.budget",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'press.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
