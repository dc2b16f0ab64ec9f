"""The model as both peers hold it: an onnxruntime session on the ONNX file named by $PEER_MODEL_PATH, opened with
the service's session options (``inference.runtime.session_options``: one intra-op thread, no spinning), so that
the servers differ and the engine does not. Runs inside a peer's own venv: numpy and onnxruntime only."""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort


class PeerModel:
    def __init__(self, path: str | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path or os.environ["PEER_MODEL_PATH"], options,
                                            providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        _, self.height, self.width, self.channels = inputs[0].shape  # [batch, H, W, C], uint8
        self.labels = json.loads(self.session.get_modelmeta().custom_metadata_map["labels"])

    def logits(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``[batch, H, W, C]`` -> float32 logits ``[batch, classes]``."""
        return self.session.run([self.output_name], {self.input_name: images})[0]
