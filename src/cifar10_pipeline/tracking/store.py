"""Opening the tracking store: an MLflow client on a URI (``settings.tracking_uri``) and the data set's experiment.

MLflow is imported here, when a command first tracks something, never by merely importing the package: a run with
tracking off does not pay for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cifar10_pipeline.tracking.settings import ARTIFACTS_DIR, HTTP_DEFAULTS, local_store

if TYPE_CHECKING:
    from mlflow import MlflowClient


def _quiet() -> None:
    """MLflow's defaults for a library inside a command line: no usage telemetry sent out (this machine may be
    offline, and a user's run is theirs), no per-file progress bars, no run URL printed, its INFO lines (creating
    tables, migrations) hidden. A value the user set in the environment wins."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import mlflow  # noqa: F401 -- it sets its logger's level when imported: set ours after that

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def client(uri: str) -> MlflowClient:
    """An MLflow client on ``uri``; an HTTP store gets the short retry defaults of ``settings.HTTP_DEFAULTS``."""
    _quiet()
    if uri.startswith(("http://", "https://")):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
    store = local_store(uri)
    if store is not None:
        store.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment(mlflow_client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, made if missing; in the embedded store its artifacts go beside the SQLite file
    (``<runs_dir>/mlartifacts``) rather than into ``./mlruns`` of whatever directory the command ran in."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    from mlflow.exceptions import MlflowException

    store = local_store(mlflow_client.tracking_uri)
    location = (Path(store).parent / ARTIFACTS_DIR).resolve().as_uri() if store is not None else None
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process (a tuning worker) made it a moment ago
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
