"""Hyperparameter search with Optuna for either trainer: ``cifar10-tune --help``.

Every trial runs the framework's own ``train()`` on a config drawn from the search space and is scored on a
validation split, never on the test set; after each epoch the pruner may stop a hopeless trial. The modules, each
building on the ones above it:

  errors.py   TuneError, and the errors a command reports in one line
  space.py    the search space: search_space.json, ``--space FILE`` overrides, flags that fix parameters
  config.py   TuneConfig, the tuning settings, and the command line that fills them
  study.py    storage (SQLite, journal file, PostgreSQL) and the study in it; re-running a command resumes it
  workers.py  trials: the objective, worker processes, the target number of finished trials, dead workers
  results.py  plots, report.json, best_params.json and the final test accuracy of the best params

Outputs, under ``studies/<study>/``: PNG plots, ``report.json`` and the trial runs (``runs/<host>-<pid>/trial-NNNN``);
the best params go to ``best_params.json`` (``--best``). In MLflow the study is a parent run, each trial a child run
tagged with its Optuna state (a pruned trial ends KILLED, tagged ``optuna.state=PRUNED``).
"""

from __future__ import annotations

import time

from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.errors import TuneError
from cifar10_pipeline.training.tuning.results import FinalTest, Report, evaluate_on_test, write_results
from cifar10_pipeline.training.tuning.space import HYPERPARAMETERS, Param, SearchSpace
from cifar10_pipeline.training.tuning.study import open_storage, open_study, parent_run, redact, storage_url
from cifar10_pipeline.training.tuning.workers import count_finished, load_trainer, quiet_optuna, run_workers

__all__ = ["HYPERPARAMETERS", "FinalTest", "Param", "Report", "SearchSpace", "TuneConfig", "TuneError",
           "evaluate_on_test", "tune"]


def tune(config: TuneConfig) -> Report:
    """Run (or resume) the study until it has ``config.trials`` finished trials, then report on it."""
    quiet_optuna()
    deadline = None if config.timeout is None else time.time() + config.timeout
    load_trainer(config.framework)  # fail before anything is written
    url = storage_url(config)
    study = open_study(config, open_storage(url))
    config, _ = parent_run(config, study, url)  # made here, once, before any worker looks for it
    trials = study.get_trials(deepcopy=False)
    print(f"study {config.name!r} in {redact(url)}: {count_finished(trials)}/{config.trials} trials finished, "
          f"{config.workers} worker(s), pruner {config.pruner}; live view: optuna-dashboard {redact(url)}", flush=True)
    run_workers(config, deadline)
    trials = study.get_trials(deepcopy=False)
    if count_finished(trials) < config.trials:
        print(f"stopped by --timeout with {count_finished(trials)}/{config.trials} trials finished: "
              f"run the same command to continue", flush=True)
    return write_results(config, study, url)
