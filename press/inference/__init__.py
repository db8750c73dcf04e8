"""Block-wise inference with early exits: segment plan, exit policies, runner, stitching, traces."""

from press.inference.budget import BudgetCalibration
from press.inference.policies import (
           Budget,
           Dynamic,
           ExitContext,
           ExitPolicy,
           OutputChange,
           Static,
)
from press.inference.results import BlockReport, SegmentReport, SeparationResult
from press.inference.runner import Separator, separate
from press.inference.trace import ExitTrace, trace_exits

__all__ = ["BlockReport", "Budget", "BudgetCalibration", "Dynamic", "ExitContext", "ExitPolicy", "ExitTrace", "OutputChange",
           "SegmentReport", "SeparationResult", "Separator", "Static", "separate", "trace_exits"]
