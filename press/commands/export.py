"""`press export MODEL OUT_DIR [--format onnx] [--quantize int8]`: graphs for press.runtime.

Writes one ONNX graph for "mixture -> exit 1", one per "state at exit k -> exit k + 1", and
OUT_DIR/manifest.json (docs/deploy.md). `press separate --backend onnx OUT_DIR/manifest.json ...`
runs them with onnxruntime alone. A causal model (enhance-rt) gets its streaming graphs instead:
one likelihood block per call, its state in and out (press.export.onnx_stream), which
`press stream --backend onnx` and press.runtime.stream run.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model's name (default) or a .safetensors checkpoint")
    p.add_argument("out_dir", help="folder for the graphs and manifest.json")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="graph format (onnx)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="onnxruntime dynamic quantisation of the weights (int8)")
    p.add_argument("--no-budget", action="store_true",
                   help="leave out the budget calibration (the runtime's --budget mode needs it; measuring it "
                        "runs the model on the built-in validation mixtures)")


def run(args: argparse.Namespace) -> int:
    import json
    import warnings

    from press.api import load
    from press.export import export_onnx

    model = load(args.model, device="cpu")
    if model.model.cfg.causal:
        return _stream(model, args)
    # the torch backend's budget calibration, cut as the export's default segment and context
    budget = None if args.no_budget else model.budget_calibration(model.separator())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's tracer and deprecation warnings
        path = export_onnx(model.model, args.out_dir, name=model.name, recalibration=model.recalibration,
                           quantize=args.quantize, budget=budget, operating_point=model.operating_point)
    manifest = json.loads(path.read_text())
    for g in manifest["graphs"]:
        print(f"exit {g['exit']}: {path.parent / g['file']} ({g['bytes'] / 1e6:.2f} MB)")
    print(f"manifest: {path}")
    return 0


def _stream(model, args: argparse.Namespace) -> int:
    """The streaming graphs of a causal model (no budget calibration: a stream has no segments)."""
    import json
    import warnings

    from press.errors import PressError
    from press.export import export_onnx_stream

    if args.quantize:
        raise PressError("--quantize is for segment graphs; a causal model's stream graphs are float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx_stream(model.model, args.out_dir, name=model.name, recalibration=model.recalibration,
                                  operating_point=model.operating_point)
    manifest = json.loads(path.read_text())
    for g in manifest["graphs"]:
        print(f"exit {g['exit']} (one block of {manifest['block']} samples): {path.parent / g['file']} "
              f"({g['bytes'] / 1e6:.2f} MB)")
    print(f"manifest: {path}")
    return 0
