"""The tuning settings, TuneConfig, and the command line that fills them: ``cifar10-tune --help``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.config import TrainConfig, add_config_arguments, config_from_args
from cifar10_pipeline.training.gpus import visible_gpus
from cifar10_pipeline.training.tuning.errors import TuneError
from cifar10_pipeline.training.tuning.space import DEFAULT_SPACE, SearchSpace

PRUNERS = ("median", "hyperband", "none")
DEFAULT_VAL_FRACTION = 0.1  # 5000 of CIFAR-10's 50000 training images: ranks trials to about +-0.5% accuracy
DRY_RUN = {"dataset": "synthetic", "epochs": 2, "width": 8, "max_train_samples": 2000, "max_test_samples": 500}
DRY_RUN_TRIALS = 2


@dataclass(frozen=True)
class TuneConfig:
    """Everything one tuning command does; ``tune_config_from_args`` maps the CLI onto it, tests and benchmarks
    build it."""

    base: TrainConfig  # every trial starts from it; val_fraction > 0 picks the validation split
    space: SearchSpace
    framework: str = "torch"  # a name in model.frameworks
    study_name: str = ""  # "" -> <framework>-<dataset>
    storage: str | None = None  # None -> a local file under studies_dir (see training.tuning.study)
    studies_dir: Path = Path("studies")
    trials: int = 20  # target number of finished (complete + pruned) trials of the whole study
    timeout: float | None = None  # seconds after which this command starts no new trial
    workers: int = 1  # local worker processes
    pruner: str = "median"
    pruner_startup_trials: int = 5  # median: no pruning until this many trials completed
    pruner_warmup: int = 2  # no pruning before this many epochs (hyperband: its minimum resource)
    sampler_seed: int | None = None  # fixed: a reproducible sequence of trials (one worker)
    best_path: Path = Path("best_params.json")
    final_test: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.framework not in frameworks.FRAMEWORKS:
            problems.append(f"framework {self.framework!r} is not one of {list(frameworks.NAMES)}")
        if self.pruner not in PRUNERS:
            problems.append(f"pruner {self.pruner!r} is not one of {list(PRUNERS)}")
        if not self.base.val_fraction > 0:
            problems.append(f"tuning scores trials on a validation split: val_fraction must be > 0, "
                            f"got {self.base.val_fraction!r}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.study_name or "x"):
            problems.append(f"study name {self.study_name!r} must be letters, digits, '.', '_' or '-' "
                            f"(it names files)")
        for name in ("trials", "pruner_startup_trials", "pruner_warmup"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 0")
        if self.workers < 1:
            problems.append(f"workers={self.workers!r} must be >= 1")
        if self.timeout is not None and not self.timeout > 0:
            problems.append(f"timeout={self.timeout!r} must be > 0 seconds")
        if problems:
            raise TuneError("invalid tuning settings: " + "; ".join(problems))

    @property
    def name(self) -> str:
        return self.study_name or f"{self.framework}-{self.base.dataset}"

    @property
    def study_dir(self) -> Path:
        return self.studies_dir / self.name

    @property
    def max_epochs(self) -> int:
        """The longest schedule a trial can have: pruning steps are counted in its epochs."""
        return self.space.max_value("epochs") or self.base.epochs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar10-tune",
        description="Search the training config for the best validation accuracy with Optuna; writes the best "
                    "params (TrainConfig keys) for `--params`, plots and a report. Re-run to resume.",
        epilog=f"Config flags (below) are fixed for every trial and drop out of the search space; --val-fraction "
               f"defaults to {DEFAULT_VAL_FRACTION} here. Many machines: "
               "run the same command with --storage postgresql://user:pw@host/db on each. Live view: "
               "optuna-dashboard <storage printed at start>.",
    )
    tune = parser.add_argument_group("tuning")
    default = frameworks.default()
    tune.add_argument("--framework", choices=frameworks.NAMES, default=default,
                      help=f"the framework that trains (default here: {default}, the one installed in this "
                           "environment)")
    tune.add_argument("--study-name", default="", metavar="NAME", help="study name (default: <framework>-<dataset>)")
    tune.add_argument("--storage", metavar="URL",
                      help="sqlite:///FILE, postgresql://user:pw@host/db, or a FILE.journal (default: "
                           "studies/<study>.db, or studies/<study>.journal with --workers > 1)")
    tune.add_argument("--studies-dir", type=Path, default=Path("studies"), metavar="DIR",
                      help="local storage files, plots, report and trial runs (default: studies)")
    tune.add_argument("--trials", type=int, default=20, metavar="N",
                      help="finished trials the study should have in all; only the missing ones run (default: 20)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS",
                      help="start no new trial after this many seconds (running ones finish)")
    tune.add_argument("--workers", type=int, metavar="N",
                      help="local worker processes sharing the study, each on its own GPU while there are enough "
                           "(default: one per visible NVIDIA GPU, else 1)")
    tune.add_argument("--pruner", choices=PRUNERS, default="median", help="early stopping of trials (default: median)")
    tune.add_argument("--pruner-startup-trials", type=int, default=5, metavar="N",
                      help="median: completed trials before any pruning (default: 5)")
    tune.add_argument("--pruner-warmup", type=int, default=2, metavar="EPOCHS",
                      help="no pruning before this many epochs of the longest schedule; hyperband's minimum "
                           "resource (default: 2)")
    tune.add_argument("--sampler-seed", type=int, metavar="SEED",
                      help="seed of the TPE sampler, for a reproducible study")
    tune.add_argument("--space", metavar="FILE",
                      help=f"JSON search-space overrides, merged over {DEFAULT_SPACE.name} (null drops a parameter)")
    tune.add_argument("--best", type=Path, metavar="PATH", help="where best params go (default: best_params.json)")
    tune.add_argument("--final-test", action=argparse.BooleanOptionalAction, default=True,
                      help="train the best params on the whole training set and report the test accuracy "
                           "(costs about one trial; default: on)")
    tune.add_argument("--dry-run", action="store_true",
                      help=f"smoke test: {DRY_RUN_TRIALS} tiny trials on synthetic data, everything written to a "
                           "fresh temporary directory")
    add_config_arguments(parser)
    return parser


def default_workers(base: TrainConfig) -> int:
    """One worker per visible GPU (run_workers gives each its own), or one: on the CPU, one process already uses
    every core."""
    return (len(visible_gpus()) if base.device != "cpu" else 0) or 1


def tune_config_from_args(args: argparse.Namespace) -> TuneConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k for k in vars(args) if k in fields}
    bookkeeping = sorted(flags & {"runs_dir", "run_name"})
    if bookkeeping:
        raise TuneError(f"{' '.join(map(_flag, bookkeeping))}: the tuner names trial runs itself "
                        f"(under --studies-dir/<study>/runs)")
    base = config_from_args(args)
    fixed = flags | (set(json.loads(Path(args.params).read_text())) if args.params else set())
    if "val_fraction" not in fixed:
        base = TrainConfig.from_dict({"val_fraction": DEFAULT_VAL_FRACTION}, base)
    studies_dir, best, trials = args.studies_dir, args.best, args.trials
    if args.dry_run:
        import tempfile

        studies_dir, trials = Path(tempfile.mkdtemp(prefix="tune-dry-run-")), DRY_RUN_TRIALS
        # the trials' runs go under studies_dir anyway; base.runs_dir places the MLflow store there too
        base = TrainConfig.from_dict({**DRY_RUN, "runs_dir": str(studies_dir / "runs")}, base)
        fixed |= set(DRY_RUN)
        best = best or studies_dir / "best_params.json"
    return TuneConfig(
        base=base, space=SearchSpace.load(args.space, frozenset(fixed)), framework=args.framework,
        study_name=args.study_name, storage=args.storage, studies_dir=studies_dir, trials=trials,
        timeout=args.timeout, workers=default_workers(base) if args.workers is None else args.workers,
        pruner=args.pruner, pruner_startup_trials=args.pruner_startup_trials, pruner_warmup=args.pruner_warmup,
        sampler_seed=args.sampler_seed, best_path=best or Path("best_params.json"), final_test=args.final_test,
    )
