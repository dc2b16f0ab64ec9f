"""A finished study's results: PNG plots and ``report.json`` (best trial, counts, final test accuracy) under
``studies/<study>/``, and ``best_params.json``, which holds only TrainConfig keys, for
``cifar10-train --params best_params.json``.

The final test accuracy of the best params comes from one extra training run on the whole training set
(``--final-test``, on by default: it costs about one trial, a few percent of a study, and it is the only honest
accuracy figure; the result is cached in the study).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from cifar10_pipeline.files import atomic_path, write_json
from cifar10_pipeline.tracking.runs import RunRef, finish_parent
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.errors import TuneError
from cifar10_pipeline.training.tuning.space import HYPERPARAMETERS
from cifar10_pipeline.training.tuning.study import PARENT_ATTR, redact
from cifar10_pipeline.training.tuning.workers import load_trainer, trial_seconds, worker_id


@dataclass
class FinalTest:
    accuracy: float  # on the test set
    train_seconds: float  # sum of the epochs' training time, evaluation excluded
    run_dir: str


@dataclass
class Report:
    study: str
    storage: str
    framework: str
    counts: dict[str, int]
    mean_trial_seconds: float  # over complete and pruned trials
    best_trial: int
    best_value: float  # validation accuracy
    best_params: dict[str, Any]
    best_params_path: str
    plots: list[str] = field(default_factory=list)
    final_test: FinalTest | None = None


def evaluate_on_test(framework: str, config: TrainConfig, parent: RunRef | None = None,
                     tags: dict[str, Any] | None = None) -> FinalTest:
    """Train ``config`` on the whole training set (no validation split) and score it on the test set; in MLflow a
    child run of ``parent`` (the study's) with ``tags``, when given."""
    config = TrainConfig.from_dict({"val_fraction": 0.0}, config)
    result = load_trainer(framework)(config, parent=parent, tags=tags)
    return FinalTest(accuracy=result.accuracy, train_seconds=sum(r["train_seconds"] for r in result.metrics),
                     run_dir=str(Path(config.runs_dir) / config.run_name))


def _counts(trials: list[FrozenTrial]) -> dict[str, int]:
    return {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}


def write_plots(study: optuna.Study, out_dir: Path) -> list[str]:
    """Optimisation history, intermediate values and (with >= 2 complete trials) parameter importances as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    wanted: dict[str, Callable[[optuna.Study], Any]] = {"history.png": plots.plot_optimization_history,
                                                        "intermediate_values.png": plots.plot_intermediate_values}
    if complete >= 2:
        wanted["importances.png"] = plots.plot_param_importances
    else:
        print(f"importances.png skipped: parameter importances need 2 complete trials, the study has {complete}")
    written = []
    with warnings.catch_warnings():
        # experimental plots, and notes on their content such as "parameter importances will be equal"
        warnings.simplefilter("ignore")
        for name, plot in wanted.items():
            try:
                figure = plot(study).figure
            except (ValueError, RuntimeError) as e:  # e.g. importances when no parameter ever varied
                print(f"{name} skipped: {e}")
                continue
            figure.set_size_inches(9, 5.5)
            with atomic_path(out_dir / name, suffix=".png") as tmp:
                figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
            plt.close(figure)
            written.append(str(out_dir / name))
    return written


def write_results(config: TuneConfig, study: optuna.Study, url: str) -> Report:
    """Plots, best_params.json and, if asked, the final test of the best params; report.json last; all of it on the
    study's MLflow parent run too, when tracked."""
    parent = RunRef.from_dict(study.user_attrs.get(PARENT_ATTR)) if config.base.tracking else None
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise TuneError(f"study {config.name!r} has no complete trial yet ({_counts(trials)}): run more trials")
    best = study.best_trial
    params = TrainConfig.from_dict(best.user_attrs["config"]).to_dict()  # checked: the trainers accept it
    best_params = {k: params[k] for k in HYPERPARAMETERS}
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    result = Report(
        study=config.name, storage=redact(url), framework=config.framework, counts=_counts(trials),
        mean_trial_seconds=sum(map(trial_seconds, finished)) / len(finished), best_trial=best.number,
        best_value=best.value, best_params=best_params, best_params_path=str(config.best_path),
        plots=write_plots(study, config.study_dir),
    )
    write_json(config.best_path, best_params)
    print(f"best trial {best.number}: validation accuracy {best.value:.4f}; params written to "
          f"{config.best_path.resolve()}", flush=True)
    if config.final_test:
        key = f"final_test_trial_{best.number}"  # kept in the study: a re-run (or another worker) reuses it
        if key in study.user_attrs:
            result.final_test = FinalTest(**study.user_attrs[key])
        else:
            run = TrainConfig.from_dict({**best_params, "runs_dir": str(config.study_dir / "runs" / worker_id()),
                                         "run_name": f"test-trial-{best.number:04d}"}, config.base)
            result.final_test = evaluate_on_test(config.framework, run, parent,
                                                 {"optuna.study": config.name, "optuna.final_test": best.number})
            study.set_user_attr(key, dataclasses.asdict(result.final_test))
        print(f"final test accuracy of trial {best.number}'s params (whole training set): "
              f"{result.final_test.accuracy:.4f}", flush=True)
    write_json(config.study_dir / "report.json", dataclasses.asdict(result))
    if parent is not None:
        metrics = {"best_value": best.value, "final_test_accuracy": result.final_test and result.final_test.accuracy}
        finish_parent(parent, metrics={k: v for k, v in metrics.items() if v is not None},
                      tags={"best_trial": best.number, **{f"trials.{k}": v for k, v in result.counts.items()}},
                      files=[config.study_dir / "report.json", config.best_path, *map(Path, result.plots)])
    return result
