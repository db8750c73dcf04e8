"""Export a PRESS model to deployable graphs (ONNX) with a manifest the torch-free runtime reads."""

from press.export.onnx import MANIFEST, export_onnx

__all__ = ["MANIFEST", "export_onnx"]
