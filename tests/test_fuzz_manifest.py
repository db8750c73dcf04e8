"""The ONNX runtime's loader (`press.runtime.load`) on damaged exports: a manifest with fields missing,
of the wrong type, of another format or version, naming files outside its folder; a graph missing,
changed by a byte, truncated or swapped. Each is a PressError that names the problem, never a
KeyError, TypeError or onnxruntime traceback. The tiny model is exported once; copies are damaged."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from press.errors import PressError
from press.export import export_onnx
from press.model.checkpoint import load_model
from press.runtime import OnnxModel, load


@pytest.fixture(scope="module")
def export(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny model's export folder (graphs and manifest.json)."""
    net, _, _ = load_model(tiny_checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's notes
        return export_onnx(net, tmp_path_factory.mktemp("export"), name="tiny").parent


@pytest.fixture(scope="module")
def manifest(export) -> dict:
    return json.loads((export / "manifest.json").read_text())


def damaged_copy(export: Path, dst: Path, manifest: dict | None = None) -> Path:
    """A copy of the export folder in dst, with `manifest` written as its manifest.json if given."""
    shutil.copytree(export, dst)
    if manifest is not None:
        (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst / "manifest.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_intact_copy_loads_and_separates(export, tmp_path) -> None:
    model = load(damaged_copy(export, tmp_path / "x"), threads=1)
    result = model.separate(np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1)
    assert result.sources.shape == (2, 4000) and np.isfinite(result.sources).all()


def drop(key: str) -> Callable[[dict], None]:
    return lambda m: m.pop(key)


def put(value: Any, *keys: str | int) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        target = m
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


@pytest.mark.parametrize("change,message", [
    (drop("format"), "not a PRESS export manifest"),
    (put("press-onnx-2", "format"), "not a PRESS export manifest"),
    (put(["press-onnx"], "format"), "not a PRESS export manifest"),
    (drop("version"), "version None is not 1"),
    (put(2, "version"), "version 2 is not 1"),
    (put("1", "version"), "version '1' is not 1"),
    (put(True, "version"), "version True is not 1"),
    *[(drop(key), f"'{key}' must be .*got missing") for key in
      ("model", "sample_rate", "n_src", "n_exits", "block", "pad_multiple", "max_window_samples", "segment",
       "context", "gmacs_per_second", "recalibration", "graphs", "patch", "scan_chunk")],
    (put("8000", "sample_rate"), "'sample_rate' must be a positive whole number, got '8000'"),
    (put(0, "block"), "'block' must be a positive whole number, got 0"),
    (put(3.0, "n_exits"), "'n_exits' must be a positive whole number"),
    (put(True, "n_src"), "'n_src' must be a positive whole number"),
    (put(1200, "pad_multiple"), "'pad_multiple' must be 800 .*got 1200"),
    (put(0, "scan_chunk"), "'scan_chunk' must be a positive whole number"),
    (put(None, "pad_multiple"), "'pad_multiple'"),
    (put(float("nan"), "segment"), "'segment' must be a positive number"),
    (put(-0.5, "context"), "'context' must be a number of seconds >= 0"),
    (put([1.0, 2.0], "gmacs_per_second"), "'gmacs_per_second' must be a list of 3 positive numbers"),
    (put([1.0, "2", 3.0], "gmacs_per_second"), "'gmacs_per_second'"),
    (put({"a": 1}, "gmacs_per_second"), "'gmacs_per_second'"),
    (put(["s1"], "sources"), "'sources' must be null or a list of 2 names"),
    (put("s1 s2", "sources"), "'sources'"),
    (put({"alpha_scale": 1.0}, "recalibration"), "'recalibration' must be alpha_scale and beta_scale"),
    (put({"alpha_scale": [1.0, 1.0, 1.0], "beta_scale": 1.0}, "recalibration"), "'recalibration'"),
    (put([1.0, 1.0], "recalibration"), "'recalibration' must be an object"),
    (put({"target_db": "high"}, "operating_point"), "malformed operating point"),
    (put({"graphs": 3}, "graphs"), "'graphs' must be a list of 3 graphs"),
    (put(None, "graphs", 1), r"'graphs\[1\]' must be an object for exit 2"),
    (put(3, "graphs", 1, "exit"), r"'graphs\[1\]' must be an object for exit 2"),
    (put("../exit_2.onnx", "graphs", 1, "file"), r"'graphs\[1\].file' must be a file name in the manifest's folder"),
    (put("/etc/passwd", "graphs", 0, "file"), r"'graphs\[0\].file'"),
    (put("", "graphs", 0, "file"), r"'graphs\[0\].file'"),
    (put(7, "graphs", 0, "file"), r"'graphs\[0\].file'"),
    (put(None, "graphs", 2, "sha256"), r"'graphs\[2\].sha256' must be a sha256"),
    (put("abc", "graphs", 2, "sha256"), r"'graphs\[2\].sha256'"),
    (put("mixture", "graphs", 0, "inputs"), r"'graphs\[0\].inputs' must be a list"),
    (put(["estimate"], "graphs", 1, "outputs"), r"'graphs\[1\].outputs' must be a list of at least 3"),
    (put(["mix", "lengths", "scale"], "graphs", 0, "inputs"), "graph's inputs and outputs .* are not the manifest's"),
    (put("budget.json", "budget_calibration"), "'budget_calibration' must be null or an object"),
    (put({"file": "budget.json"}, "budget_calibration"), r"'budget_calibration.sha256'"),
])
def test_a_damaged_manifest_is_refused_with_the_field_named(export, manifest, tmp_path, change, message) -> None:
    m = copy.deepcopy(manifest)
    change(m)
    with pytest.raises(PressError, match=message):
        load(damaged_copy(export, tmp_path / "x", m))


@pytest.mark.parametrize("text,message", [
    ("", "not a PRESS export manifest"),
    ("{", "not a PRESS export manifest"),
    ("[1, 2]", "not a PRESS export manifest"),
    ("null", "not a PRESS export manifest"),
    ("\udcff", "not a PRESS export manifest"),
])
def test_a_manifest_that_is_not_a_json_object_is_refused(export, tmp_path, text, message) -> None:
    path = damaged_copy(export, tmp_path / "x")
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(PressError, match=message):
        load(path)


def test_a_missing_graph_is_named(export, tmp_path) -> None:
    path = damaged_copy(export, tmp_path / "x")
    (path.parent / "exit_2.onnx").unlink()
    with pytest.raises(PressError, match="exit_2.onnx: graph named in the manifest is missing"):
        load(path)


@pytest.mark.parametrize("where", [0, 100, -1])
def test_a_changed_byte_in_a_graph_fails_its_checksum(export, tmp_path, where) -> None:
    path = damaged_copy(export, tmp_path / "x")
    graph = path.parent / "exit_3.onnx"
    data = bytearray(graph.read_bytes())
    data[where] ^= 0x01
    graph.write_bytes(bytes(data))
    with pytest.raises(PressError, match="exit_3.onnx: sha256 does not match the manifest"):
        load(path)


@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.99])
def test_a_truncated_graph_is_refused_with_and_without_the_checksum(export, tmp_path, keep) -> None:
    path = damaged_copy(export, tmp_path / "x")
    graph = path.parent / "exit_1.onnx"
    data = graph.read_bytes()
    graph.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(PressError, match="exit_1.onnx: sha256 does not match"):
        load(path)
    with pytest.raises(PressError, match="exit_1.onnx: onnxruntime cannot load this graph"):
        load(path, check_hashes=False)


