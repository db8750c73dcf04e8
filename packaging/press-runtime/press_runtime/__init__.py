"""PRESS's torch-free runtime: models exported by `press export` run with early exits on onnxruntime.

    import press_runtime
    model = press_runtime.load("out/manifest.json")
    result = model.separate(mixture)                # (N,) float32 at model.sample_rate
    result.sources, result.exits, result.gmacs_per_second
    model.separate_file("in.wav", ["s1.wav", "s2.wav"], target_db=5)   # streamed; returns the report

This is press-sep's `press.runtime` (and the engine, audio and error modules under it) built as a
distribution of its own, press-runtime, so that a deployment installs numpy, scipy, soundfile, soxr and
onnxruntime but no torch. Its modules are press's, under this package's name (press_runtime.engine is
press.engine, press_runtime.errors.PressError is what it raises), so that both distributions can be
installed together. The command line is `press-runtime separate` (press_runtime.cli).
"""

from press_runtime.errors import PressError
from press_runtime.runtime import OnnxModel, RuntimeResult, load
from press_runtime.version import __version__

__all__ = ["OnnxModel", "PressError", "RuntimeResult", "__version__", "load"]
