"""The service's contract check on a file, for tests of exported files: ``check_contract(path)`` opens it on the
CPU provider and checks it as the service checks every session it loads (``inference.runtime.check_session``)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from cifar10_pipeline.contract import ContractError, ModelInfo
from cifar10_pipeline.inference.runtime import check_session


def check_contract(path: str | Path) -> ModelInfo:
    """Open an ONNX file on the CPU provider and check it against the contract; ContractError if it fails."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(str(path), ["no such file"])
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types for unreadable files
        raise ContractError(str(path), [f"onnxruntime cannot load it: {e}"]) from e
    return check_session(session, str(path))
