"""The cross-framework contract: a PyTorch file and a TensorFlow file are interchangeable for the service, and
both trainers take the same command line.

Runs under the TensorFlow environment (``.venv-tf/bin/python -m pytest tests/export/test_cross_framework.py``).
PyTorch never enters this process: each framework trains and exports as a separate command, the PyTorch one
with the interpreter of its environment (``model.frameworks``: ``$VENV``, default ``.venv``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cifar10_pipeline.contract import METADATA_KEYS, golden_input
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.datasets import load_dataset
from tests.support.contract import check_contract
from tests.support.paths import REPO

TORCH_PYTHON = frameworks.get("torch").python()

TINY_CLI = ["--dataset", "synthetic", "--epochs", "1", "--width", "8", "--max-train-samples", "512",
            "--max-test-samples", "256"]


def _command(python: str, *args: str) -> subprocess.CompletedProcess:
    assert Path(python).is_file(), f"no interpreter at {python}: run `make install` or set VENV"
    result = subprocess.run([python, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{python} {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result


def _train_and_export(python: str, framework: str, tmp_path: Path) -> tuple[Path, dict]:
    """`make train-<framework> export` with that framework's own interpreter: (ONNX file, run.json)."""
    runs = tmp_path / framework
    _command(python, "-m", "cifar10_pipeline.training", "--framework", framework, *TINY_CLI, "--runs-dir", str(runs),
             "--run-name", "tiny")
    out = tmp_path / f"{framework}.onnx"
    _command(python, "-m", "cifar10_pipeline.export", "--runs-dir", str(runs), "--out", str(out))
    return out, json.loads((runs / "tiny" / "run.json").read_text())


def _signature(session: ort.InferenceSession) -> list[tuple]:
    return [(v.name, v.type, v.shape) for v in (*session.get_inputs(), *session.get_outputs())]


@pytest.mark.slow
def test_pytorch_and_tensorflow_files_share_one_contract(tmp_path):
    torch_file, torch_info = _train_and_export(TORCH_PYTHON, "torch", tmp_path)
    tf_file, tf_info = _train_and_export(sys.executable, "tensorflow", tmp_path)
    assert (torch_info["framework"], tf_info["framework"]) == ("torch", "tensorflow")
    # the same network: the same number of trainable parameters
    assert torch_info["num_parameters"] == tf_info["num_parameters"]

    infos = {name: check_contract(path) for name, path in (("torch", torch_file), ("tensorflow", tf_file))}
    sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for name, path in (("torch", torch_file), ("tensorflow", tf_file))}
    # names, dtypes and shapes (symbolic batch axis included), as onnxruntime reports them
    assert _signature(sessions["torch"]) == _signature(sessions["tensorflow"]) == [
        ("image", "tensor(uint8)", ["batch", 32, 32, 3]), ("logits", "tensor(float)", ["batch", 10])]
    assert set(infos["torch"].metadata) == set(infos["tensorflow"].metadata) == set(METADATA_KEYS)
    assert infos["torch"].labels == infos["tensorflow"].labels
    assert infos["torch"].input_shape == infos["tensorflow"].input_shape == (32, 32, 3)
    assert [info.metadata["framework"] for info in infos.values()] == ["torch", "tensorflow"]
    configs = [{k: v for k, v in info.metadata["train_config"].items() if k != "runs_dir"} for info in infos.values()]
    assert configs[0] == configs[1]  # one config dataclass, one set of flags
    assert infos["torch"].metadata["parity"].keys() == infos["tensorflow"].metadata["parity"].keys()

    # one prediction API: the same call on the same images gives the same shape and dtype
    images = load_dataset("synthetic").test_images[:5]
    for batch in (1, 5):
        outputs = [s.run(["logits"], {"image": images[:batch]})[0] for s in sessions.values()]
        assert [(o.dtype, o.shape) for o in outputs] == [(np.float32, (batch, 10))] * 2
    # and both pass the self-test the service runs when it loads a file: the golden input's logits
    for name, session in sessions.items():
        golden = infos[name].metadata["parity"]["golden"]
        got = session.run(["logits"], {"image": golden_input(golden["batch"], 32, 32, 3, seed=golden["seed"])})[0]
        np.testing.assert_allclose(got, np.array(golden["logits"]), atol=golden["atol"], err_msg=name)


def test_both_trainers_have_the_same_command_line():
    def flags(python: str, trainer: str) -> set[str]:
        help_text = _command(python, "-m", "cifar10_pipeline.training", "--framework", trainer, "--help").stdout
        return {word.strip(",[]") for word in help_text.split() if word.startswith("--")}

    torch_flags, tf_flags = flags(TORCH_PYTHON, "torch"), flags(sys.executable, "tensorflow")
    assert {"--batch-size", "--resume", "--dry-run", "--params"} <= tf_flags
    assert torch_flags == tf_flags
