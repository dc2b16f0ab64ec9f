"""PyTorch on several processes (torchrun, DistributedDataParallel over gloo on the CPU): the group trains the model
that one process would train on the same global batches, the model exports with parity, and a group that loses a
process to ``kill -9`` is restarted by torchrun and continues from its last checkpoint to the same model.

What "the same model" means: BatchNorm is not synchronised (``TorchTrainer``'s docstring says why), so N processes
equal one process that normalises each of a batch's N shards apart and keeps rank 0's running statistics: the
``ShardedReference`` below. Dropout draws differ between the two (one stream per rank against one in all), so the
comparison trains without dropout. The tolerance is 1e-6 on every weight and logit, and the runs in fact agree
bit for bit: with 2 processes every sum that differs in order is a sum of two terms (gloo adds the two gradients,
the reference accumulates them), and dividing by 2 is exact. That needs the same arithmetic inside each process:
the reference runs on one thread as the workers do (OMP_NUM_THREADS=1), because this training amplifies rounding
(a reference on 2 threads, whose convolutions add in another order, ends 0.24 away on the first conv's weights
after these 24 steps), so any looser tolerance would have to be one that a wrong shard or a missing average
passes too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.model.torch_net import load_model_file
from cifar10_pipeline.training import distributed
from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.loop import fit
from cifar10_pipeline.training.run import Run
from cifar10_pipeline.training.torch_trainer import TorchTrainer, augment, to_layout
from tests.support.paths import REPO
from tests.support.runs import torchrun_workers, without_timings

PROCESSES = 2
# no dropout: its masks are drawn per rank (see the module docstring); rotation on: its resampling runs per shard
# float32 steps: the 1e-6 agreement is float32's; with bfloat16 (auto on CPUs with native bfloat16) the group's and
# the reference's last-bit differences are rounded up to bfloat16's 8-bit mantissa and grow from step to step
GROUP = {"dataset": "synthetic", "epochs": 2, "width": 16, "batch_size": 128, "lr": 0.1, "dropout": 0.0,
         "max_train_samples": 1500, "max_test_samples": 500, "precision": "float32"}
ATOL = 1e-6


def flags(values: dict) -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]


def torchrun(runs_dir: Path, run_name: str, *extra: str, epochs: int = GROUP["epochs"],
             max_restarts: int = 0) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node 2 -m cifar10_pipeline.training`` on the GROUP config."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={PROCESSES}",
            f"--max-restarts={max_restarts}", "-m", "cifar10_pipeline.training", "--framework", "torch",
            *flags({**GROUP, "epochs": epochs, "runs_dir": runs_dir, "run_name": run_name}), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO),
           "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}  # loopback only; one thread per process on 2 cores
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model_file(path).state_dict()


def test_the_process_count_must_be_the_replicas(tmp_path):
    config = TrainConfig.from_dict({**GROUP, "replicas": 2, "runs_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="replicas=2 but 1 process"):
        fit(TorchTrainer, config)


class ShardedReference(TorchTrainer):
    """One process doing a step as PROCESSES processes do it: each shard of the batch augmented with the whole
    batch's parameters, normalised with its own batch statistics, its loss summed over the batch size; the
    gradients added up; the running statistics those of the first shard only."""

    def step(self, idx: np.ndarray, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        start = self.generator.get_state()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for rank in range(PROCESSES):
            part = distributed.shard(len(idx), rank, PROCESSES)
            kept = {name: b.clone() for name, b in self.model.body.named_buffers()}
            self.generator.set_state(start)  # every rank draws the whole batch's parameters from the same state
            index = torch.from_numpy(idx[part])
            x = to_layout(augment(self.model.preprocess(self.train_x[index]), self.config, self.generator, part,
                                  len(idx)))
            logits = self.model.body(x).float()
            labels = self.train_y[index]
            loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing, reduction="sum")
            (loss / len(idx)).backward()
            loss_sum, correct = loss_sum + loss.detach(), correct + (logits.argmax(1) == labels).sum()
            if rank:  # rank 0's running statistics are the ones kept
                for name, b in self.model.body.named_buffers():
                    b.copy_(kept[name])
        self.optimizer.step()
        return loss_sum / len(idx), correct


@pytest.fixture(scope="module")
def group_run(tmp_path_factory) -> Run:
    """A 2-process torchrun run of the GROUP config, uninterrupted, tracked in MLflow (the store under its runs)."""
    runs = tmp_path_factory.mktemp("group") / "runs"
    out = finished(torchrun(runs, "group", "--tracking=on"))
    assert out.count("test accuracy") == 1, out  # the result line comes from rank 0 only
    return Run.open(runs / "group")


@pytest.mark.slow
def test_the_group_trains_the_model_of_one_process_on_its_shards(group_run, tmp_path):
    assert group_run.config.replicas == PROCESSES  # taken from torchrun
    assert group_run.info["backend"] == "gloo" and group_run.info["status"] == "finished"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker (OMP_NUM_THREADS=1)
    try:
        reference = fit(ShardedReference, TrainConfig.from_dict({**GROUP, "runs_dir": str(tmp_path),
                                                                 "run_name": "ref"}))
    finally:
        torch.set_num_threads(threads)
    group_model, reference_model = (load_model_file(r.path / "model.pt") for r in (group_run, reference.run))
    for name, value in reference_model.state_dict().items():
        torch.testing.assert_close(group_model.state_dict()[name], value, atol=ATOL, rtol=0, msg=name)
    images = torch.randint(0, 256, (200, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(group_model(images), reference_model(images), atol=ATOL, rtol=0)
    # the metrics are the whole batch's, reduced over the group
    for group_row, reference_row in zip(group_run.metrics(), reference.metrics, strict=True):
        assert group_row["train_loss"] == pytest.approx(reference_row["train_loss"], abs=ATOL)
        assert group_row["train_acc"] == reference_row["train_acc"]


@pytest.mark.slow
def test_only_the_main_process_tracks_the_group(group_run):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{group_run.path.parent / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert [r.info.run_id for r in runs] == [group_run.info["mlflow"]["run_id"]]  # one MLflow run, not one a rank
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [m.step for m in history] == list(range(1, GROUP["epochs"] + 1))  # each epoch once: rank 0's rows


@pytest.mark.slow
def test_the_group_model_exports_with_parity(group_run, tmp_path):
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(group_run.path), "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "model.parity.json").is_file()


@pytest.mark.slow
def test_a_group_that_loses_a_process_restarts_from_its_checkpoint(group_run, tmp_path):
    """kill -9 of rank 1 after the first epoch's checkpoint: torchrun restarts the group, which resumes the run and
    ends with the uninterrupted group's model and metrics, bit for bit (the same sums in the same order)."""
    runs = tmp_path / "runs"
    process = torchrun(runs, "group", max_restarts=1)
    checkpoint = runs / "group" / "checkpoint.pt"  # written (renamed into place) once epoch 1 is done
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.02)
    os.kill(torchrun_workers(process.pid)[1], signal.SIGKILL)
    out = finished(process)
    assert "resuming" in out and f"after epoch 1/{GROUP['epochs']}" in out, out
    resumed = Run.open(runs / "group")
    assert without_timings(resumed.metrics()) == without_timings(group_run.metrics())
    expected = weights(group_run.path / "model.pt")
    for name, value in weights(resumed.path / "model.pt").items():
        assert torch.equal(value, expected[name]), name
