"""An exported model loaded with onnxruntime: the ONNX backend of press.engine, without torch.

`OnnxModel` runs the graphs `press export` wrote (press.export.onnx): `exit_1.onnx` on a batch of
windows, then `exit_k.onnx` on the state exit k - 1 left. Everything else, from the segment plan to
the report, is press.engine's, the same loop and front the torch backend (press.api.Press) runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from press.engine.backend import Exit, exit_scales
from press.engine.loop import Engine
from press.engine.model import SeparationModel
from press.engine.operating_point import OperatingPoint
from press.engine.plan import Cut, SegmentPlan
from press.engine.results import SeparationResult
from press.engine.thresholds import budget_threshold
from press.errors import PressError
from press.io.files import sha256_file
from press.io.streaming import ArrayReader, Reader

FORMAT = "press-onnx"   # as written by press.export.onnx
FORMAT_VERSION = 1


@dataclass
class OnnxModel(SeparationModel):
    """An exported model: its manifest, one onnxruntime session per exit step and, unless exported
    with --no-budget, its budget calibration (budget_calibration.json: every calibration segment's
    expected quality at every exit, measured with torch and cut with the manifest's segment and context)."""

    manifest: dict
    sessions: list = field(repr=False)
    budget_calibration: dict | None = field(default=None, repr=False)

    backend_name = "onnx"

    def __post_init__(self) -> None:
        m = self.manifest
        self.name, self.sample_rate, self.block = m["model"], m["sample_rate"], m["block"]
        self.n_src, self.n_exits, self.gmacs = m["n_src"], m["n_exits"], m["gmacs_per_second"]
        self.sources = m.get("sources")
        self.source_names = self.sources or [f"s{j + 1}" for j in range(self.n_src)]
        self.operating_point = OperatingPoint.from_dict(m.get("operating_point"))

    # ------------------------------------------------------------------ the backend (press.engine.backend)

    def first(self, windows: np.ndarray, lengths: np.ndarray, levels: np.ndarray) -> tuple[Exit, dict]:
        """Exit 1 of windows (N, W), zero-padded here to the graphs' `pad_multiple`."""
        W, mult = windows.shape[1], self.manifest["pad_multiple"]
        Wp = -(-W // mult) * mult
        if Wp > self.manifest["max_window_samples"]:
            raise PressError(f"a window of {W} samples is longer than the exported graphs take "
                             f"({self.manifest['max_window_samples']}); use a shorter segment")
        x = np.zeros((windows.shape[0], Wp), dtype=np.float32)
        x[:, :W] = windows
        scale = levels.astype(np.float32)
        out = self.sessions[0].run(None, {"mixture": x, "lengths": lengths.astype(np.int64), "scale": scale})
        names = self.manifest["graphs"][0]["outputs"]
        state = {n: v for n, v in zip(names[3:], out[3:])}
        state.update(scale=scale, _length=W, _exit=1)
        return self._crop(out[:3], W), state

    def advance(self, state: dict) -> tuple[Exit, dict]:
        k = state["_exit"] + 1
        graph = self.manifest["graphs"][k - 1]
        out = self.sessions[k - 1].run(None, {n: state[n] for n in graph["inputs"]})
        new = {**state, "_exit": k}
        for name, value in zip(graph["outputs"][3:], out[3:]):
            new[name.removesuffix("_out")] = value
        return self._crop(out[:3], state["_length"]), new

    def select(self, state: dict, keep: np.ndarray) -> dict:
        return {n: (v if n.startswith("_") else v[keep]) for n, v in state.items()}

    def _crop(self, out: list[np.ndarray], W: int) -> Exit:
        """The outputs over the real window: W samples, W / block blocks."""
        nb = W // self.block
        return Exit(out[0][..., :W], out[1][..., :nb], out[2][..., :nb])

    def run_exits(self, windows: np.ndarray, lengths: np.ndarray, levels: np.ndarray) -> list[Exit]:
        """Every exit's outputs (recalibration not applied) for windows (N, W)."""
        out, state = self.first(windows, lengths, levels)
        outs = [out]
        for _ in range(2, self.n_exits + 1):
            out, state = self.advance(state)
            outs.append(out)
        return outs

    # ------------------------------------------------------------------ the front (press.engine.model)

    def separator(self, target_db: float = 20.0, confidence: float = 0.9, segment: float | None = None,
                  context: float | None = None, batch_size: int = 8) -> Engine:
        """The engine over these graphs; segment and context default to the manifest's."""
        m = self.manifest
        cut = Cut.from_seconds(m["segment"] if segment is None else segment,
                               m["context"] if context is None else context, self.sample_rate, self.block)
        return Engine(self, cut, exit_scales(m["recalibration"], self.n_exits), target_db, confidence, batch_size)

    def budget_threshold(self, separator: Engine, gmacs_per_second: float, plan: SegmentPlan) -> float:
        """The threshold the export's budget calibration gives, for the cut it was measured with only."""
        cal, sr = self.budget_calibration, self.sample_rate
        if cal is None:
            raise PressError("this export has no budget calibration (exported with --no-budget); "
                             "export again without it to use --budget")
        if (cal["segment_samples"], cal["context_samples"]) != (separator.cut.segment, separator.cut.context):
            raise PressError(f"the budget calibration was measured with {cal['segment_samples'] / sr:g} s "
                             f"segments and {cal['context_samples'] / sr:g} s context; --budget needs those")
        return budget_threshold(np.asarray(cal["quality"], dtype=np.float64),
                                np.asarray(cal["gmacs_per_second"], dtype=np.float64), gmacs_per_second, plan)

    def separate(self, audio: np.ndarray | Reader, target_db: float | None = None, confidence: float | None = None,
                 exit: int | None = None, quantile: float = 1.0, segment: float | None = None,
                 context: float | None = None, batch_size: int = 8, utterance: bool = False,
                 sink: Callable[[int, np.ndarray], None] | None = None,
                 budget: float | None = None) -> SeparationResult:
        """Separate a mono signal at the model's rate (an array or a press.io Reader), as
        `press.load(...).separate(x, ...)` does: a target (t, p), a fixed `exit`, or a `budget` in
        GMAC/s (the export's calibration gives its threshold)."""
        reader = ArrayReader(audio) if isinstance(audio, np.ndarray) else audio
        result, _ = self.run(reader, target_db, confidence, exit, budget, quantile, utterance, sink,
                             segment=segment, context=context, batch_size=batch_size)
        return result


def load(manifest: str | Path, threads: int | None = None, check_hashes: bool = True) -> OnnxModel:
    """An exported model from its manifest.json; every graph's sha256 is checked against it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PressError("the ONNX backend needs onnxruntime: pip install 'press-sep[export]'") from None
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise PressError(f"{path}: no such manifest (press export MODEL OUT_DIR writes OUT_DIR/manifest.json)")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PressError(f"{path}: not a PRESS export manifest ({err})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise PressError(f"{path}: not a PRESS export manifest (no format {FORMAT!r})")
    if m.get("version") != FORMAT_VERSION:
        raise PressError(f"{path}: export format version {m.get('version')} is not {FORMAT_VERSION}; re-export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    sessions = []

    def verified(entry: dict, what: str) -> Path:
        """The file a manifest entry names, present and (unless told not to check) unchanged."""
        file = path.parent / entry["file"]
        if not file.is_file():
            raise PressError(f"{file}: {what} named in the manifest is missing")
        if check_hashes and sha256_file(file) != entry["sha256"]:
            raise PressError(f"{file}: sha256 does not match the manifest: the {what} was changed or "
                             "damaged after export; export again")
        return file

    for g in m["graphs"]:
        sessions.append(ort.InferenceSession(str(verified(g, "graph")), options,
                                             providers=["CPUExecutionProvider"]))
    calibration = None
    if m.get("budget_calibration"):
        calibration = json.loads(verified(m["budget_calibration"], "budget calibration").read_text())
    return OnnxModel(m, sessions, calibration)
