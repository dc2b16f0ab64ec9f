"""Hyperparameter search with Optuna for either trainer: ``python -m training.tune --help``.

Every trial fills a ``TrainConfig`` from the search space and runs the framework's own ``train()`` in this process,
scored on a validation split held out of the training set (``val_fraction``), never on the test set. After each
epoch the validation accuracy is reported to Optuna and the pruner may stop a hopeless trial.

Search space: ``training/search_space.json``; ``--space FILE`` overrides it parameter by parameter (``null`` drops
one). Config flags given on the command line (and keys of ``--params FILE``) are fixed, not searched: ``--epochs 8``
trains every trial for 8 epochs. Data and bookkeeping fields (dataset, sample limits, seed, ...) are never searched.

Storage, where finished trials live (re-running the same command resumes the study and loses none of them):
  one worker:             sqlite:///studies/<study>.db                (the default)
  --workers N local:      studies/<study>.journal, Optuna's journal file (SQLite locks under parallel writers)
  many machines:          --storage postgresql://user:password@host/db on every worker (Optuna's RDB storage)
``optuna-dashboard <the same storage>`` shows the study live.

Trials are counted, not run blindly: ``--trials N`` is the target number of finished (complete or pruned) trials of
the whole study, so every worker runs only what is missing and returns once the study has reached it. A trial left
RUNNING by a killed worker is marked FAIL: at once when that worker ran on this machine (its process is gone),
after a missed heartbeat (``GRACE_S``) on database storages otherwise; failed trials do not count.

Outputs, under ``studies/<study>/``: PNG plots, ``report.json`` (best trial, counts, final test accuracy) and the
trial runs (``runs/<host>-<pid>/trial-NNNN``); ``best_params.json`` holds only TrainConfig keys, for
``python -m training.train_torch --params best_params.json``. The final test accuracy of the best params comes
from one extra training run on the whole training set (``--final-test``, on by default: it costs about one trial,
a few percent of a study, and it is the only honest accuracy figure; the result is cached in the study).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import math
import multiprocessing
import os
import re
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from training.config import ConfigError, TrainConfig, add_config_arguments, config_from_args
from training.datasets import DataError
from training.run import RunError

# not hyperparameters: they choose the data, the validation split (seed) or where the run is written
NOT_TUNABLE = ("dataset", "data_dir", "max_train_samples", "max_test_samples", "val_fraction", "seed", "device",
               "runs_dir", "run_name")
HYPERPARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TUNABLE)
# what a study's validation accuracy means: trials that differ here are not comparable and must not share a study
OBJECTIVE_KEYS = ("dataset", "max_train_samples", "max_test_samples", "val_fraction", "seed")
DEFAULT_SPACE = Path(__file__).with_name("search_space.json")
TRAINERS = {"torch": "training.train_torch", "tensorflow": "training.train_tf"}
PRUNERS = ("median", "hyperband", "none")
PARAM_TYPES = ("float", "int", "categorical")
DEFAULT_VAL_FRACTION = 0.1  # 5000 of CIFAR-10's 50000 training images: ranks trials to about +-0.5% accuracy
HEARTBEAT_S = 10  # database storages: a running trial writes a heartbeat this often (seconds) ...
GRACE_S = 60  # ... and one silent for this long belongs to a dead worker: it is marked FAIL
SCHEMA_ATTEMPTS = 3  # tries to open a database storage while other workers create its tables (1 s, 2 s apart)
POLL_S = 1.0  # how often a worker waiting for other workers' last trials looks again (seconds)
HOST = socket.gethostname()
DRY_RUN = {"dataset": "synthetic", "epochs": 2, "width": 8, "max_train_samples": 2000, "max_test_samples": 500}
DRY_RUN_TRIALS = 2


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features chosen on purpose here (heartbeat, multivariate
    TPE, constant liar, matplotlib plots)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class TuneError(Exception):
    """A tuning setting or storage a user got wrong; the message names the offending value."""


def worker_id() -> str:
    """Names this process in trial attributes and run directories (a forked worker gets its own)."""
    return f"{HOST}-{os.getpid()}"


# ---------------------------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class Param:
    """One searched TrainConfig field: a float or int range (optionally log-scaled) or a list of choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @classmethod
    def from_json(cls, name: str, spec: Any, source: str) -> Param:
        """Check one entry of a search-space file; every error names the file, the parameter and the value."""
        where = f"search space {source}: parameter {name!r}"
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        if name not in fields:
            raise TuneError(f"{where} is not a TrainConfig field; searchable: {', '.join(HYPERPARAMETERS)}")
        if name in NOT_TUNABLE:
            raise TuneError(f"{where} is not a hyperparameter (it picks the data, the split or the run directory); "
                            f"set it with --{name.replace('_', '-')} instead")
        if not isinstance(spec, dict):
            raise TuneError(f"{where} must be an object like {{\"type\": \"float\", \"low\": 0.01, \"high\": 1}} "
                            f"(or null to drop it), got {spec!r}")
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            raise TuneError(f"{where} has unknown type {kind!r}; use one of {', '.join(PARAM_TYPES)}")
        allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log"}
        extra = sorted(set(spec) - allowed)
        if extra:
            raise TuneError(f"{where}: keys {extra} do not apply to type {kind!r}; allowed: {sorted(allowed)}")
        if kind == "categorical":
            param = cls._categorical(name, spec.get("choices"), where)
        else:
            param = cls._range(name, kind, spec, where)
        for value in param.boundary_values():
            try:
                TrainConfig.from_dict({name: value})
            except ConfigError as e:
                raise TuneError(f"{where}: value {value!r} is not a valid config value: {e}") from None
        return param

    @classmethod
    def _categorical(cls, name: str, choices: Any, where: str) -> Param:
        scalar = (bool, int, float, str)
        if not isinstance(choices, list) or not choices or not all(isinstance(c, scalar) for c in choices):
            raise TuneError(f"{where}: choices must be a non-empty list of numbers, strings or booleans, "
                            f"got {choices!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise TuneError(f"{where}: choices {choices!r} repeat a value")
        return cls(name, "categorical", choices=tuple(choices))

    @classmethod
    def _range(cls, name: str, kind: str, spec: dict, where: str) -> Param:
        low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
        number = int if kind == "int" else (int, float)
        for key, value in (("low", low), ("high", high)):
            if not isinstance(value, number) or isinstance(value, bool) or not math.isfinite(value):
                raise TuneError(f"{where}: {key} must be {'an integer' if kind == 'int' else 'a number'}, "
                                f"got {value!r}")
        if not isinstance(log, bool):
            raise TuneError(f"{where}: log must be true or false, got {log!r}")
        if low >= high:
            raise TuneError(f"{where}: low {low!r} must be below high {high!r}")
        if log and low <= 0:
            raise TuneError(f"{where}: a log range needs low > 0, got low {low!r}")
        return cls(name, kind, low=low, high=high, log=log)

    def boundary_values(self) -> tuple[Any, ...]:
        """Every value the trainer must accept: the choices, or both ends cast to what Optuna will suggest."""
        if self.type == "categorical":
            return self.choices
        cast = int if self.type == "int" else float
        return cast(self.low), cast(self.high)

    def contains(self, value: Any) -> bool:
        """Whether Optuna could suggest ``value`` for this parameter (so it may be enqueued as a trial)."""
        if self.type == "categorical":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if self.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            return False
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    @classmethod
    def load(cls, overrides: str | Path | None = None, fixed: frozenset[str] = frozenset()) -> SearchSpace:
        """The default space, each entry of ``overrides`` replacing (or with null, dropping) the default one,
        minus the ``fixed`` fields (set explicitly on the command line)."""
        specs = {name: (spec, DEFAULT_SPACE) for name, spec in _read_json_object(DEFAULT_SPACE).items()}
        if overrides is not None:
            specs.update({name: (spec, overrides) for name, spec in _read_json_object(Path(overrides)).items()})
        checked = [Param.from_json(name, spec, str(source))
                   for name, (spec, source) in specs.items() if spec is not None]
        params = tuple(p for p in checked if p.name not in fixed)
        if not params:
            raise TuneError(f"nothing left to search: every parameter is fixed by a flag or dropped ({sorted(fixed)})")
        return cls(params)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.params}

    def values_of(self, config: TrainConfig) -> dict[str, Any]:
        """``config``'s value of every searched parameter that lies inside this space."""
        return {p.name: getattr(config, p.name) for p in self.params if p.contains(getattr(config, p.name))}

    def max_value(self, name: str) -> Any | None:
        """The largest value ``name`` can take in this space (None when it is not searched)."""
        for p in self.params:
            if p.name == name:
                return max(p.choices) if p.type == "categorical" else p.high
        return None


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"search space file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as e:
        raise TuneError(f"search space file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise TuneError(f"search space file {str(path)!r} must hold a JSON object, got {type(values).__name__}")
    return values


# ---------------------------------------------------------------------------------------------------- tuning config


@dataclass(frozen=True)
class TuneConfig:
    """Everything one tuning command does; ``from_args`` maps the CLI onto it, tests and benchmarks build it."""

    base: TrainConfig  # every trial starts from it; val_fraction > 0 picks the validation split
    space: SearchSpace
    framework: str = "torch"
    study_name: str = ""  # "" -> <framework>-<dataset>
    storage: str | None = None  # None -> a local file under studies_dir (see module docstring)
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
        if self.framework not in TRAINERS:
            problems.append(f"framework {self.framework!r} is not one of {list(TRAINERS)}")
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
        prog="python -m training.tune",
        description="Search the training config for the best validation accuracy with Optuna; writes the best "
                    "params (TrainConfig keys) for `--params`, plots and a report. Re-run to resume.",
        epilog=f"Config flags (below) are fixed for every trial and drop out of the search space; --val-fraction "
               f"defaults to {DEFAULT_VAL_FRACTION} here. Many machines: "
               "run the same command with --storage postgresql://user:pw@host/db on each. Live view: "
               "optuna-dashboard <storage printed at start>.",
    )
    tune = parser.add_argument_group("tuning")
    tune.add_argument("--framework", choices=list(TRAINERS), default="torch", help="trainer (default: torch)")
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
    tune.add_argument("--workers", type=int, default=1, metavar="N",
                      help="local worker processes sharing the study (default: 1)")
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

        base = TrainConfig.from_dict(DRY_RUN, base)
        fixed |= set(DRY_RUN)
        studies_dir, trials = Path(tempfile.mkdtemp(prefix="tune-dry-run-")), DRY_RUN_TRIALS
        best = best or studies_dir / "best_params.json"
    return TuneConfig(
        base=base, space=SearchSpace.load(args.space, frozenset(fixed)), framework=args.framework,
        study_name=args.study_name, storage=args.storage, studies_dir=studies_dir, trials=trials,
        timeout=args.timeout, workers=args.workers, pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials, pruner_warmup=args.pruner_warmup,
        sampler_seed=args.sampler_seed, best_path=best or Path("best_params.json"), final_test=args.final_test,
    )


