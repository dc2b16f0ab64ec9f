"""Opening a study: it refuses workers scored on other data, and a new one starts from the base config."""

from __future__ import annotations

import optuna
import pytest

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.tuning.config import TuneConfig
from cifar10_pipeline.training.tuning.errors import TuneError
from cifar10_pipeline.training.tuning.space import SearchSpace
from cifar10_pipeline.training.tuning.study import open_storage, open_study, storage_url


def test_a_study_refuses_workers_scored_on_other_data(tmp_path):
    base = TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1})
    config = TuneConfig(base=base, space=SearchSpace.load(), study_name="s", studies_dir=tmp_path)
    storage = open_storage(storage_url(config))
    open_study(config, storage)
    open_study(config, storage)  # the same settings load it again
    other = TuneConfig(base=TrainConfig.from_dict({"seed": 1}, base), space=config.space, study_name="s",
                            studies_dir=tmp_path)
    with pytest.raises(TuneError, match=r"'seed': \(0, 1\)"):
        open_study(other, storage)


def test_a_new_study_starts_from_the_base_config_once(tmp_path):
    # rotation 20 is outside the default space (0-15): that one parameter is left to the sampler
    base = TrainConfig.from_dict({"dataset": "synthetic", "val_fraction": 0.1, "lr": 0.3, "rotation": 20.0})
    config = TuneConfig(base=base, space=SearchSpace.load(), study_name="s", studies_dir=tmp_path)
    storage = open_storage(storage_url(config))
    study = open_study(config, storage)
    open_study(config, storage)  # loading it again enqueues nothing more
    (first,) = study.get_trials(deepcopy=False)
    assert first.state == optuna.trial.TrialState.WAITING
    assert first.system_attrs["fixed_params"] == {p.name: getattr(base, p.name) for p in config.space.params
                                                  if p.name != "rotation"}
    assert first.system_attrs["fixed_params"]["lr"] == 0.3
