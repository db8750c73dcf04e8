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

import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from press.engine.block_runner import BUDGET_NEEDS_SEGMENTS, BlockRunner
from press.engine.model import SeparationModel
from press.engine.operating_point import OperatingPoint
from press.engine.options import check_options
from press.engine.plan import SegmentPlan
from press.errors import PressError
from press.inference.budget import BudgetCalibration
from press.inference.causal import causal_runner
from press.inference.runner import Separator
from press.io.audio import Channel, load_audio, resample, select_channel
from press.io.streaming import ArrayReader
from press.model import PressNet
from press.model.device import resolve_device
from press.prob.calibration import Recalibration

# Validation mixtures of the built-in corpus (noisy speech for an enhancement model) that the budget mode
# fits its threshold on, unless
# `Press.calibrate_budget` was given others (measured: docs/exits.md, "Compute budget").
BUDGET_CALIBRATION_MIXTURES = 10

# Integer arrays are PCM, scaled to [-1, 1) the way soundfile reads PCM files, so an array separates
# as the file holding it would: (offset, full scale) by kind and size; uint8 is 8-bit WAV's offset
# binary (128 is silence). Other integer types have no PCM convention to follow.
PCM_SCALES = {"i1": (0, 2.0 ** 7), "i2": (0, 2.0 ** 15), "i4": (0, 2.0 ** 31), "u1": (128, 2.0 ** 7)}
AUDIO_DTYPES = "float samples (nominally in [-1, 1]) or int8 / int16 / int32 / uint8 PCM"


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
        key = (separator.segment_samples, separator.context_samples, separator.cut.whole)
        if key not in self._budget_calibrations:
            mixtures = self._budget_mixtures
            if mixtures is None:
                from press.data import get_dataset

                ds = (get_dataset("noisy", split="val", sample_rate=self.sample_rate) if "speech" in self.source_names
                      else get_dataset("builtin", split="val", sample_rate=self.sample_rate, n_src=self.n_src))
                mixtures = [ds[i]["mixture"].numpy() for i in range(min(BUDGET_CALIBRATION_MIXTURES, len(ds)))]
            self._budget_calibrations[key] = BudgetCalibration.measure(separator, mixtures)
        return self._budget_calibrations[key]

    def separator(self, target_db: float = 20.0, confidence: float = 0.9, segment: float | None = None,
                  context: float | None = None, batch_size: int = 8) -> Separator | BlockRunner:
        """The run for these settings: a causal model with no segment or context asked for runs as
        one stream (press.engine.block_runner: its state never restarts); any other in segments of
        `segment` seconds with `context` on each side (default: the model's operating point's, with
        the inputs it runs whole)."""
        if self.model.cfg.causal and segment is None and context is None:
            return causal_runner(self.model, target_db, confidence, self.recalibration)
        segment, context, whole = self.operating_point.cut(segment, context)
        return Separator(self.model, segment=segment, context=context, whole=whole, target_db=target_db,
                         confidence=confidence, batch_size=batch_size, recalibration=self.recalibration)

    def budget_threshold(self, separator: Separator | BlockRunner, gmacs_per_second: float, plan: SegmentPlan
                         ) -> float:
        if isinstance(separator, BlockRunner):
            raise PressError(BUDGET_NEEDS_SEGMENTS)
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

        An array holds float samples or integer PCM (int8, int16, int32, uint8: scaled to [-1, 1)
        as a PCM file is read); the sources come back as float32. Anything else (bool, complex,
        object, NaN or Inf samples, an empty array, a non-integer or non-positive `sample_rate`) is
        refused with a PressError saying what was expected.
        """
        check_options(target_db, confidence, exit, budget, quantile, separator_options)
        if isinstance(audio, (str, os.PathLike)):
            if not os.fspath(audio):   # Path("") is the current folder
                raise PressError("the audio path is empty")
            x, rate = load_audio(audio, channel=channel)
        else:
            x = mono_samples(audio, channel)
            rate = self.sample_rate if sample_rate is None else checked_rate(sample_rate)
        inner = resample(x, rate, self.sample_rate) if rate != self.sample_rate else x
        if inner.size == 0:   # soxr rounds a few samples at a high rate down to none at the model's
            raise PressError(f"the audio is too short: {len(x)} sample(s) at {rate} Hz make no sample at "
                             f"the model's {self.sample_rate} Hz")
        target_db, confidence = self.operating_point.resolve(target_db, confidence)
        result, policy = self.run(ArrayReader(inner), target_db, confidence, exit, budget, quantile, utterance,
                                  **separator_options)
        sources = result.sources
        if rate != self.sample_rate:
            sources = np.stack([resample(s, self.sample_rate, rate)[: len(x)] for s in sources])
            sources = np.pad(sources, ((0, 0), (0, len(x) - sources.shape[1])))
        return Separation(sources, rate, self.report(result, policy, target_db, confidence, rate))


def audio_array(audio: Any) -> np.ndarray:
    """The audio's samples as a real float array (integer PCM scaled to [-1, 1)), or a PressError
    that says why they are not audio: a silent cast would turn complex, bool or text into noise."""
    if isinstance(audio, torch.Tensor):
        t = audio.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
            t = t.float()   # bfloat16 and the float8s have no numpy dtype
        try:
            x = t.numpy()
        except (TypeError, RuntimeError) as err:
            raise PressError(f"a tensor of dtype {t.dtype} is not audio: pass {AUDIO_DTYPES} ({err})") from None
    else:
        try:
            x = np.asarray(audio)
        except (TypeError, ValueError) as err:   # e.g. ragged nested lists
            raise PressError(f"the audio is not an array of samples ({err})") from None
    kind = x.dtype.kind
    if kind == "f":
        return x
    if kind in "iu" and f"{kind}{x.dtype.itemsize}" in PCM_SCALES:
        offset, full_scale = PCM_SCALES[f"{kind}{x.dtype.itemsize}"]
        return (x.astype(np.float32) - np.float32(offset)) / np.float32(full_scale)
    what = {"b": "bool", "c": "complex (separation takes real audio: pass x.real if that is meant)",
            "i": f"{x.dtype} (no PCM scale)", "u": f"{x.dtype} (no PCM scale)"}.get(kind, str(x.dtype))
    raise PressError(f"audio of dtype {what} is not accepted: pass {AUDIO_DTYPES}")


def mono_samples(audio: Any, channel: Channel) -> np.ndarray:
    """An array given to `Press.separate` as one finite float32 channel, or a PressError.

    Arrays are (samples,) or (channels, samples). One with more channels than samples is refused
    rather than read as thousands of channels: it is almost surely (samples, channels).
    """
    x = audio_array(audio)
    if x.ndim not in (1, 2):
        raise PressError(f"expected audio of shape (samples,) or (channels, samples), got {x.shape}")
    if x.size == 0:
        raise PressError(f"the audio holds no samples (shape {x.shape})")
    if x.ndim == 2 and x.shape[0] > x.shape[1]:
        raise PressError(f"audio of shape {x.shape} has more channels than samples: arrays are "
                         "(channels, samples); pass audio.T for a (samples, channels) array")
    if not np.isfinite(x).all():
        raise PressError("the audio holds NaN or Inf samples")
    if x.ndim == 2:
        x = select_channel(x.T, channel, "the audio", allow_all=False)
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():   # finite float64 samples, or a channel mix, beyond float32's range
        raise PressError(f"the audio's samples exceed float32's range (±{np.finfo(np.float32).max:.3g}); "
                         "scale it down")
    return x


def checked_rate(sample_rate: Any) -> int:
    """An array's sample rate: a positive whole number of Hz. A float is refused rather than rounded,
    since 44100.5 says the caller's rate is not what they think it is."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise PressError(f"sample_rate must be a positive whole number of Hz (an int), got {sample_rate!r}")
    return int(sample_rate)


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
