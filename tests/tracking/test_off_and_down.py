"""When tracking is off, or its store is down: tracking off (the config's field, make's TRACKING=off through
CIFAR10_TRACKING) leaves no store and never loads MLflow; a tracking server that does not answer, from the start or
from some epoch on, costs the run one warning line and nothing else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from cifar10_pipeline.training.loop import train
from tests.support.mlflow_ui import ui
from tests.support.paths import REPO
from tests.support.runs import TINY, tiny_config

FLAGS = ["--dataset", "synthetic", "--epochs", "1", "--width", "8", "--max-train-samples", "512",
         "--max-test-samples", "256"]


# cifar10-train, then whether the process imported MLflow
TRAIN = ("import sys; from cifar10_pipeline.training.cli import main; code = main(sys.argv[1:]); "
         "print('mlflow imported:', 'mlflow' in sys.modules); sys.exit(code)")


def train_command(framework, runs_dir, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    """``cifar10-train`` in a fresh process, run in the folder above ``runs_dir``."""
    runs_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-c", TRAIN, "--framework", framework.name, *FLAGS,
                           "--runs-dir", str(runs_dir), "--run-name", "r", *flags],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **env}, cwd=runs_dir.parent)


def server_env(uri: str) -> dict[str, str]:
    """Tracking on, into the server at ``uri``, asked once a call: MLflow's HTTP client retries with back-off by
    default, and these tests stay short."""
    return {"CIFAR10_TRACKING": "on", "MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", [{"env": {"CIFAR10_TRACKING": "off"}, "flags": []},
                                 {"env": {"CIFAR10_TRACKING": "on"}, "flags": ["--tracking", "off"]}],
                         ids=["environment", "flag"])
def test_tracking_off_leaves_no_store(framework, tmp_path, how):
    runs_dir = tmp_path / "runs"
    result = train_command(framework, runs_dir, how["env"], *how["flags"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in runs_dir.iterdir()) == ["LAST.json", "r"]
    assert not (tmp_path / "mlruns").exists()
    info = json.loads((runs_dir / "r" / "run.json").read_text())
    assert info["status"] == "finished" and "mlflow" not in info
    assert "MLflow" not in result.stderr
    assert "mlflow imported: False" in result.stdout  # not even loaded


def test_a_bad_tracking_setting_is_a_user_error(framework, tmp_path):
    result = train_command(framework, tmp_path / "runs", {"CIFAR10_TRACKING": "maybe"})
    assert result.returncode == 2
    assert "CIFAR10_TRACKING='maybe': use on or off" in result.stderr


def test_make_tracking_off_reaches_the_commands():
    env = {k: v for k, v in os.environ.items() if k != "CIFAR10_TRACKING"}  # the suite's own setting aside

    def variables(*args: str) -> str:
        return subprocess.run(["make", "-C", str(REPO), "-n", "-p", "train-torch", *args], capture_output=True,
                              text=True, timeout=120, env=env).stdout

    assert "CIFAR10_TRACKING := off" in variables("TRACKING=off")  # exported: every command started sees it
    assert "CIFAR10_TRACKING" not in variables()


def test_a_tracking_server_that_is_down_costs_one_warning(framework, tmp_path):
    runs_dir = tmp_path / "runs"
    env = server_env(f"http://127.0.0.1:{closed_port()}")
    result = train_command(framework, runs_dir, env, "--epochs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "MLflow" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert warnings[0].startswith(f"warning: MLflow tracking at {env['MLFLOW_TRACKING_URI']} failed")
    assert "training goes on untracked" in warnings[0]
    run_dir = runs_dir / "r"
    assert {"config.json", "run.json", "metrics.jsonl", "curves.png", "confusion.png",
            framework.model_file, framework.checkpoint_file} <= {p.name for p in run_dir.iterdir()}
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert not (runs_dir / "mlflow.db").exists()


@pytest.mark.slow
def test_a_tracking_server_that_dies_mid_run_costs_one_warning_and_keeps_what_it_got(framework, tmp_path, monkeypatch,
                                                                                     capfd):
    store_uri = f"sqlite:///{tmp_path / 'server.db'}"
    with ui(store_uri, tmp_path / "server.log") as server:  # the UI is a tracking server too
        for key, value in server_env(server.url).items():
            monkeypatch.setenv(key, value)
        capfd.readouterr()
        result = train(tiny_config(tmp_path, tracking=True), framework.name,
                       on_epoch=lambda epoch, row: server.stop(signal.SIGKILL) if epoch == 1 else None)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "MLflow" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: MLflow tracking at {server.url} failed")
    info = result.run.info
    assert info["status"] == "finished" and len(result.metrics) == TINY["epochs"] > 1
    assert {"metrics.jsonl", "curves.png", "confusion.png", framework.model_file} <= \
        {p.name for p in result.run.path.iterdir()}
    from mlflow import MlflowClient

    store = MlflowClient(tracking_uri=store_uri)  # what the server had written before it died
    run = store.get_run(info["mlflow"]["run_id"])
    assert [m.step for m in store.get_metric_history(run.info.run_id, "train_loss")] == [1]
    assert run.data.params["epochs"] == str(TINY["epochs"]) and run.info.status == "RUNNING"