# ---------------------------------------------------------------------------------------------------- storage, study


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


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", url)


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
            with _experimental_ok():
                return optuna.storages.RDBStorage(url, engine_kwargs=connect, heartbeat_interval=HEARTBEAT_S,
                                                  grace_period=GRACE_S)
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
    with _experimental_ok():
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


# ---------------------------------------------------------------------------------------------------- trials


def load_trainer(framework: str) -> Callable[..., Any]:
    """The framework's ``train(config, *, resume=None, on_epoch=None)``, imported only when asked for."""
    try:
        return importlib.import_module(TRAINERS[framework]).train
    except ImportError as e:
        hint = " (run the tuner with the TensorFlow environment: .venv-tf/bin/python)" if framework != "torch" else ""
        raise TuneError(f"framework {framework!r} cannot be loaded: {e}{hint}") from None


def _counts(trials: list[FrozenTrial]) -> dict[str, int]:
    return {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}


def _finished(trials: list[FrozenTrial]) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        pass
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the running trials whose worker is gone; returns their numbers.

    Trials of this machine: their process no longer exists (a pid reused by another process hides a dead trial
    until its heartbeat runs out). Database storages also fail any trial whose heartbeat is older than GRACE_S,
    which covers workers on other machines. Journal storage has no heartbeat: it is for one machine.
    """
    with _experimental_ok():
        optuna.storages.fail_stale_trials(study)
    dead = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("host") == HOST and "pid" in t.user_attrs and not _alive(t.user_attrs["pid"])]
    for number in dead:
        # another worker marked it first
        with contextlib.suppress(ValueError, optuna.exceptions.UpdateFinishedTrialError):
            study.tell(number, state=TrialState.FAIL)
    return dead


class _Surplus(Exception):
    """This trial would overshoot the target: other workers started the last ones at the same moment."""


def make_objective(config: TuneConfig, train: Callable[..., Any]) -> Callable[[optuna.Trial], float]:
    runs_dir = config.study_dir / "runs" / worker_id()  # one per worker: runs/LAST.json is not shared

    def objective(trial: optuna.Trial) -> float:
        # trial numbers come from the storage in order, so the first `trials` live ones win any race
        ahead = trial.study.get_trials(deepcopy=False,
                                       states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in ahead) >= config.trials:
            raise _Surplus(f"trial {trial.number}: the study's {config.trials} trials are already taken")
        params = config.space.suggest(trial)
        train_config = TrainConfig.from_dict(
            {**params, "runs_dir": str(runs_dir), "run_name": f"trial-{trial.number:04d}"}, config.base)
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("run_dir", str(runs_dir / train_config.run_name))
        trial.set_user_attr("config", {k: getattr(train_config, k) for k in HYPERPARAMETERS})
        # steps count epochs of the longest schedule, so a 4-epoch trial reports at steps 4, 8, 12, 16 of a
        # 16-epoch one: the pruner compares trials at the same point of their one-cycle learning-rate schedule
        scale = config.max_epochs / train_config.epochs

        def on_epoch(epoch: int, row: dict) -> None:
            trial.report(row["eval_acc"], round(epoch * scale))
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}/{train_config.epochs}: validation accuracy "
                                         f"{row['eval_acc']:.4f}")

        return train(train_config, on_epoch=on_epoch).eval_accuracy

    return objective


def trial_seconds(trial: FrozenTrial) -> float:
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def progress_line(study: optuna.Study, trial: FrozenTrial, target: int) -> None:
    """One line per trial this worker finished: number, state, validation accuracy, time, params."""
    if trial.state == TrialState.FAIL:  # failures other than _Surplus propagate and never get here
        print(f"trial {trial.number} dropped: other workers started the study's last trials", flush=True)
        return
    epochs = trial.user_attrs.get("config", {}).get("epochs")
    where = f" after {len(trial.intermediate_values)}/{epochs} epochs" if trial.state == TrialState.PRUNED else ""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    done = _finished(study.get_trials(deepcopy=False))
    print(f"trial {trial.number} {trial.state.name}{where}: val_acc {value} in {trial_seconds(trial):.1f} s "
          f"[{done}/{target} finished, {worker_id()}] {params}", flush=True)


def work(config: TuneConfig, deadline: float | None) -> None:
    """Run trials until the study has ``config.trials`` finished ones (or ``deadline``, a time.time())."""
    study = open_study(config, open_storage(storage_url(config)))
    objective = make_objective(config, load_trainer(config.framework))
    waiting_for: set[int] = set()
    while deadline is None or time.time() < deadline:
        fail_dead_trials(study)
        trials = study.get_trials(deepcopy=False)
        running = {t.number for t in trials if t.state == TrialState.RUNNING}
        if _finished(trials) >= config.trials:
            return
        if _finished(trials) + len(running) >= config.trials:
            # the last trials run elsewhere; wait in case their worker dies and they must be run again
            if running != waiting_for:
                print(f"waiting for trials {sorted(running)} of other workers", flush=True)
                waiting_for = running
            time.sleep(POLL_S)
            continue
        study.optimize(objective, n_trials=1, catch=(_Surplus,),
                       callbacks=[lambda study, trial: progress_line(study, trial, config.trials)])


@contextlib.contextmanager
def _threads_per_worker(workers: int) -> Iterator[None]:
    """Split this machine's cores between worker processes started inside the block (they read it at import)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    names = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: os.environ.get(n) or threads for n in names})
    try:
        yield
    finally:
        for n, value in saved.items():
            if value is None:
                os.environ.pop(n)
            else:
                os.environ[n] = value


