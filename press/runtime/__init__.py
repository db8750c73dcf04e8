"""A torch-free runtime for exported PRESS models (numpy + onnxruntime + scipy + soundfile).

    from press.runtime import load
    model = load("out/manifest.json")
    result = model.separate(mixture)                # (N,) float32 at model.sample_rate
    result.sources, result.exits, result.gmacs_per_second
    model.separate_file("in.wav", ["s1.wav", "s2.wav"], target_db=5)   # streamed; returns the report

A causal model's streaming export loads as an `OnnxStreamModel`:

    stream = load("rt/manifest.json").stream(target_db=5)   # or exit=K
    for chunk in chunks: blocks = stream.push(chunk)          # BlockOutput per block that left
    blocks = stream.end()

It is press.engine's loop (the one `press separate` runs with torch) over the graphs `press export`
wrote: the same segments, exit rule, policies, stitching and report. It imports no torch, and
nothing of press that does (an import-linter contract in pyproject.toml checks it).
"""

from press.engine.results import SeparationResult
from press.runtime.load import load
from press.runtime.model import OnnxModel
from press.runtime.stream import OnnxStream, OnnxStreamModel

RuntimeResult = SeparationResult   # what OnnxModel.separate returns, under the name this package gives it

__all__ = ["OnnxModel", "OnnxStream", "OnnxStreamModel", "RuntimeResult", "load"]
