"""cifar10-pipeline: train one CNN with PyTorch or TensorFlow, export it as one ONNX contract, serve it with
onnxruntime.

Packages, and the only arrows between them: ``training`` -> ``model``, ``contract``; ``export`` -> ``model``,
``contract``, ``web`` (and training's run directory, config and data sets); ``inference`` -> ``contract``, ``web``;
``web`` (the browser side's JavaScript and onnxruntime-web) imports none of them; ``deploy`` runs the serving image
and imports none of them.
"""
