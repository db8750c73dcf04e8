"""Export a PRESS model to deployable graphs (ONNX) with a manifest the torch-free runtime reads:
segment graphs for a file (`export_onnx`), block graphs with their state for a causal model's
stream (`export_onnx_stream`)."""

from press.export.onnx import MANIFEST, export_onnx
from press.export.onnx_stream import export_onnx_stream

__all__ = ["MANIFEST", "export_onnx", "export_onnx_stream"]
