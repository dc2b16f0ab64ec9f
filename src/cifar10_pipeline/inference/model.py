"""One model file -> a checked, self-tested onnxruntime session, or a ContractError saying why not."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from cifar10_pipeline.contract import (GOLDEN_ATOL, GOLDEN_BATCH, GOLDEN_SEED, INPUT_NAME, OUTPUT_NAME, ContractError, ModelInfo,
                      TensorSpec, check_signature, golden_input, golden_reference, is_quantized)

# provider preference when none is configured: the GPU when this onnxruntime build and the machine have one
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# the largest golden batch the self-test runs: the exporters write GOLDEN_BATCH images
MAX_GOLDEN_BATCH = 64


@dataclass(frozen=True)
class LoadedModel:
    """A model that passed the contract check and the golden self-test; immutable, so swaps are atomic."""

    path: Path
    model_id: str  # sha256 of the file's bytes, hex
    session: ort.InferenceSession
    info: ModelInfo
    providers: tuple[str, ...]  # read back from the session: onnxruntime may fall back to CPU silently
    self_test: dict[str, Any]  # what the golden self-test compared
    loaded_at: float  # unix time, seconds

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


def check_contract(path: str | Path) -> ModelInfo:
    """Open an ONNX file on the CPU provider and check it against the contract."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(str(path), ["no such file"])
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types for unreadable files
        raise ContractError(str(path), [f"onnxruntime cannot load it: {e}"]) from e
    return check_session(session, str(path))


def rank(logits: np.ndarray, labels: tuple[str, ...], top_k: int) -> list[dict[str, Any]]:
    """Per row of float logits [N, classes]: the best label, its softmax probability, and the ``top_k`` best
    ``{"label", "probability"}`` in order (ties keep the label order)."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))  # softmax, stable for any logit scale
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    ranked = []
    for p in probabilities:
        best = np.argsort(-p, kind="stable")[:top_k]
        ranked.append({"label": labels[best[0]], "probability": float(p[best[0]]),
                       "top_k": [{"label": labels[i], "probability": float(p[i])} for i in best]})
    return ranked


def check_providers(requested: tuple[str, ...]) -> None:
    """A ValueError naming each of ``requested`` that this onnxruntime build lacks (CUDA in a CPU-only build)."""
    available = ort.get_available_providers()
    missing = [p for p in requested if p not in available]
    if missing:
        raise ValueError(f"providers {missing} are not in this onnxruntime build (it has {available})")


def resolve_providers(requested: tuple[str, ...]) -> list[str]:
    """The providers to ask for: ``requested`` (each must exist in this build), else CUDA first, then CPU."""
    check_providers(requested)
    available = ort.get_available_providers()
    chosen = list(requested) or [p for p in PREFERRED_PROVIDERS if p in available]
    if "CUDAExecutionProvider" in chosen and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu[cuda,cudnn] gets CUDA and cuDNN from NVIDIA's wheels, whose libraries are not on
        # the loader's path: preload them, or the CUDA provider fails and onnxruntime falls back to CPU
        ort.preload_dlls()
    return chosen


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # onnxruntime's worker threads spin between parallel sections by default, burning a core while they wait;
    # here they share the CPUs with the request threads (HTTP, decoding), which need those cycles more
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_model(path: Path, providers: list[str], intra_op_threads: int) -> LoadedModel:
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
    return LoadedModel(
        path=path,
        model_id=hashlib.sha256(data).hexdigest(),
        session=session,
        info=info,
        providers=tuple(session.get_providers()),
        self_test=golden_self_test(session, info, source),
        loaded_at=time.time(),
    )


def golden_self_test(session: ort.InferenceSession, info: ModelInfo, source: str) -> dict[str, Any]:
    """Run the contract's golden input and compare with the file's golden logits when it carries them:
    ``parity["golden"]`` (the framework's), or ``quantization["golden"]`` for a quantized file (its own, from
    onnxruntime at export; see ``contract.golden_reference``).

    Always checked: logits of shape ``[batch, num_classes]``, all finite. With ``golden.logits``: every logit
    within ``golden.atol`` of the exporter's. Raises ContractError listing what failed.
    """
    reference = "quantization" if is_quantized(info.metadata) else "parity"
    golden = golden_reference(info.metadata)
    if not isinstance(golden, dict):
        raise ContractError(source, [f"{reference}['golden'] must be a JSON object, got {golden!r:.80}"])
    expected = golden.get("logits")
    try:
        seed = int(golden.get("seed", GOLDEN_SEED))
        batch = int(golden.get("batch", len(expected) if isinstance(expected, list) else GOLDEN_BATCH))
        atol = float(golden.get("atol", GOLDEN_ATOL))
        expected = None if expected is None else np.asarray(expected, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ContractError(source, [f"{reference}['golden'] is malformed: {e}"]) from e
    # a batch of 0 would compare nothing and pass; golden_input's hash takes seeds of 32 bits; a huge batch would
    # allocate [batch, H, W, C] before anything is checked
    out_of_range = [problem for bad, problem in (
        (not 0 <= seed < 2**32, f"seed={seed} must be from 0 to {2**32 - 1}"),
        (not 1 <= batch <= MAX_GOLDEN_BATCH, f"batch={batch} must be from 1 to {MAX_GOLDEN_BATCH}"),
        (not 0 <= atol < np.inf, f"atol={atol} must be a finite number >= 0"),
    ) if bad]
    if out_of_range:
        raise ContractError(source, [f"{reference}['golden'] is malformed: {p}" for p in out_of_range])

    logits = session.run([OUTPUT_NAME], {INPUT_NAME: golden_input(batch, *info.input_shape, seed=seed)})[0]
    report: dict[str, Any] = {"seed": seed, "batch": batch, "compared_to_parity": expected is not None,
                              "reference": reference}
    problems = []
    if logits.shape != (batch, info.num_classes):
        problems.append(f"golden logits have shape {logits.shape}, expected {(batch, info.num_classes)}")
    elif not np.isfinite(logits).all():
        problems.append(f"golden logits are not all finite: {logits.tolist()!r:.200}")
    elif expected is not None:
        if expected.shape != logits.shape:
            problems.append(f"{reference} golden logits have shape {expected.shape}, the model gives {logits.shape}")
        else:
            diff = float(np.abs(logits - expected).max())
            report.update(max_abs_diff=diff, atol=atol)
            if not diff <= atol:
                problems.append(f"golden logits differ from the {reference} report by {diff:.3g} > atol {atol:g}")
    if problems:
        raise ContractError(f"{source} (golden self-test)", problems)
    return report
