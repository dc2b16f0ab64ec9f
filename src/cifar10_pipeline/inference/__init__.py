"""Serving side of the pipeline: the Flask service on onnxruntime alone (no training framework)."""
