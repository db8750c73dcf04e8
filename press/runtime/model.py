"""An exported model loaded with onnxruntime: the ONNX backend of press.engine, without torch.

`OnnxModel` runs the graphs `press export` wrote (press.export.onnx): `exit_1.onnx` on a batch of
windows, then `exit_k.onnx` on the state exit k - 1 left. Everything else, from the segment plan to
the report, is press.engine's, the same loop and front the torch backend (press.api.Press) runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
MISSING = object()   # a manifest field that is not there (null is a value)


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
        """The engine over these graphs; segment and context default to the manifest's, with the inputs
        its operating point runs whole."""
        m = self.manifest
        _, _, whole = self.operating_point.cut(segment, context)   # `whole` only where no cut is named
        cut = Cut.from_seconds(m["segment"] if segment is None else segment,
                               m["context"] if context is None else context, self.sample_rate, self.block, whole)
        return Engine(self, cut, exit_scales(m["recalibration"], self.n_exits), target_db, confidence, batch_size)

    def budget_threshold(self, separator: Engine, gmacs_per_second: float, plan: SegmentPlan) -> float:
        """The threshold the export's budget calibration gives, for the cut it was measured with only."""
        cal, sr = self.budget_calibration, self.sample_rate
        if cal is None:
            raise PressError("this export has no budget calibration (exported with --no-budget); "
                             "export again without it to use --budget")
        measured = (cal["segment_samples"], cal["context_samples"], cal.get("whole_samples", 0))
        if measured != (separator.cut.segment, separator.cut.context, separator.cut.whole):
            raise PressError(f"the budget calibration was measured with {cal['segment_samples'] / sr:g} s "
                             f"segments and {cal['context_samples'] / sr:g} s context (inputs up to "
                             f"{measured[2] / sr:g} s run whole); --budget needs those")
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


def verified(path: Path, entry: dict, what: str, check_hashes: bool) -> Path:
    """The file a manifest entry names (beside the manifest at `path`), present and (unless told
    not to check) unchanged."""
    file = path.parent / entry["file"]
    if not file.is_file():
        raise PressError(f"{file}: {what} named in the manifest is missing")
    if check_hashes and sha256_file(file) != entry["sha256"]:
        raise PressError(f"{file}: sha256 does not match the manifest: the {what} was changed or "
                         "damaged after export; export again")
    return file


def open_sessions(path: Path, m: dict, threads: int | None, check_hashes: bool) -> list:
    """An onnxruntime session per graph of a checked manifest, each verified and matching its
    entry's inputs and outputs."""
    try:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
    except ImportError:
        raise PressError("the ONNX backend needs onnxruntime: pip install 'press-sep[export]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # what onnxruntime raises for a file it cannot read or run (its own classes, not RuntimeError's)
    ort_failures = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph,
                    ort_errors.NoSuchFile, ort_errors.NotImplemented, ort_errors.RuntimeException, RuntimeError,
                    ValueError)
    sessions = []
    for g in m["graphs"]:
        file = verified(path, g, "graph", check_hashes)
        try:
            session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        except ort_failures as err:
            raise PressError(f"{file}: onnxruntime cannot load this graph (truncated or damaged?): "
                             f"{str(err).splitlines()[0][:300]}") from None
        names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        if names != (g["inputs"], g["outputs"]):
            raise PressError(f"{file}: the graph's inputs and outputs {names} are not the manifest's "
                             f"{(g['inputs'], g['outputs'])}; export again")
        sessions.append(session)
    return sessions


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PressError(f"{path}: not a PRESS export {what} ({err})") from None


def manifest_checks(m: dict, path: Path) -> tuple[Callable[[bool, str, str, Any], None], Callable[[str], Any]]:
    """(need, get) for checking manifest `m`: need(ok, field, expected, value) refuses it naming the
    field, get(key) is the field's value or MISSING."""
    def need(ok: bool, field: str, expected: str, value: Any) -> None:
        if not ok:
            shown = "missing" if value is MISSING else repr(value)[:80]
            raise PressError(f"{path}: manifest field {field!r} must be {expected}, got {shown}; export again")

    return need, lambda key: m.get(key, MISSING)


