"""Both trainers (``--framework``) learn and record their run the same way: the metrics rows, run.json, the plots and
the final model; in bfloat16 too, and from every shipped config."""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.export.gates import OrtRunner, check_parity
from cifar10_pipeline.export.pipeline import convert_run
from cifar10_pipeline.training.config import TrainConfig, one_cycle_lr
from cifar10_pipeline.training.loop import train
from cifar10_pipeline.training.run import Run
from tests.support.paths import REPO
from tests.support.runs import tiny_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BENCHMARK_CONFIGS = REPO / "benchmarks" / "configs"
# the metrics row both trainers write (training.run.epoch_row)
ROW_KEYS = {"epoch", "lr", "train_loss", "train_acc", "eval_loss", "eval_acc", "eval_split", "train_seconds",
            "seconds", "images_per_second"}


def test_short_synthetic_run_learns_and_records_everything(trained, framework):
    assert trained.accuracy > 0.5, f"accuracy {trained.accuracy:.3f} is not well above chance (0.1)"
    run = trained.run
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(set(r) == ROW_KEYS for r in rows), rows[0]
    assert {r["eval_split"] for r in rows} == {"test"} and trained.split == "test"
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    config = run.config
    assert config == tiny_config(run.path.parent.parent)
    # the row's lr is the last step's: one_cycle_lr at the end of each epoch
    assert [r["lr"] for r in rows] == pytest.approx([one_cycle_lr(config, e / 3) for e in (1, 2, 3)])
    for name in ("curves.png", "confusion.png"):
        assert (run.path / name).read_bytes()[:8] == PNG_MAGIC
    info = run.info
    assert info["status"] == "finished" and info["framework"] == framework.name
    assert len(info["classes"]) == 10 and info["framework_version"] and info["precision"] in ("float32", "bfloat16")
    assert info["test_accuracy"] == trained.accuracy
    assert np.trace(np.array(info["confusion"])) / 1000 == pytest.approx(trained.accuracy)
    assert Run.open(None, run.path.parent).path == run.path  # LAST.json points at it
    assert (run.path / framework.checkpoint_file).is_file() and (run.path / framework.model_file).is_file()


def test_bfloat16_training_learns_and_saves_a_float32_model_that_exports(tmp_path, framework):
    # explicit bfloat16: the path "auto" takes on a GPU (both frameworks) and on CPUs with native bfloat16 (PyTorch)
    result = train(tiny_config(tmp_path, precision="bfloat16", tta=False), framework.name)
    assert result.run.info["precision"] == "bfloat16"
    assert result.accuracy > 0.5, f"accuracy {result.accuracy:.3f} is not well above chance (0.1)"
    runner, model, _ = convert_run(result.run, framework)
    images = np.random.default_rng(0).integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    report = check_parity(runner, OrtRunner(model.SerializeToString()), images, np.zeros(256), log=lambda _: None)
    assert report["passed"] and report["max_abs_diff"] <= 1e-4, report["max_abs_diff"]


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARK_CONFIGS.glob("*.json")))
def test_every_shipped_config_trains_a_step_on_the_cpu(tmp_path, framework, name):
    # the benchmark configs, the CIFAR-10 GPU one included, are what users pass as PARAMS: each must load and
    # train (one step at its own batch size and width, on CIFAR-shaped synthetic data)
    config = TrainConfig.from_json(BENCHMARK_CONFIGS / name)
    config = TrainConfig.from_dict({"dataset": "synthetic", "epochs": 1, "max_train_samples": config.batch_size,
                                    "max_test_samples": 64, "device": "cpu", "runs_dir": str(tmp_path)}, config)
    result = train(config, framework.name)
    (row,) = result.run.metrics()
    assert np.isfinite(row["train_loss"]) and result.run.info["status"] == "finished"
