"""The search space: which TrainConfig fields the tuner searches, over which ranges or choices.

The default space is ``search_space.json`` next to this module; ``--space FILE`` overrides it parameter by
parameter (``null`` drops one). Config flags given on the command line (and keys of ``--params FILE``) are fixed,
not searched: ``--epochs 8`` trains every trial for 8 epochs. Data and bookkeeping fields (dataset, sample limits,
seed, ...) are never searched.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.tuning.errors import TuneError

# not hyperparameters: they choose the data, the validation split (seed) or where the run is written and tracked
NOT_TUNABLE = ("dataset", "data_dir", "max_train_samples", "max_test_samples", "val_fraction", "seed", "device",
               "runs_dir", "run_name", "tracking")
HYPERPARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_TUNABLE)
DEFAULT_SPACE = Path(__file__).with_name("search_space.json")
PARAM_TYPES = ("float", "int", "categorical")


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
