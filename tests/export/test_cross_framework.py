"""The cross-framework contract: a PyTorch file and a TensorFlow file are interchangeable for the service; the
export command runs itself in the run's framework's environment; and the one training command takes the same
flags in both environments, training with the framework installed there by default.

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
    """`make train-<framework> export`: trained with that framework's own interpreter, exported by this one's
    command, which runs itself again in the run's environment where that is another: (ONNX file, run.json)."""
    runs = tmp_path / framework
    _command(python, "-m", "cifar10_pipeline.training", "--framework", framework, *TINY_CLI, "--runs-dir", str(runs),
             "--run-name", "tiny")
    out = tmp_path / f"{framework}.onnx"
    exported = _command(sys.executable, "-m", "cifar10_pipeline.export", "--runs-dir", str(runs), "--out", str(out))
    elsewhere = f"was trained with {frameworks.get(framework).title}: exporting with {python}"
    assert (elsewhere in exported.stderr) == (python != sys.executable), exported.stderr[-3000:]
    assert f"wrote {out}" in exported.stdout
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


def test_the_training_command_takes_the_same_flags_everywhere_and_defaults_to_the_installed_framework(tmp_path):
    def flags(python: str) -> set[str]:
        help_text = _command(python, "-m", "cifar10_pipeline.training", "--help").stdout
        return {word.strip(",[]") for word in help_text.split() if word.startswith("--")}

    torch_flags, tf_flags = flags(TORCH_PYTHON), flags(sys.executable)
    assert {"--framework", "--batch-size", "--resume", "--dry-run", "--params"} <= tf_flags
    assert torch_flags == tf_flags
    # without --framework each environment trains with its own: resuming a run of another framework says which
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "run.json").write_text(json.dumps({"framework": "other"}))
    for python, name in ((TORCH_PYTHON, "torch"), (sys.executable, "tensorflow")):
        result = subprocess.run([python, "-m", "cifar10_pipeline.training", "--resume", str(run)], cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 2 and f"was trained with 'other', not {name!r}" in result.stderr, result.stderr
