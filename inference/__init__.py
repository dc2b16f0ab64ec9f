"""Serving side of the pipeline: the ONNX model contract and the Flask service (onnxruntime only)."""

__version__ = "0.1.0"
