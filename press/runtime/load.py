"""`load`: an export's manifest.json, checked, with an onnxruntime session per graph: segment graphs
(`OnnxModel`, press.runtime.model) or a causal model's stream graphs (`OnnxStreamModel`,
press.runtime.stream), told apart by the manifest's format."""

from __future__ import annotations

from pathlib import Path

from press.errors import PressError
from press.runtime import stream
from press.runtime.model import (
    FORMAT,
    FORMAT_VERSION,
    OnnxModel,
    check_budget_calibration,
    check_manifest,
    is_int,
    open_sessions,
    read_json,
    verified,
)


def load(manifest: str | Path, threads: int | None = None, check_hashes: bool = True) -> OnnxModel | stream.OnnxStreamModel:
    """An exported model from its manifest.json: an `OnnxModel`, or for a causal model's streaming
    export an `OnnxStreamModel` (press.runtime.stream); every graph's sha256 is checked against it.

    Whatever is wrong with an export (a field missing or of the wrong type, another format or
    version, a graph missing, changed, truncated or not matching the manifest's inputs and outputs)
    is a PressError that names the file and the problem, never an onnxruntime traceback.
    """
    if threads is not None and (not is_int(threads) or threads < 1):
        raise PressError(f"threads must be a positive whole number, got {threads!r}")
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise PressError(f"{path}: no such manifest (press export MODEL OUT_DIR writes OUT_DIR/manifest.json)")
    m = read_json(path, "manifest")
    formats = {FORMAT: FORMAT_VERSION, stream.FORMAT: stream.FORMAT_VERSION}
    if not isinstance(m, dict) or not isinstance(m.get("format"), str) or m["format"] not in formats:
        raise PressError(f"{path}: not a PRESS export manifest (no format {FORMAT!r} or {stream.FORMAT!r})")
    version = formats[m["format"]]
    if not is_int(m.get("version")) or m["version"] != version:
        raise PressError(f"{path}: export format version {m.get('version')!r} is not {version}; re-export")
    if m["format"] == stream.FORMAT:
        stream.check_manifest(m, path)
        return stream.OnnxStreamModel(m, open_sessions(path, m, threads, check_hashes))
    check_manifest(m, path)
    sessions = open_sessions(path, m, threads, check_hashes)
    calibration = None
    if m.get("budget_calibration"):
        file = verified(path, m["budget_calibration"], "budget calibration", check_hashes)
        calibration = read_json(file, "budget calibration")
        check_budget_calibration(calibration, m["n_exits"], file)
    return OnnxModel(m, sessions, calibration)
