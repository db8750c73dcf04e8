"""PRESS-Net run segment by segment with early exits: the torch backend of press.engine.

`TorchBackend` runs a PressNet's incremental interface (`begin`, `advance`, `ExitState.select`) on
the engine's windows and hands every exit's outputs back as numpy; everything else (the segment
plan, the exit rule and policies, stitching, compute and reports) is press.engine's loop, the one
the ONNX runtime drives too. `Separator` is that loop with a PressNet, set up in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from press.engine.backend import Exit, exit_scales
from press.engine.loop import Engine, check_confidence
from press.engine.operating_point import DEFAULT_CONTEXT, DEFAULT_SEGMENT
from press.engine.plan import Cut, SegmentPlan
from press.engine.policies import Dynamic, ExitPolicy
from press.engine.results import SeparationResult
from press.io.streaming import ArrayReader, Reader
from press.model import ExitOutput, ExitState, PressNet
from press.model.compute import exit_costs
from press.prob.calibration import Recalibration



class TorchBackend:
    """A PressNet as the engine's backend (press.engine.backend.Backend), on its own device, run under
    torch.inference_mode (no autograd records)."""

    def __init__(self, model: PressNet, gmacs: Sequence[float], device: torch.device) -> None:
        cfg = model.cfg
        self.model, self.gmacs, self.device = model, gmacs, device
        self.sample_rate, self.block, self.n_src, self.sources = cfg.sample_rate, cfg.block, cfg.n_src, cfg.sources
        self.n_exits = model.n_exits

    @torch.inference_mode()
    def first(self, windows: np.ndarray, lengths: np.ndarray, levels: np.ndarray) -> tuple[Exit, ExitState]:
        state = self.model.begin(torch.from_numpy(windows).to(self.device),
                                 lengths=torch.from_numpy(lengths).to(self.device),
                                 scale=torch.from_numpy(levels).to(self.device))
        return self.advance(state)

    @torch.inference_mode()
    def advance(self, state: ExitState) -> tuple[Exit, ExitState]:
        out, state = self.model.advance(state)
        return to_numpy(out), state

    @torch.inference_mode()
    def select(self, state: ExitState, keep: np.ndarray) -> ExitState:
        return state.select(torch.from_numpy(keep).to(self.device))


def to_numpy(out: ExitOutput) -> Exit:
    """One exit's outputs on the host in float32 (one device-to-host copy each)."""
    return Exit(*(t.float().cpu().numpy() for t in (out.estimate, out.alpha, out.beta)))


@dataclass
class Separator:
    """Runs a PRESS model segment by segment with early exits (press.engine.loop).

    segment / context in seconds (rounded to whole likelihood blocks); whole: inputs up to this many
    seconds run whole (press.engine.plan.Cut); target_db / confidence: the report target at which
    per-block probabilities are computed (and the rule of `Dynamic`).
    """

    model: PressNet
    segment: float = DEFAULT_SEGMENT
    context: float = DEFAULT_CONTEXT
    target_db: float = 20.0
    confidence: float = 0.9
    batch_size: int = 8
    recalibration: Recalibration = field(default_factory=Recalibration)
    whole: float = 0.0

    def __post_init__(self) -> None:
        cfg = self.model.cfg
        self.block = cfg.block
        self.cut = Cut.from_seconds(self.segment, self.context, cfg.sample_rate, cfg.block, self.whole)
        self.segment_samples, self.context_samples = self.cut.segment, self.cut.context
        self.recalibration.check_exits(self.model.n_exits)
        self.gmacs = [c.gmacs_per_second for c in exit_costs(self.model)]
        self.device = next(self.model.parameters()).device
        check_confidence(self.confidence)

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan:
        """Segments for an input of n_samples (press.engine.plan.Cut.plan)."""
        return self.cut.plan(n_samples, utterance)

    def backend(self) -> TorchBackend:
        return TorchBackend(self.model, self.gmacs, self.device)

    def engine(self) -> Engine:
        """The engine over this model with these settings, made for each run, so that a setting changed
        on the Separator (target, confidence, even the model) holds from the next run on."""
        return Engine(self.backend(), self.cut, exit_scales(self.recalibration.to_dict(), self.model.n_exits),
                      self.target_db, self.confidence, self.batch_size)

    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult:
        """Separate everything `reader` holds. With no `sink`, sources are returned in memory."""
        return self.engine().run(reader, policy, sink, utterance, p_ref, on_batch)


def separate(model: PressNet, mixture: np.ndarray | torch.Tensor, policy: ExitPolicy | None = None,
             **options) -> SeparationResult:
    """Separate an in-memory mono mixture at the model's rate (default policy: Dynamic)."""
    utterance = options.pop("utterance", False)
    return Separator(model, **options).run(ArrayReader(mixture), policy or Dynamic(), utterance=utterance)
