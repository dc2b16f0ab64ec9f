"""The golden self-test every model passes before it is served: the contract's golden input through the session,
compared with the golden logits the file carries."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from cifar10_pipeline.contract import (GOLDEN_ATOL, GOLDEN_BATCH, GOLDEN_SEED, INPUT_NAME, OUTPUT_NAME, ContractError,
                                       ModelInfo, golden_input, golden_reference, is_quantized)

# the largest golden batch the self-test runs: the exporters write GOLDEN_BATCH images
MAX_GOLDEN_BATCH = 64


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
