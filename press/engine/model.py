"""A loaded model's front, the same whichever backend runs it: options checked and turned into an
exit policy, one run of the engine, the per-file report, and files streamed with bounded memory.

press.api.Press (torch) and press.runtime.OnnxModel (the exported graphs) build on it. They differ
only in how they set up a run for a cut and target (`separator`: press.inference.Separator, or an
`Engine` over the graphs) and where a compute budget's threshold comes from (`budget_threshold`:
measured with torch, or stored in the export).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from press.engine.operating_point import OperatingPoint
from press.engine.options import check_options
from press.engine.plan import SegmentPlan
from press.engine.policies import ExitPolicy, choose
from press.engine.report import file_report
from press.engine.results import SeparationResult
from press.errors import PressError
from press.io.audio import Channel
from press.io.streaming import Reader


class Separating(Protocol):
    """A run set up for one cut and target: press.engine.loop.Engine, or press.inference.Separator."""

    def plan(self, n_samples: int, utterance: bool = False) -> SegmentPlan: ...

    def run(self, reader: Reader, policy: ExitPolicy, sink: Callable[[int, np.ndarray], None] | None = None,
            utterance: bool = False, p_ref: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> SeparationResult: ...


class SeparationModel(ABC):
    name: str
    source_names: list[str]      # what each output is: speech, noise; or s1, s2, ... (speakers, no fixed order)
    sample_rate: int
    n_src: int
    n_exits: int
    backend_name: str | None = None   # named in the report when not torch ("onnx")
    operating_point: OperatingPoint = OperatingPoint()   # (t, p) when the caller names none

    @abstractmethod
    def separator(self, target_db: float = 20.0, confidence: float = 0.9, **options) -> Separating:
        """A run at this report target; options: segment, context (seconds), batch_size."""

    @abstractmethod
    def budget_threshold(self, separator: Separating, gmacs_per_second: float, plan: SegmentPlan) -> float:
        """The threshold on expected exit-SNR (dB) that spends `gmacs_per_second` on an input cut by `plan`."""

    def exit_policy(self, separator: Separating, plan: SegmentPlan, exit: int | None, budget: float | None,
                    quantile: float) -> ExitPolicy:
        return choose(self.n_exits, exit, budget, quantile,
                      lambda gmacs: self.budget_threshold(separator, gmacs, plan))

    def run(self, reader: Reader, target_db: float | None = None, confidence: float | None = None,
            exit: int | None = None,
            budget: float | None = None, quantile: float = 1.0, utterance: bool = False,
            sink: Callable[[int, np.ndarray], None] | None = None, **options) -> tuple[SeparationResult, ExitPolicy]:
        """Separate what `reader` holds (at the model's rate): the result and the policy it ran with.
        A target or confidence left None is the model's operating point's."""
        check_options(target_db, confidence, exit, budget, quantile, options)
        target_db, confidence = self.operating_point.resolve(target_db, confidence)
        separator = self.separator(target_db, confidence, **options)
        policy = self.exit_policy(separator, separator.plan(reader.n_samples, utterance), exit, budget, quantile)
        return separator.run(reader, policy, sink=sink, utterance=utterance), policy

    def report(self, result: SeparationResult, policy: ExitPolicy, target_db: float, confidence: float,
               input_rate: int) -> dict[str, Any]:
        return file_report(result, policy, model=self.name, sources=self.source_names,
                           model_sample_rate=self.sample_rate, sample_rate=input_rate, target_db=target_db,
                           confidence=confidence, n_exits=self.n_exits, backend=self.backend_name)

    def separate_file(self, path: str | os.PathLike, outputs: list[Path | None], target_db: float | None = None,
                      confidence: float | None = None, exit: int | None = None, budget: float | None = None,
                      channel: Channel = None, quantile: float = 1.0, progress: bool = False,
                      subtype: str = "FLOAT", **options) -> dict[str, Any]:
        """Stream `path` through the model into one file per source (at the input's rate); the report.

        Memory stays bounded whatever the length. Output files appear only when complete. A source
        whose path is None is not written. `subtype`: the WAV sample format (FLOAT: 32-bit float, as
        the model computes; PCM_16 or PCM_24, clipped to full scale).
        """
        from tqdm import tqdm

        from press.io.streaming import FileReader, SourceWriter

        if len(outputs) != self.n_src:
            raise PressError(f"the model separates {self.n_src} sources; {len(outputs)} output paths given")
        check_options(target_db, confidence, exit, budget, quantile, options)
        target_db, confidence = self.operating_point.resolve(target_db, confidence)
        separator = self.separator(target_db, confidence, **options)
        with FileReader(path, self.sample_rate, channel) as reader:
            plan = separator.plan(reader.n_samples)
            policy = self.exit_policy(separator, plan, exit, budget, quantile)
            with SourceWriter(outputs, self.sample_rate, reader.input_rate, n_output=reader.n_input,
                              subtype=subtype) as writer, \
                    tqdm(total=len(plan), unit="seg", disable=not progress, desc=Path(path).name) as bar:
                result = separator.run(reader, policy, sink=writer, on_batch=bar.update)
                writer.commit()
            return self.report(result, policy, target_db, confidence, reader.input_rate)