def _worker_process(config: TuneConfig, deadline: float | None) -> None:
    _quiet_optuna()
    try:
        work(config, deadline)
    except (TuneError, ConfigError, DataError, RunError) as e:
        print(f"error: worker {worker_id()}: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(config: TuneConfig, deadline: float | None) -> None:
    if config.workers == 1:
        work(config, deadline)
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked framework state
    with _threads_per_worker(config.workers):
        procs = [ctx.Process(target=_worker_process, args=(config, deadline), name=f"tune-worker-{i}")
                 for i in range(config.workers)]
        for p in procs:
            p.start()
    for p in procs:
        p.join()
    failed = [f"pid {p.pid} exit code {p.exitcode}" for p in procs if p.exitcode != 0]
    if failed:
        raise TuneError(f"{len(failed)} of {config.workers} workers failed ({', '.join(failed)}); "
                        f"finished trials are kept, fix the error and run the command again")


# ---------------------------------------------------------------------------------------------------- results


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


def evaluate_on_test(framework: str, config: TrainConfig) -> FinalTest:
    """Train ``config`` on the whole training set (no validation split) and score it on the test set."""
    config = TrainConfig.from_dict({"val_fraction": 0.0}, config)
    result = load_trainer(framework)(config)
    return FinalTest(accuracy=result.eval_accuracy, train_seconds=sum(r["train_seconds"] for r in result.metrics),
                     run_dir=str(Path(config.runs_dir) / config.run_name))


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, payload: Any) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))


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
            _write_atomic(out_dir / name, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
            plt.close(figure)
            written.append(str(out_dir / name))
    return written


def report(config: TuneConfig, study: optuna.Study, url: str) -> Report:
    """Plots, best_params.json and, if asked, the final test of the best params; report.json last."""
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
    _write_json(config.best_path, best_params)
    print(f"best trial {best.number}: validation accuracy {best.value:.4f}; params written to "
          f"{config.best_path.resolve()}", flush=True)
    if config.final_test:
        key = f"final_test_trial_{best.number}"  # kept in the study: a re-run (or another worker) reuses it
        if key in study.user_attrs:
            result.final_test = FinalTest(**study.user_attrs[key])
        else:
            run = TrainConfig.from_dict({**best_params, "runs_dir": str(config.study_dir / "runs" / worker_id()),
                                         "run_name": f"test-trial-{best.number:04d}"}, config.base)
            result.final_test = evaluate_on_test(config.framework, run)
            study.set_user_attr(key, dataclasses.asdict(result.final_test))
        print(f"final test accuracy of trial {best.number}'s params (whole training set): "
              f"{result.final_test.accuracy:.4f}", flush=True)
    _write_json(config.study_dir / "report.json", dataclasses.asdict(result))
    return result


def _quiet_optuna() -> None:
    # our progress lines replace optuna's per-trial log lines; its warning for a failed trial would repeat the
    # error we raise anyway (and call a surplus trial a failure)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def tune(config: TuneConfig) -> Report:
    """Run (or resume) the study until it has ``config.trials`` finished trials, then report on it."""
    _quiet_optuna()
    deadline = None if config.timeout is None else time.time() + config.timeout
    load_trainer(config.framework)  # fail before anything is written
    url = storage_url(config)
    study = open_study(config, open_storage(url))
    trials = study.get_trials(deepcopy=False)
    print(f"study {config.name!r} in {redact(url)}: {_finished(trials)}/{config.trials} trials finished, "
          f"{config.workers} worker(s), pruner {config.pruner}; live view: optuna-dashboard {redact(url)}", flush=True)
    run_workers(config, deadline)
    trials = study.get_trials(deepcopy=False)
    if _finished(trials) < config.trials:
        print(f"stopped by --timeout with {_finished(trials)}/{config.trials} trials finished: "
              f"run the same command to continue", flush=True)
    return report(config, study, url)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tune(tune_config_from_args(args))
    except (TuneError, ConfigError, DataError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished trials are saved; run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
