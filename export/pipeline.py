"""From a converted graph to a file ready to write: parity first, then the contract's metadata, then the check.

The export CLI runs it on a finished run's model; the serving benchmark runs it on a model it builds, so both
files are made the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from export.parity import OrtRunner, Runner, Tolerance, check_parity
from export.writer import check_model, stamp_metadata


def prove_and_stamp(runner: Runner, model: onnx.ModelProto, *, framework: str, framework_version: str, dataset: str,
                    labels: list[str], train_config: dict[str, Any], images: np.ndarray, image_labels: np.ndarray,
                    tolerance: Tolerance = Tolerance(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check onnxruntime against ``runner`` (the framework) on ``images`` (uint8 [N, H, W, C]) with labels
    ``image_labels`` [N], stamp the metadata into ``model`` and check it against the contract.

    Returns the parity report; raises ParityError (nothing stamped) or ContractError.
    """
    report = check_parity(runner, OrtRunner(model.SerializeToString()), images, image_labels, tolerance, log=log)
    h, w, c = images.shape[1:]
    stamp_metadata(model, {
        "labels": list(labels), "dataset": dataset, "framework": framework, "framework_version": framework_version,
        "input_height": h, "input_width": w, "input_channels": c, "test_accuracy": report["test_accuracy"],
        "train_config": train_config, "parity": report,
    })
    check_model(model)
    return report
