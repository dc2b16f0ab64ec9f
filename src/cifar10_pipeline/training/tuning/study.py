"""Where a study's trials live, and opening the study there.

Storage (re-running the same command resumes the study and loses none of its finished trials):
  one worker:             sqlite:///studies/<study>.db                (the default)
  --workers N local:      studies/<study>.journal, Optuna's journal file (SQLite locks under parallel writers)
  many machines:          --storage postgresql://user:password@host/db on every worker (Optuna's RDB storage)
``optuna-dashboard <the same storage>`` shows the study live.

In MLflow the study is one parent run, kept in the study's ``mlflow_parent`` attribute so that every worker and every
re-run nests its trials under the same one (``parent_run``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings
from pathlib import Path
from typing import Iterator

import optuna

from cifar10_pipeline.tracking.runs import RunRef, study_parent
from cifar10_pipeline.tracking.settings import redact, tracking_uri
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.errors import TuneError

# what a study's validation accuracy means: trials that differ here are not comparable and must not share a study
OBJECTIVE_KEYS = ("dataset", "max_train_samples", "max_test_samples", "val_fraction", "seed")
PARENT_ATTR = "mlflow_parent"  # the study's user attribute holding its MLflow parent run (tracking.runs.RunRef)
HEARTBEAT_S = 10  # database storages: a running trial writes a heartbeat this often (seconds) ...
GRACE_S = 60  # ... and one silent for this long belongs to a dead worker: it is marked FAIL
MAX_RETRIES = 2  # times a dead worker's trial is queued again: a trial that kills its worker each time stops there
SCHEMA_ATTEMPTS = 3  # tries to open a database storage while other workers create its tables (1 s, 2 s apart)


@contextlib.contextmanager
def experimental_ok() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features chosen on purpose here (heartbeat and its retry,
    multivariate TPE, constant liar, matplotlib plots)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def storage_url(config: TuneConfig) -> str:
    """The storage as given, or the local default: the study's journal file if it exists or several workers
    share it, else its SQLite file."""
    if config.storage:
        url = config.storage
    else:
        journal = config.studies_dir / f"{config.name}.journal"
        sqlite = config.studies_dir / f"{config.name}.db"
        use_journal = journal.exists() or (config.workers > 1 and not sqlite.exists())
        url = str(journal) if use_journal else f"sqlite:///{sqlite}"
    if config.workers > 1 and url.startswith("sqlite"):
        raise TuneError(f"--workers {config.workers} with SQLite storage {url!r}: SQLite locks under parallel "
                        f"writers; use a FILE.journal or PostgreSQL (or --workers 1)")
    return url


class _Retry(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead worker's trial (same parameters, WAITING, ``failed_trial`` and ``retry_history``
    in its system attributes), without the dead worker's host and pid: a retry naming a dead pid would be failed
    again by any worker of that host in the moment between being picked up and its new worker naming itself."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("host", "pid")}
        super().__call__(study, trial)


# called with (study, the dead trial) once the trial is marked FAIL: by RDBStorage for a missed heartbeat, by
# training.tuning.workers for a local worker whose process is gone
with experimental_ok():
    retry_dead_trial = _Retry(max_retry=MAX_RETRIES)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file (a path ending in .journal) or any SQLAlchemy database URL; fails fast when unreachable."""
    if "://" not in url:
        if not url.endswith(".journal"):
            raise TuneError(f"storage {url!r} is neither a database URL (sqlite:///FILE, postgresql://...) "
                            f"nor a journal file path ending in .journal")
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    import sqlalchemy.exc

    # libpq waits for the OS's TCP timeout (minutes) on an unanswering host otherwise
    connect = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with experimental_ok():
                return optuna.storages.RDBStorage(url, engine_kwargs=connect, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=GRACE_S,
                                                  heartbeat_stale_trial_callback=retry_dead_trial)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # workers starting together on a fresh database race to create Optuna's tables; the losers see
            # duplicate keys or tables and find the tables complete on the next try
            error = e
            if attempt < SCHEMA_ATTEMPTS:
                time.sleep(attempt)
        except Exception as e:  # noqa: BLE001 -- SQLAlchemy and driver errors share no base class worth naming
            error = e
            break
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise TuneError(f"cannot open storage {redact(url)!r}: {first_line}") from None


def make_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup_trials,
                                           n_warmup_steps=config.pruner_warmup)
    if config.pruner == "hyperband":
        # resources are epochs of the longest schedule; brackets keep the best third at each rung
        min_resource = min(max(1, config.pruner_warmup), config.max_epochs)
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=config.max_epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(config: TuneConfig, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study or load it, refusing one whose trials were scored on different data or by another trainer."""
    with experimental_ok():
        # constant_liar: parallel workers treat each other's running trials as bad, so they do not all sample
        # the same promising point
        sampler = optuna.samplers.TPESampler(seed=config.sampler_seed, multivariate=True, constant_liar=True)
    study = optuna.create_study(study_name=config.name, storage=storage, direction="maximize", load_if_exists=True,
                                pruner=make_pruner(config), sampler=sampler)
    wanted = {"framework": config.framework, **{k: getattr(config.base, k) for k in OBJECTIVE_KEYS}}
    recorded = study.user_attrs.get("objective")
    if recorded is None:
        study.set_user_attr("objective", wanted)
        # a new study's first trial is the base config itself (the defaults plus your flags and --params): the
        # search starts from a known-good point, and the best params are never worse than it on validation.
        # skip_if_exists: workers that open a new study at the same moment enqueue it once between them
        study.enqueue_trial(config.space.values_of(config.base), skip_if_exists=True)
    elif recorded != wanted:
        diff = {k: (recorded.get(k), wanted[k]) for k in wanted if recorded.get(k) != wanted[k]}
        raise TuneError(f"study {config.name!r} was scored with different settings (study's, yours): {diff}; "
                        f"pick another --study-name")
    return study


def parent_run(config: TuneConfig, study: optuna.Study, url: str) -> tuple[TuneConfig, RunRef | None]:
    """The study's MLflow parent run, made on first use and kept in the study, when the base config tracks. A store
    that fails (one warning) gives ``config`` with tracking off for every trial, and no parent."""
    if not config.base.tracking:
        return config, None
    recorded = study.user_attrs.get(PARENT_ATTR)
    parent = study_parent(recorded, uri=tracking_uri(config.base.runs_dir), dataset=config.base.dataset,
                          study=config.name, tags={"framework": config.framework, "optuna.storage": redact(url)})
    if parent is None:
        return dataclasses.replace(config, base=TrainConfig.from_dict({"tracking": False}, config.base)), None
    if parent.to_dict() != recorded:
        study.set_user_attr(PARENT_ATTR, parent.to_dict())
    return config, parent