def test_a_graph_swapped_for_another_with_its_checksum_updated_is_refused(export, manifest, tmp_path) -> None:
    """The hashes match, but exit 1's file holds exit 2's graph: its inputs are not exit 1's."""
    m = copy.deepcopy(manifest)
    m["graphs"][0]["file"], m["graphs"][0]["sha256"] = "exit_2.onnx", sha256(export / "exit_2.onnx")
    with pytest.raises(PressError, match="exit_2.onnx: the graph's inputs and outputs"):
        load(damaged_copy(export, tmp_path / "x", m))


@pytest.mark.parametrize("content,loads", [
    ({"segment_samples": 32000, "context_samples": 4000, "gmacs_per_second": [0.1, 0.2, 0.3],
      "quality": [[1.0, 2.0, 3.0]]}, True),
    ({"segment_samples": 32000, "context_samples": 4000, "gmacs_per_second": [0.1, 0.2],
      "quality": [[1.0, 2.0, 3.0]]}, False),
    ({"segment_samples": "32000", "context_samples": 4000, "gmacs_per_second": [0.1, 0.2, 0.3],
      "quality": [[1.0, 2.0, 3.0]]}, False),
    ({"segment_samples": 32000, "context_samples": 4000, "gmacs_per_second": [0.1, 0.2, 0.3],
      "quality": []}, False),
    ([1, 2, 3], False),
])
def test_a_budget_calibration_file_is_checked(export, manifest, tmp_path, content, loads) -> None:
    folder = tmp_path / "x"
    m = copy.deepcopy(manifest)
    damaged_copy(export, folder)
    budget = folder / "budget_calibration.json"
    budget.write_text(json.dumps(content))
    m["budget_calibration"] = {"file": budget.name, "sha256": sha256(budget)}
    (folder / "manifest.json").write_text(json.dumps(m))
    if loads:
        assert load(folder).budget_calibration == content
    else:
        with pytest.raises(PressError, match="budget_calibration.json: not a budget calibration for 3 exits"):
            load(folder)


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_thread_counts_are_checked(export, threads) -> None:
    with pytest.raises(PressError, match="threads must be a positive whole number"):
        load(export, threads=threads)


# ------------------------------------------------------------------ any change to any field

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["exit_1.onnx", "../manifest.json", "/dev/zero", "0" * 64]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (dict keys and list indices), the root excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    out = []
    for k, v in children:
        out.append((*prefix, k))
        out.extend(paths_in(v, (*prefix, k)))
    return out


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_field_replaced_or_removed_loads_or_is_a_press_error(export, manifest, tmp_path_factory, data) -> None:
    """One field anywhere in the manifest (graph entries included) replaced by any JSON value or
    removed: the loader returns a model or raises a PressError, nothing else."""
    m = copy.deepcopy(manifest)
    where = data.draw(st.sampled_from(paths_in(m)), label="field")
    parent = m
    for k in where[:-1]:
        parent = parent[k]
    if data.draw(st.booleans(), label="remove") and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON_VALUES, label="value")
    path = damaged_copy(export, tmp_path_factory.mktemp("fuzz") / "x", m)
    try:
        assert isinstance(load(path), OnnxModel)
        event("loaded")   # a field the runtime does not read, or a value it takes
    except PressError as err:
        assert str(path.parent) in str(err) or "operating point" in str(err)
        event("refused")


@pytest.mark.parametrize("options,name", [({"segment": float("nan")}, "segment"), ({"context": float("inf")}, "context"),
                                          ({"target_db": float("nan")}, "target_db"), ({"batch_size": 0}, "batch_size")])
def test_the_runtime_checks_its_options_as_the_api_does(export, options, name) -> None:
    model = load(export / "manifest.json", threads=1)
    with pytest.raises(PressError, match=name):
        model.separate(np.zeros(4000, np.float32), **options)
