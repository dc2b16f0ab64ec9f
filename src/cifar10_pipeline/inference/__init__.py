"""Serving side of the pipeline: the Flask service on onnxruntime alone (no training framework).

- ``app.create_app`` builds the app: blueprints ``ops`` (the page, health, /info, /metrics, /openapi.json),
  ``predict`` (/predict) and ``v2`` (the Open Inference Protocol: routes, body, codec, pydantic models), the error
  handlers of ``errors`` and one ``holder.ModelHolder``, which every route reaches through ``current_holder()``;
  with GRPC_PORT set, ``v2.grpc_service`` serves the same protocol over gRPC around the same holder;
- the holder loads files with ``runtime.load_session`` (``providers``, the contract check, ``selftest``),
  hot-swaps them and runs images through the ``batcher``; ``postprocess`` ranks the logits;
- ``server`` is ``cifar10-serve`` (granian), ``predict_cli`` is ``cifar10-predict`` (offline, no server).
"""
