"""Where runs are tracked and under which names, decided without importing MLflow (standard library only).

- On or off: the training config's ``tracking`` field (``--tracking BOOL``), whose default is the environment
  variable ``CIFAR10_TRACKING`` (``make ... TRACKING=off`` sets it), on when unset; ``cifar10-export`` follows the
  same variable.
- The store: ``MLFLOW_TRACKING_URI`` when set (a team's tracking server, ``http://host:5000``, or any store MLflow
  knows), else the embedded one: the SQLite file ``<runs_dir>/mlflow.db`` with artifacts in ``<runs_dir>/mlartifacts``,
  no server.
- Names: the experiment and the registered model are named after the data set (``cifar10-pipeline-<dataset>`` and
  ``<dataset>-classifier``); ``MLFLOW_EXPERIMENT_NAME`` overrides the first, ``--register NAME`` the second.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "CIFAR10_TRACKING"  # on/off: the default of TrainConfig.tracking and of cifar10-export --tracking
STORE_FILE = "mlflow.db"  # the embedded store, in the runs directory
ARTIFACTS_DIR = "mlartifacts"  # the embedded store's artifacts, beside it
RUN_ARTIFACTS = "run"  # artifact folder of a training run's files (config, metrics, plots, final model)
DEFAULT_ALIAS = "champion"  # the alias a registered version gets unless --alias says otherwise
# a tracking server that does not answer costs at most about (1 + retries) * timeout seconds before training goes on
# without it (MLflow's own defaults, 7 retries with growing back-off and 120 s a request, would hold a run ~4 minutes);
# a value set in the environment wins
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on", "")
_RUN_ID = re.compile(r"[0-9a-f]{32}")


class TrackingError(ValueError):
    """A tracking setting or MLflow reference a user got wrong."""


def enabled_by_env() -> bool:
    """``CIFAR10_TRACKING``: on when unset; ``off``, ``false``, ``no`` or ``0`` turn tracking off."""
    value = os.environ.get(ENV, "").strip().lower()
    if value not in _OFF + _ON:
        raise TrackingError(f"{ENV}={os.environ[ENV]!r}: use on or off")
    return value not in _OFF


def tracking_uri(runs_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI``, else the embedded SQLite store in ``runs_dir`` (an absolute path: the same store
    whatever the working directory of a later command)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(runs_dir) / STORE_FILE).resolve()}"


def local_store(uri: str) -> Path | None:
    """The embedded store's SQLite file for a ``sqlite:///`` URI, None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def experiment_name(dataset: str) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"cifar10-pipeline-{dataset}"


def registered_name(dataset: str) -> str:
    return f"{dataset}-classifier"


def redact(uri: str) -> str:
    """The URI without a password, for messages."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri)


def is_reference(text: str) -> bool:
    """Whether ``text`` names an MLflow run or registered model rather than a run directory: ``runs:/RUN_ID``,
    ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a bare 32-hex run id that is not an existing path."""
    return text.startswith(("runs:/", "models:/")) or (_RUN_ID.fullmatch(text) is not None and not Path(text).exists())
