"""The shared training config: overrides, type checks, the generated CLI and the learning-rate schedule."""

import json

import pytest

from cifar10_pipeline.training.cli import build_parser
from cifar10_pipeline.training.config import ConfigError, TrainConfig, config_from_args, one_cycle_lr


def test_defaults_are_valid_and_round_trip():
    config = TrainConfig()
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_overrides_apply_and_ints_widen_to_floats():
    config = TrainConfig.from_dict({"lr": 1, "batch_size": 64, "flip": False, "data_dir": None})
    assert (config.lr, config.batch_size, config.flip, config.data_dir) == (1.0, 64, False, None)
    assert isinstance(config.lr, float)


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": 0.1}, "unknown config keys ['learning_rate']"),
    ({"batch_size": "64"}, "'batch_size' must be int, got '64'"),
    ({"batch_size": 64.0}, "'batch_size' must be int"),
    ({"flip": 1}, "'flip' must be bool"),
    ({"epochs": True}, "'epochs' must be int"),
    ({"lr": float("nan")}, "'lr' must be float"),
    ({"lr": -0.1}, "lr=-0.1 must be > 0"),
    ({"eval_every": 0}, "eval_every=0 must be > 0"),
    ({"dropout": 1.0}, "dropout=1.0 must be in [0, 1)"),
    ({"ema": 1.0}, "ema=1.0 must be in [0, 1)"),
    ({"dataset": "imagenet"}, "dataset='imagenet' is not one of"),
    ({"device": "tpu"}, "device='tpu' is not one of"),
    ({"precision": "float16"}, "precision='float16' is not one of ['auto', 'float32', 'bfloat16']"),
    ({"image_size": 7}, "image_size=7 must be 0 (the data set's native size) or >= 8"),
    ({"image_size": -32}, "image_size=-32 must be 0"),
    ({"image_size": 32.0}, "'image_size' must be int"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_overrides_fail_loudly_with_the_offending_value(values, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(values)
    assert message in str(e.value)


def test_params_file_then_flags(tmp_path):
    params = tmp_path / "best.json"
    params.write_text(json.dumps({"lr": 0.05, "width": 16, "epochs": 3}))
    args = build_parser().parse_args(["--params", str(params), "--epochs", "7", "--flip", "false"])
    config = config_from_args(args)
    assert (config.lr, config.width, config.epochs, config.flip) == (0.05, 16, 7, False)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"widht": 3}', "unknown config keys ['widht']"),
])
def test_bad_params_files(tmp_path, content, message):
    path = tmp_path / "params.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_json(path)


def test_one_cycle_schedule_warms_up_peaks_and_decays_to_zero():
    config = TrainConfig(lr=0.4, warmup=0.25)
    assert one_cycle_lr(config, 0.0) == 0.0
    assert one_cycle_lr(config, 0.125) == pytest.approx(0.2)
    assert one_cycle_lr(config, 0.25) == pytest.approx(0.4)
    assert one_cycle_lr(config, 0.625) == pytest.approx(0.2)
    assert one_cycle_lr(config, 1.0) == 0.0


@pytest.mark.parametrize("flip, tta, averaged", [(True, True, True), (False, True, False), (True, False, False)])
def test_the_model_averages_over_mirrors_only_if_it_trained_on_them(flip, tta, averaged):
    config = TrainConfig.from_dict({"flip": flip, "tta": tta})  # the user-facing key of params files and config.json
    spec = config.model_spec((28, 28, 1), 10, (72.9,), (90.0,))
    assert spec.tta is averaged
    assert (spec.image_shape, spec.num_classes, spec.mean, spec.std) == ((28, 28, 1), 10, (72.9,), (90.0,))
    assert (spec.width, spec.dropout) == (config.width, config.dropout)


@pytest.mark.parametrize("crop_padding, tta_shift, axes", [(2, 0, False), (2, 1, False), (2, 2, True), (0, 0, False),
                                                           (1, 1, True)])
def test_the_spec_shifts_its_tta_views_as_far_and_as_the_config_says(crop_padding, tta_shift, axes):
    config = TrainConfig.from_dict({"crop_padding": crop_padding, "tta_shift": tta_shift, "tta_shift_axes": axes})
    spec = config.model_spec((28, 28, 1), 10, (72.9,), (90.0,))
    assert (spec.tta_shift, spec.tta_shift_axes) == (tta_shift, axes)


def test_shifting_along_the_axes_without_a_shift_is_refused():
    with pytest.raises(ConfigError, match="tta_shift_axes=True needs tta_shift > 0"):
        TrainConfig.from_dict({"tta_shift_axes": True})


@pytest.mark.parametrize("crop_padding, tta_shift, message", [
    (2, 3, "tta_shift=3 must be <= crop_padding=2"),
    (0, 1, "tta_shift=1 must be <= crop_padding=0"),
    (2, -1, "tta_shift=-1 must be >= 0"),
])
def test_a_tta_shift_the_model_never_trained_on_is_refused(crop_padding, tta_shift, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"crop_padding": crop_padding, "tta_shift": tta_shift})
