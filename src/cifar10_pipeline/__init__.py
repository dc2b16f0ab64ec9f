"""cifar10-pipeline: train one CNN with PyTorch or TensorFlow, export it as one ONNX contract, serve it with
onnxruntime.

Packages, and the only arrows between them: ``training`` -> ``model``, ``contract``; ``export`` -> ``model``,
``contract``, ``web`` (and training's run directory, config and data sets); ``inference`` -> ``contract``, ``web``;
``web`` (the browser side's JavaScript and onnxruntime-web) imports none of them; ``deploy`` runs the serving image
and imports none of them.
"""

import os

# onnxruntime's Linux builds keep a device id and a cache of usage events under ~/.cache/Microsoft and send them to
# Microsoft unless this is set before the process's first session. Every command here that runs onnxruntime (the
# service, export's parity check, the benchmarks) imports this package first; a user's own value (0) wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
