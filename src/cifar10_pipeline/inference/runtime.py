"""One model file -> a checked, self-tested onnxruntime session (a LoadedModel), or a ContractError saying why not."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME, ContractError, ModelInfo, TensorSpec, check_signature
from cifar10_pipeline.inference.providers import not_started
from cifar10_pipeline.inference.selftest import golden_self_test


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed the contract check and the golden self-test; immutable, so swaps are atomic."""

    path: Path
    model_id: str  # sha256 of the file's bytes, hex
    session: ort.InferenceSession
    info: ModelInfo
    providers: tuple[str, ...]  # active: read back from the session, as onnxruntime may fall back to CPU silently
    requested_providers: tuple[str, ...]
    providers_not_started: dict[str, str]  # requested but not active: why each did not start
    self_test: dict[str, Any]  # what the golden self-test compared
    loaded_at: float  # unix time, seconds
    data: bytes = field(repr=False)  # the file's bytes as loaded: what GET /model.onnx serves under model_id

    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``[batch, H, W, C]`` -> float32 logits ``[batch, num_classes]``; thread-safe."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def _spec(arg: ort.NodeArg) -> TensorSpec:
    """onnxruntime's description of an input or output ("tensor(uint8)", dims int or str)."""
    element = arg.type.removeprefix("tensor(").removesuffix(")")
    dtype = {"float": "float32", "double": "float64"}.get(element, element)
    return TensorSpec(arg.name, dtype if arg.type.startswith("tensor(") else None, tuple(arg.shape))


def check_session(session: ort.InferenceSession, source: str = "model") -> ModelInfo:
    """Check a loaded session against the contract; raise ContractError listing every problem."""
    return check_signature([_spec(i) for i in session.get_inputs()], [_spec(o) for o in session.get_outputs()],
                           session.get_modelmeta().custom_metadata_map, source)


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """The service's session options: ``intra_op_threads`` threads per call (0: onnxruntime's default), no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # onnxruntime's worker threads spin between parallel sections by default, burning a core while they wait;
    # here they share the CPUs with the request threads (HTTP, decoding), which need those cycles more
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_session(path: Path, providers: list[str], intra_op_threads: int) -> LoadedModel:
    """Read, check and self-test ``path``. The bytes are read once, so the id always matches the session."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ContractError(source, [f"cannot read it: {e}"]) from e
    try:
        session = ort.InferenceSession(data, session_options(intra_op_threads), providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
        raise ContractError(source, [f"onnxruntime cannot load it: {e}"]) from e
    info = check_session(session, source)
    if info.channels not in (1, 3):
        raise ContractError(source, [f"input_channels={info.channels}, the service decodes to 1 (gray) or 3 (RGB)"])
    active = tuple(session.get_providers())
    return LoadedModel(
        path=path,
        model_id=hashlib.sha256(data).hexdigest(),
        session=session,
        info=info,
        providers=active,
        requested_providers=tuple(providers),
        providers_not_started=not_started(providers, active),
        self_test=golden_self_test(session, info, source),
        loaded_at=time.time(),
        data=data,
    )
