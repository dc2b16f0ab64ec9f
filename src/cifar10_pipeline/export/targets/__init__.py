"""``cifar10-targets``: the exported float file made into each runtime users deploy to, and proven on each.

Beside the model (``models/model.onnx``) it writes a Triton / KServe model repository (``triton``), the ORT format
file a reduced onnxruntime build reads (``ort_format``), then runs the whole test set of the model's data set
through every target and holds each to the float file on onnxruntime's CPU provider (``table``): the INT8 twin
when the export made one, the ``.ort`` file, onnxruntime's OpenVINO execution provider (in its own environment,
through ``worker``), onnxruntime-web in headless Chromium (``browser``), and the Triton configuration (checked
with Triton's own protobuf, not run). Every engine is an ``export.converter.Runner``.

Modules that other environments run (``worker``, ``latency``, ``triton_config``) import numpy, onnxruntime and
the contract at most: this package's ``__init__`` imports nothing, so those environments need no onnx or tqdm.
"""
