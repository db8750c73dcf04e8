"""A torch-free runtime for exported PRESS models (numpy + onnxruntime + scipy + soundfile).

    from press.runtime import load
    model = load("out/manifest.json")
    result = model.separate(mixture)                # (N,) float32 at model.sample_rate
    result.sources, result.exits, result.gmacs_per_second

It runs the segment-wise dynamic inference of `press separate` (press.inference.Separator) on
the graphs `press export` wrote: cut with context, run exit by exit, P(exit-SNR >= t) from alpha,
beta with the same formulas, drop segments that exit, align speakers and stitch. It imports no
torch, and nothing of press that does (an import-linter contract in pyproject.toml checks it).
"""

from press.runtime.engine import OnnxModel, RuntimeResult, load

__all__ = ["OnnxModel", "RuntimeResult", "load"]
