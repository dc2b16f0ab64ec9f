"""A PyTorch model file or checkpoint whose pickle would run code is refused wherever one is loaded (the network,
``cifar10-train --resume``, ``cifar10-export``): a clear error, exit 2, and the code never runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.model import ModelFileError, frameworks
from cifar10_pipeline.model.torch_net import load_model_file, load_payload
from cifar10_pipeline.training.loop import train
from cifar10_pipeline.training.run import Run
from tests.support.runs import tiny_config, train_cli

TORCH = frameworks.get("torch")


class RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: harmless, and visible if it ever happens."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _plant(path: Path, marker: Path) -> None:
    """Replace the file at path with one whose pickle calls code, beside the entries a real file has."""
    payload = torch.load(path, weights_only=True)
    payload["model"] = {"weight": RunsCode(marker)}
    torch.save(payload, path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Run:
    """A finished one-epoch PyTorch run: its final model and its last checkpoint."""
    return train(tiny_config(tmp_path_factory.mktemp("finished"), epochs=1, max_train_samples=500), TORCH.name).run


def test_loading_refuses_the_file_before_its_code_runs(tmp_path):
    path, marker = tmp_path / "model.pt", tmp_path / "ran"
    torch.save({"spec": {}, "model": RunsCode(marker)}, path)
    for load in (load_model_file, load_payload):
        with pytest.raises(ModelFileError, match="is refused: it holds more than tensors"):
            load(path)
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_that_runs_code(finished, tmp_path, capsys):
    run = Path(shutil.copytree(finished.path, tmp_path / "run"))
    marker = tmp_path / "ran"
    _plant(run / TORCH.checkpoint_file, marker)
    code, _, err = train_cli(TORCH, ["--resume", str(run)], capsys)
    assert code == 2 and "is refused" in err and "Traceback" not in err, err
    assert not marker.exists()


def test_export_refuses_a_model_file_that_runs_code(finished, tmp_path, capsys):
    run = Path(shutil.copytree(finished.path, tmp_path / "run"))
    marker, out = tmp_path / "ran", tmp_path / "model.onnx"
    _plant(run / TORCH.model_file, marker)
    assert export_main(["--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: {run / TORCH.model_file} is refused" in err and "Traceback" not in err, err
    assert not marker.exists() and not out.exists()
