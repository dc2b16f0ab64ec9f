"""The search space: the default file, overrides and fixed parameters, and bad files failing cleanly."""

from __future__ import annotations

import json

import pytest

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.__main__ import main
from cifar10_pipeline.training.tuning.space import Param, SearchSpace
from tests.training.tuning.conftest import SMALL


def test_default_space_covers_the_issue_and_every_bound_is_a_valid_config():
    space = SearchSpace.load()
    names = {p.name for p in space.params}
    assert names == {"lr", "weight_decay", "batch_size", "momentum", "dropout", "label_smoothing", "width",
                     "crop_padding", "rotation", "flip", "epochs"}
    by_name = {p.name: p for p in space.params}
    assert by_name["lr"].log and by_name["weight_decay"].log
    assert by_name["batch_size"].type == by_name["width"].type == "categorical"
    for p in space.params:
        for value in p.boundary_values():
            TrainConfig.from_dict({p.name: value})


def test_overrides_replace_or_drop_defaults_and_flags_fix_parameters(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lr": {"type": "float", "low": 0.05, "high": 0.5}, "flip": None}))
    space = SearchSpace.load(path, fixed=frozenset({"width", "epochs"}))
    by_name = {p.name: p for p in space.params}
    assert by_name["lr"] == Param("lr", "float", low=0.05, high=0.5, log=False)
    assert not {"flip", "width", "epochs"} & set(by_name)
    assert by_name["momentum"].high == 0.95  # untouched default


BAD_SPACES = [
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 1}},
     "parameter 'learning_rate' is not a TrainConfig field"),
    ({"dataset": {"type": "categorical", "choices": ["cifar10"]}}, "'dataset' is not a hyperparameter"),
    ({"lr": {"type": "float", "low": 0.5, "high": 0.1}}, "low 0.5 must be below high 0.1"),
    ({"lr": {"type": "float", "low": 0.3, "high": 0.3}}, "low 0.3 must be below high 0.3"),
    ({"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "a log range needs low > 0, got low 0"),
    ({"lr": {"type": "flaot", "low": 0.01, "high": 0.1}}, "unknown type 'flaot'"),
    ({"lr": {"type": "float", "low": "0.01", "high": 0.1}}, "low must be a number, got '0.01'"),
    ({"lr": {"type": "float", "low": 0.01, "high": 0.1, "choices": [1]}}, "keys ['choices'] do not apply"),
    ({"lr": [0.01, 0.1]}, "must be an object like"),
    ({"width": {"type": "float", "low": 8, "high": 64}}, "'width' must be int, got 8.0"),
    ({"dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "dropout=1.0 must be in [0, 1)"),
    ({"batch_size": {"type": "categorical", "choices": []}}, "choices must be a non-empty list"),
    ({"batch_size": {"type": "categorical", "choices": [64, 64]}}, "choices [64, 64] repeat a value"),
]


@pytest.mark.parametrize("space, message", BAD_SPACES)
def test_bad_search_space_exits_non_zero_naming_the_value_and_writes_nothing(tmp_path, capsys, space, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "space.json").write_text(json.dumps(space))
    out = tmp_path / "out"
    code = main([*SMALL, "--space", str(tmp_path / "in" / "space.json"), "--studies-dir", str(out / "studies"),
                 "--best", str(out / "best_params.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path / "in" / "space.json") in err
    assert not out.exists()
