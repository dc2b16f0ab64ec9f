"""Training runs in MLflow: one MLflow run per run directory, written as the run goes, and never at the run's expense.

``Recorder`` is what the training loop talks to: it starts (or, for ``--resume``, reopens and catches up) the MLflow
run with the config as parameters, logs each epoch's metrics at step = epoch, and at the end the final accuracy and
every file of the run directory (config, run.json, metrics.jsonl, curves.png, confusion.png, checkpoint, final model)
under the artifact folder ``run/``. A tuning study is one parent run (``study_parent``) whose trials are its child runs.

A store that fails (a tracking server that is down, a full disk) costs the run nothing: the first failure is
reported in one warning line on stderr, tracking stops for that run, and training goes on; the run directory holds
everything either way.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from cifar10_pipeline.tracking import store
from cifar10_pipeline.tracking.settings import RUN_ARTIFACTS, experiment_name, redact

# MLflow run statuses a run ends with: finished, stopped on purpose (Ctrl-C, a pruned trial) or failed (an error)
FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag of a child run: the UI nests it under its parent


@dataclass(frozen=True)
class RunRef:
    """An MLflow run: its store, experiment and id (run.json's ``mlflow`` entry, a study's parent run)."""

    tracking_uri: str
    experiment_id: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> RunRef | None:
        return cls(**{k: str(values[k]) for k in ("tracking_uri", "experiment_id", "run_id")}) if values else None


def warn(uri: str, error: BaseException, consequence: str) -> None:
    """The one line that says a store failed: where, why (the error's first line) and what happens instead."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    print(f"warning: MLflow tracking at {redact(uri)} failed ({type(error).__name__}: {reason[:300]}); "
          f"{consequence}", file=sys.stderr, flush=True)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class Recorder:
    """A training run's MLflow run; every method is a no-op once tracking is off or has failed."""

    def __init__(self, ref: RunRef | None, run_dir: Path, mlflow_client: Any = None):
        """``ref``: the MLflow run (None: untracked), on ``mlflow_client`` (made from the ref when not given)."""
        self.ref = ref
        self.run_dir = run_dir
        self._client = mlflow_client or (store.client(ref.tracking_uri) if ref else None)

    @classmethod
    def start(cls, run_dir: Path, *, uri: str, dataset: str, params: Mapping[str, Any], tags: Mapping[str, Any],
              previous: Mapping[str, Any] | None = None, parent: RunRef | None = None) -> Recorder:
        """Start the MLflow run of ``run_dir`` in the store at ``uri`` (``parent``'s store and experiment when it
        is a child run), or reopen ``previous`` (run.json's ``mlflow`` entry of a resumed run). ``params``: the
        config; ``tags``: framework, versions, device and the like. A store that fails gives an untracked
        recorder, after one warning."""
        old = RunRef.from_dict(previous)
        uri = old.tracking_uri if old else parent.tracking_uri if parent else uri
        try:
            mlflow_client = store.client(uri)
            if old is not None:
                mlflow_client.update_run(old.run_id, status="RUNNING")
                ref = old
            else:
                experiment_id = parent.experiment_id if parent else store.experiment(mlflow_client,
                                                                                      experiment_name(dataset))
                all_tags = {"run_dir": str(run_dir.resolve()), "host": socket.gethostname(), **tags}
                if parent is not None:
                    all_tags[PARENT_TAG] = parent.run_id
                run = mlflow_client.create_run(experiment_id, run_name=run_dir.name,
                                               tags={k: _text(v) for k, v in all_tags.items()})
                ref = RunRef(uri, experiment_id, run.info.run_id)
            recorder = cls(ref, run_dir, mlflow_client)
            recorder._log(lambda c: c.log_batch(ref.run_id, params=_params(params)))
            return recorder
        except Exception as e:  # noqa: BLE001 -- any store failure (HTTP, SQL, file system) leaves training alone
            warn(uri, e, f"training goes on untracked; {run_dir} keeps everything")
            return cls(None, run_dir)

    def _log(self, call: Callable[[Any], Any]) -> None:
        """``call(client)``, unless tracking is off or failed; its first failure warns once and stops tracking."""
        if self.ref is None:
            return
        try:
            call(self._client)
        except Exception as e:  # noqa: BLE001 -- see start()
            warn(self.ref.tracking_uri, e, f"training goes on untracked; {self.run_dir} keeps everything")
            self.ref = None

    def log_metrics(self, values: Mapping[str, Any], step: int) -> None:
        """The numeric ``values`` (a metrics.jsonl row; strings are left out) at ``step``."""
        if self.ref is None:  # untracked: MLflow is never imported
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"]
        self._log(lambda c: c.log_batch(self.ref.run_id, metrics=metrics))

    def catch_up(self, rows: list[Mapping[str, Any]]) -> None:
        """Log the metrics.jsonl ``rows`` whose epoch the MLflow run lacks (each at step = epoch): a resumed run's
        epoch that ended in a kill between its checkpoint and its metrics' logging, or epochs trained untracked."""
        if self.ref is None or not rows:
            return
        logged = {step for step, _ in self._history("train_loss")}  # train_loss is in every row
        for row in rows:
            if row["epoch"] not in logged:
                self.log_metrics(row, step=row["epoch"])

    def _history(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of each value of metric ``key`` the MLflow run holds; none when untracked."""
        history: list[tuple[int, float]] = []
        self._log(lambda c: history.extend((m.step, m.value) for m in c.get_metric_history(self.ref.run_id, key)))
        return history

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.ref is None:
            return
        from mlflow.entities import RunTag

        self._log(lambda c: c.log_batch(self.ref.run_id, tags=[RunTag(k, _text(v)) for k, v in tags.items()]))

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """The final ``metrics`` (step 0), every file of the run directory under ``run/``, status FINISHED. A final
        metric the run already holds with the same value (a finished run resumed) is not logged twice."""
        self.log_metrics({k: v for k, v in metrics.items() if (0, float(v)) not in self._history(k)}, step=0)
        files = [p for p in self.run_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        self._log(lambda c: [c.log_artifact(self.ref.run_id, str(p), RUN_ARTIFACTS) for p in sorted(files)])
        self.end(FINISHED)

    def end(self, status: str, reason: str | None = None) -> None:
        """End the MLflow run with ``status`` (KILLED, FAILED; FINISHED is ``finish``'s); ``reason`` becomes its
        ``stop_reason`` tag."""
        if reason:
            self.set_tags({"stop_reason": reason[:5000]})
        self._log(lambda c: c.set_terminated(self.ref.run_id, status))


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(k, _text(v)) for k, v in values.items()]


def study_parent(recorded: Mapping[str, Any] | None, *, uri: str, dataset: str, study: str,
                 tags: Mapping[str, Any]) -> RunRef | None:
    """The parent run of tuning study ``study``: ``recorded`` (the ref kept in the study) when it is in the store at
    ``uri``, else a new run. Set RUNNING while trials run. None after one warning when the store fails: the trials
    then run untracked."""
    old = RunRef.from_dict(recorded)
    try:
        mlflow_client = store.client(uri)
        if old is not None and old.tracking_uri == uri:
            mlflow_client.update_run(old.run_id, status="RUNNING")
            return old
        experiment_id = store.experiment(mlflow_client, experiment_name(dataset))
        run = mlflow_client.create_run(experiment_id, run_name=f"study {study}",
                                       tags={"optuna.study": study, **{k: _text(v) for k, v in tags.items()}})
        return RunRef(uri, experiment_id, run.info.run_id)
    except Exception as e:  # noqa: BLE001 -- see Recorder.start
        warn(uri, e, "the study goes on with its trials untracked; their run directories keep everything")
        return None


def tag_run(ref: Mapping[str, Any] | None, tags: Mapping[str, Any]) -> None:
    """Tags on the run ``ref`` (run.json's ``mlflow`` entry) after it ended: a tuning trial's Optuna state. Quietly
    nothing for an untracked run; one warning when the store fails."""
    run = RunRef.from_dict(ref)
    if run is not None:
        recorder = Recorder(run, Path("."))
        recorder.set_tags(tags)


def finish_parent(parent: RunRef, *, metrics: Mapping[str, Any], tags: Mapping[str, Any],
                  files: list[Path]) -> None:
    """A study's results on its parent run: best value, best trial, report, best params and plots; then FINISHED."""
    recorder = Recorder(parent, Path("."))
    recorder.set_tags(tags)
    recorder.log_metrics(metrics, step=0)
    recorder._log(lambda c: [c.log_artifact(parent.run_id, str(p)) for p in files if p.is_file()])
    recorder.end(FINISHED)
