"""The Python API: one line from a model name to separated sources.

    import press
    model = press.load("default")
    result = model.separate("mixture.wav", target_db=20, confidence=0.9)
    result.sources          # (S, N) numpy, at the input's sample rate
    result.report["gmacs_per_second"], result.report["blocks"][0]["exit"]

`separate` takes a path or an array; `separate_file` streams a file of any length to one output
file per source with bounded memory (what `press separate` uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from press.engine.model import SeparationModel
from press.engine.operating_point import OperatingPoint
from press.engine.plan import SegmentPlan
from press.errors import PressError
from press.inference.budget import BudgetCalibration
from press.inference.runner import DEFAULT_CONTEXT, DEFAULT_SEGMENT, Separator
from press.io.audio import Channel, load_audio, resample, select_channel
from press.io.streaming import ArrayReader
from press.model import PressNet
from press.model.device import resolve_device
from press.prob.calibration import Recalibration

# Validation mixtures of the built-in corpus (noisy speech for an enhancement model) that the budget mode
# fits its threshold on, unless
# `Press.calibrate_budget` was given others (measured: docs/exits.md, "Compute budget").
BUDGET_CALIBRATION_MIXTURES = 10


@dataclass
class Separation:
    sources: np.ndarray        # (S, N) at `sample_rate`
    sample_rate: int
    report: dict[str, Any]     # JSON-able: exits per block, probabilities, GMAC/s spent


class Press(SeparationModel):
    """A loaded PRESS model with the settings to run it, in torch. Build it with `press.load`; what it
    shares with the ONNX runtime's model (policies, reports, files streamed) is press.engine.model's."""

    def __init__(self, model: PressNet, name: str, extra: dict | None = None) -> None:
        self.model, self.name = model, name
        stored = (extra or {}).get("recalibration")
        self.recalibration = Recalibration.from_dict(stored) if stored else Recalibration()
        self.operating_point = OperatingPoint.from_dict((extra or {}).get("operating_point"))
        self._budget_mixtures: list[np.ndarray] | None = None
        self._budget_calibrations: dict[tuple[int, int], BudgetCalibration] = {}

    def compile(self) -> Press:
        """torch.compile the network (`PressNet.compile_inference`): the first separation pays tens of
        seconds of compilation on a CPU; later ones are faster for some models and machines, not all
        (docs/results.md). Returns self."""
        self.model.compile_inference()
        return self

    @property
    def sample_rate(self) -> int:
        return self.model.cfg.sample_rate

    @property
    def n_src(self) -> int:
        return self.model.cfg.n_src

    @property
    def n_exits(self) -> int:
        return self.model.n_exits

    @property
    def source_names(self) -> list[str]:
        """What each output is: ["speech", "noise"] for an enhancement model, s1, s2, ... for speakers
        (in no fixed order)."""
        return self.model.cfg.source_names

    def calibrate_budget(self, mixtures: list[np.ndarray]) -> None:
        """Fit budget mode's threshold on these mixtures (1-D, at the model's rate) instead of the
        built-in corpus's first validation mixtures: audio like what the model will separate."""
        mixtures = [np.asarray(x, dtype=np.float32) for x in mixtures]
        if not mixtures or any(x.ndim != 1 or x.size == 0 for x in mixtures):
            raise PressError("budget calibration needs one or more non-empty 1-D mixtures")
        self._budget_mixtures, self._budget_calibrations = mixtures, {}

    def budget_calibration(self, separator: Separator) -> BudgetCalibration:
        """Every exit's quality on the calibration mixtures cut by `separator` (measured once per
        segment/context and kept)."""
        key = (separator.segment_samples, separator.context_samples)
        if key not in self._budget_calibrations:
            mixtures = self._budget_mixtures
            if mixtures is None:
                from press.data import get_dataset

                ds = (get_dataset("noisy", split="val", sample_rate=self.sample_rate) if "speech" in self.source_names
                      else get_dataset("builtin", split="val", sample_rate=self.sample_rate, n_src=self.n_src))
                mixtures = [ds[i]["mixture"].numpy() for i in range(min(BUDGET_CALIBRATION_MIXTURES, len(ds)))]
            self._budget_calibrations[key] = BudgetCalibration.measure(separator, mixtures)
        return self._budget_calibrations[key]

    def separator(self, target_db: float = 20.0, confidence: float = 0.9, segment: float = DEFAULT_SEGMENT,
                  context: float = DEFAULT_CONTEXT, batch_size: int = 8) -> Separator:
        return Separator(self.model, segment=segment, context=context, target_db=target_db,
                         confidence=confidence, batch_size=batch_size, recalibration=self.recalibration)

    def budget_threshold(self, separator: Separator, gmacs_per_second: float, plan: SegmentPlan) -> float:
        return self.budget_calibration(separator).threshold(gmacs_per_second, plan)

    def separate(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, sample_rate: int | None = None,
                 target_db: float | None = None, confidence: float | None = None, exit: int | None = None,
                 budget: float | None = None, channel: Channel = None, quantile: float = 1.0,
                 utterance: bool = False, **separator_options) -> Separation:
        """Separate a file or an array (mono; choose a channel of a multi-channel one).

        An array is taken at `sample_rate` (default: the model's rate); the sources come back at the
        input's rate. Exits: by default the first exit where P(exit-SNR >= target_db) >= confidence
        for every block of a segment (left None: the model's recommended operating point, which a
        shipped model's card states); `exit=k` runs every segment to exit k; `budget=G` aims at a
        mean compute of G GMAC/s: a segment leaves at the first exit whose expected exit-SNR reaches
        a threshold fitted for G on calibration mixtures (see `calibrate_budget`).
        """
        if isinstance(audio, (str, os.PathLike)):
            x, rate = load_audio(audio, channel=channel)
        else:
            x = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
            rate = sample_rate or self.sample_rate
            if x.ndim == 2:
                x = select_channel(x.T, channel, "the audio", allow_all=False)
            if x.ndim != 1:
                raise PressError(f"expected audio of shape (samples,) or (channels, samples), got {x.shape}")
            if x.size == 0:
                raise PressError("the audio holds no samples")
            if not np.isfinite(x).all():
                raise PressError("the audio holds NaN or Inf samples")
        inner = resample(x, rate, self.sample_rate) if rate != self.sample_rate else x
        target_db, confidence = self.operating_point.resolve(target_db, confidence)
        result, policy = self.run(ArrayReader(inner), target_db, confidence, exit, budget, quantile, utterance,
                                  **separator_options)
        sources = result.sources
        if rate != self.sample_rate:
            sources = np.stack([resample(s, self.sample_rate, rate)[: len(x)] for s in sources])
            sources = np.pad(sources, ((0, 0), (0, len(x) - sources.shape[1])))
        return Separation(sources, rate, self.report(result, policy, target_db, confidence, rate))


def load(model: str | os.PathLike = "default", device: str | torch.device | None = None) -> Press:
    """A shipped model by name (e.g. "default") or a checkpoint written by `press train`.

    `device`: "cpu", "cuda", "cuda:N" or None / "auto" (a GPU when torch sees one, else the CPU).
    It changes nothing in the process around it. On the CPU, call `press.allocator.tune_process()`
    first thing in the program (as the `press` command does) for its speed: subnormal floats flushed
    to zero (near-silent input is otherwise many times slower) and freed activations kept in the heap.
    The first forward pass on the CPU builds PRESS's compiled kernels unless `press kernels build` did
    (press.model.kernels).
    """
    from press.model.pretrained import load as load_checkpoint

    net, cfg, extra = load_checkpoint(model, device=resolve_device(device))
    return Press(net, str(cfg.model.get("name", model)), extra)