def check_manifest(m: dict, path: Path) -> None:
    """Refuse a manifest that lacks a field the runtime reads or holds one of the wrong type, naming
    the field. A manifest is a text file a user may edit, merge or copy in part; a KeyError or
    TypeError in the middle of a separation would not say which of its fields is wrong."""
    need, get = manifest_checks(m, path)
    need(isinstance(get("model"), str), "model", "the model's name", get("model"))
    for key in ("sample_rate", "n_src", "n_exits", "block", "patch", "scan_chunk", "pad_multiple",
                "max_window_samples"):
        need(is_int(get(key)) and get(key) > 0, key, "a positive whole number", get(key))
    multiple = math.lcm(m["block"], m["patch"] * m["scan_chunk"])   # what the graphs' frames need (export)
    need(m["pad_multiple"] == multiple, "pad_multiple", f"{multiple} (for block, patch and scan_chunk)",
         m["pad_multiple"])
    need(is_number(get("segment")) and get("segment") > 0, "segment", "a positive number of seconds",
         get("segment"))
    need(is_number(get("context")) and get("context") >= 0, "context", "a number of seconds >= 0",
         get("context"))
    n_exits, n_src = m["n_exits"], m["n_src"]
    each_exit = f"a list of {n_exits} positive numbers (one per exit)"
    gmacs = get("gmacs_per_second")
    need(isinstance(gmacs, list) and len(gmacs) == n_exits and all(is_number(g) and g > 0 for g in gmacs),
         "gmacs_per_second", each_exit, gmacs)
    sources = m.get("sources")
    need(sources is None or (isinstance(sources, list) and len(sources) == n_src
                             and all(isinstance(x, str) for x in sources)),
         "sources", f"null or a list of {n_src} names", sources)
    recal = get("recalibration")
    need(isinstance(recal, dict), "recalibration", "an object with alpha_scale and beta_scale", recal)
    scales = [recal.get("alpha_scale", MISSING), recal.get("beta_scale", MISSING)]
    need(all(is_number(a) and a > 0 for a in scales)
         or all(isinstance(a, list) and len(a) == n_exits and all(is_number(x) and x > 0 for x in a)
                for a in scales),
         "recalibration", f"alpha_scale and beta_scale both positive numbers or both {each_exit}", recal)
    OperatingPoint.from_dict(m.get("operating_point"))   # a malformed one: PressError
    graphs = get("graphs")
    need(isinstance(graphs, list) and len(graphs) == n_exits, "graphs", f"a list of {n_exits} graphs", graphs)
    for k, g in enumerate(graphs, start=1):
        where = f"graphs[{k - 1}]"
        need(isinstance(g, dict) and g.get("exit") == k and is_int(g["exit"]), where,
             f"an object for exit {k}", g)
        check_file_entry(g, where, need)
        for key, least in (("inputs", 1), ("outputs", 3)):   # outputs: estimate, alpha, beta, then the state
            names = g.get(key, MISSING)
            need(isinstance(names, list) and len(names) >= least and all(isinstance(x, str) for x in names),
                 f"{where}.{key}", f"a list of at least {least} tensor names", names)
    budget = m.get("budget_calibration")
    need(budget is None or isinstance(budget, dict), "budget_calibration", "null or an object", budget)
    if budget:
        check_file_entry(budget, "budget_calibration", need)


def check_file_entry(entry: dict, where: str, need: Callable[[bool, str, str, Any], None]) -> None:
    """A manifest entry's file is a plain name in the manifest's folder (nothing elsewhere on the
    machine is opened on a manifest's word) with a sha256 to check it against."""
    file = entry.get("file", MISSING)
    need(isinstance(file, str) and file not in ("", ".", "..") and Path(file).name == file
         and "\\" not in file, f"{where}.file", "a file name in the manifest's folder", file)
    digest = entry.get("sha256", MISSING)
    need(isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) is not None, f"{where}.sha256",
         "a sha256 (64 hexadecimal digits)", digest)


def check_budget_calibration(cal: Any, n_exits: int, path: Path) -> None:
    """budget_calibration.json holds what `OnnxModel.budget_threshold` reads, per exit."""
    rows = cal.get("quality") if isinstance(cal, dict) else None
    ok = (isinstance(cal, dict) and is_int(cal.get("segment_samples")) and is_int(cal.get("context_samples"))
          and is_int(cal.get("whole_samples", 0)) and cal.get("whole_samples", 0) >= 0
          and isinstance(cal.get("gmacs_per_second"), list) and len(cal["gmacs_per_second"]) == n_exits
          and all(is_number(g) and g > 0 for g in cal["gmacs_per_second"])
          and isinstance(rows, list) and len(rows) > 0
          and all(isinstance(r, list) and len(r) == n_exits
                  and all(isinstance(q, (int, float)) and not isinstance(q, bool) for q in r) for r in rows))
    if not ok:
        raise PressError(f"{path}: not a budget calibration for {n_exits} exits (segment_samples, "
                         "context_samples, gmacs_per_second, quality per segment and exit); export again")
