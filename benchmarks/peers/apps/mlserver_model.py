"""The MLServer 1.7 peer: MLServer has no ONNX runtime, so this is a custom runtime (an ``mlserver.MLModel``)
holding an onnxruntime session, served under the V2 (Open Inference) protocol as model ``classifier``: input
``image`` UINT8 ``[N, H, W, C]``, output ``logits`` FP32, JSON tensors (MLServer's REST side has no binary
tensor extension).

Run by ``benchmarks.peers`` in its own venv: ``mlserver start benchmarks/peers/apps`` reads ``settings.json`` and
``model-settings.json`` beside this file; the ports, $PEER_MODEL_PATH and the tuning come from the environment:
$MLSERVER_PARALLEL_WORKERS inference processes (MLServer's parallel inference; Seldon's tuning guide: as many as
CPU cores; 0 runs inference in the server's own process).
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from peer_model import PeerModel


class OnnxClassifier(MLModel):
    async def load(self) -> bool:
        self.model = PeerModel()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0])
        logits = self.model.logits(images)
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output(self.model.output_name, logits)])
