"""The training config shared by the PyTorch and TensorFlow trainers: the one source of truth.

The CLI is generated from the dataclass fields (each field's ``help`` metadata is its ``--help`` line);
``--params FILE`` loads a JSON object of overrides first, explicit flags win over it. Unknown keys and values
of the wrong type fail loudly with the offending key and value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.tracking.settings import ENV as TRACKING_ENV
from cifar10_pipeline.tracking.settings import TrackingError, enabled_by_env
from cifar10_pipeline.training.datasets import DATASETS


class ConfigError(ValueError):
    """A config value or file a user got wrong."""


def _f(default: Any, help: str, **choices: Any) -> Any:
    return field(default=default, metadata={"help": help, **choices})


@dataclass
class TrainConfig:
    # data
    dataset: str = _f("cifar10", "data set", choices=DATASETS)
    data_dir: str | None = _f(None, "data directory (default depends on the data set)")
    max_train_samples: int = _f(0, "use only the first N training images (0: all)")
    max_test_samples: int = _f(0, "evaluate on only the first N test images (validation images with "
                                     "val_fraction; 0: all)")
    val_fraction: float = _f(0.0, "hold this fraction of the training set out and evaluate on it instead of the "
                                  "test set (tuning)")
    # the network halves the resolution three times, so it needs at least 8 pixels (checked in __post_init__)
    image_size: int = _f(0, "side of the square model input in pixels, every image brought to it by the service's own "
                            "decoder (0: 32 for folder, the native size of the built-in sets: 32 for cifar10 and "
                            "synthetic, 28 for fashion-mnist)")
    # optimisation: SGD with Nesterov momentum and a one-cycle learning rate (linear warm-up, linear decay)
    epochs: int = _f(16, "training epochs")
    batch_size: int = _f(256, "images per training step")
    lr: float = _f(0.1, "peak learning rate")
    warmup: float = _f(0.2, "fraction of the steps spent warming the learning rate up")
    momentum: float = _f(0.9, "SGD Nesterov momentum")
    weight_decay: float = _f(5e-4, "L2 weight decay (not on BatchNorm or biases)")
    label_smoothing: float = _f(0.2, "label smoothing of the cross-entropy loss")
    # the live weights still train; the average is what is evaluated, checkpointed and saved, so the exported
    # model is the averaged one. It smooths the noise of the last steps, which a learning rate that falls to 0
    # (one_cycle_lr) also does: README says what it gained on a shipped config
    ema: float = _f(0.0, "decay of an exponential moving average of the weights and BatchNorm statistics, updated "
                         "after every step (0: off; 0.999 weighs about the last 1,000 steps, less while fewer were "
                         "taken); the average is evaluated and saved, and the metrics also score the live weights "
                         "(eval_acc_live)")
    # model
    width: int = _f(32, "channels of the first block; blocks have width, 2*width, 4*width")
    dropout: float = _f(0.1, "dropout before the classifier")
    # augmentation, applied on whole batches on the training device
    crop_padding: int = _f(2, "random crop: shift by up to this many pixels (reflection padding)")
    flip: bool = _f(True, "random horizontal flips")
    rotation: float = _f(5.0, "random rotation of up to +-this many degrees")
    # off by default: it doubles the work of every prediction (the service's throughput included) for a small gain
    # in accuracy
    tta: bool = _f(False, "test-time augmentation: the model averages the logits of each image and its mirror; part "
                          "of the exported graph (only with flip: a model never trained on mirrors is not averaged "
                          "over them)")
    tta_shift: int = _f(0, "test-time augmentation: the model also averages the logits of each image (and mirror) "
                           "shifted this many pixels down-right and up-left, half the weight on the unshifted ones; "
                           "part of the exported graph, three times the work of --tta alone (only up to crop_padding: "
                           "a model is averaged over the shifts it trained on)")
    tta_shift_axes: bool = _f(False, "test-time augmentation: shift the image (and mirror) by tta_shift pixels down, "
                                     "up, right and left instead of down-right and up-left, every view weighing the "
                                     "same; five times the work of --tta alone")
    # run
    # evaluating reads no random stream and changes no weight, so it never changes the model trained
    eval_every: int = _f(1, "evaluate on the eval split after every Nth epoch and after the last; the metrics rows of "
                            "the other epochs have no eval_loss/eval_acc (the curves skip them, tuning prunes only "
                            "where it evaluated)")
    seed: int = _f(0, "random seed (data order, augmentation, initialisation)")
    device: str = _f("auto", "training device", choices=("auto", "cpu", "cuda"))
    # bfloat16 needs no loss scaling; the saved model is float32 either way
    precision: str = _f("auto", "arithmetic of the training steps: bfloat16 mixed precision or float32; auto: bfloat16 "
                                "where the framework runs it faster (CUDA; PyTorch on CPUs with native bfloat16), "
                                "else float32", choices=("auto", "float32", "bfloat16"))
    # data parallelism (training.distributed): batch_size stays the global batch, split among the replicas
    replicas: int = _f(1, "data-parallel replicas training one model, batch_size split among them and their gradients "
                          "averaged; PyTorch: the torchrun processes (taken from torchrun when left at 1), "
                          "TensorFlow: a MirroredStrategy over this many of this machine's GPUs")
    runs_dir: str = _f("runs", "where run directories are made")
    run_name: str = _f("", "run directory name (default: <framework>-<dataset>-<time>)")
    # a default read when a config is made, so that make's TRACKING=off reaches every command through one variable
    tracking: bool = field(default_factory=lambda: _tracking_default(), metadata={
        "help": "log the run to MLflow (the store at $MLFLOW_TRACKING_URI, else runs_dir/mlflow.db)",
        "shown_default": f"on, or ${TRACKING_ENV}"})

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                problems.append(f"{f.name}={value!r} is not one of {list(f.metadata['choices'])}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "width": self.width,
                    "replicas": self.replicas, "eval_every": self.eval_every}
        problems += [f"{k}={v!r} must be > 0" for k, v in positive.items() if not v > 0]
        fractions = {"val_fraction": self.val_fraction, "warmup": self.warmup, "dropout": self.dropout,
                     "label_smoothing": self.label_smoothing, "momentum": self.momentum, "ema": self.ema}
        problems += [f"{k}={v!r} must be in [0, 1)" for k, v in fractions.items() if not 0 <= v < 1]
        non_negative = {"weight_decay": self.weight_decay, "crop_padding": self.crop_padding, "rotation": self.rotation,
                        "tta_shift": self.tta_shift,
                        "max_train_samples": self.max_train_samples, "max_test_samples": self.max_test_samples}
        problems += [f"{k}={v!r} must be >= 0" for k, v in non_negative.items() if v < 0]
        if self.image_size != 0 and self.image_size < 8:
            problems.append(f"image_size={self.image_size!r} must be 0 (the data set's native size) or >= 8")
        if self.batch_size < self.replicas:
            problems.append(f"batch_size={self.batch_size!r} must be >= replicas={self.replicas!r}: every replica "
                            "takes its shard of each batch")
        if self.tta_shift_axes and not self.tta_shift:
            problems.append("tta_shift_axes=True needs tta_shift > 0: it says which ways the image is shifted")
        if self.tta_shift > self.crop_padding:
            problems.append(f"tta_shift={self.tta_shift!r} must be <= crop_padding={self.crop_padding!r}: the model "
                            "would be averaged over shifts it never trained on")
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """Apply overrides on top of ``base`` (defaults if None), checking every key and type."""
        if not isinstance(values, dict):
            raise ConfigError(f"config overrides must be a JSON object, got {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        merged = dataclasses.asdict(base) if base else {}
        for key, value in values.items():
            merged[key] = _coerce(key, value, hints[key])
        return cls(**merged)

    @classmethod
    def from_json(cls, path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"params file {str(path)!r} does not exist") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"params file {str(path)!r} is not valid JSON: {e}") from None
        return cls.from_dict(values, base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_spec(self, image_shape: tuple[int, int, int], num_classes: int, mean: tuple[float, ...],
                   std: tuple[float, ...]) -> ModelSpec:
        """The network this config trains on data of that (H, W, C) image shape, number of classes and per-channel
        mean and std (pixel units). Its TTA averages each image with its mirror only if it trained on mirrors."""
        return ModelSpec(image_shape=image_shape, num_classes=num_classes, mean=mean, std=std, width=self.width,
                         dropout=self.dropout, tta=self.flip and self.tta, tta_shift=self.tta_shift,
                         tta_shift_axes=self.tta_shift_axes)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check a JSON value against a field's type; ints are accepted where floats are expected."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t in (str, bool) and isinstance(value, t):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise ConfigError(f"config key {key!r} must be {names}, got {value!r} ({type(value).__name__})")


def _tracking_default() -> bool:
    try:
        return enabled_by_env()
    except TrackingError as e:
        raise ConfigError(str(e)) from None


def one_cycle_lr(config: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` in [0, 1] of training: linear warm-up to ``lr``, then linear decay to 0."""
    if progress < config.warmup:
        return config.lr * progress / config.warmup
    return config.lr * max(0.0, 1 - progress) / max(1e-8, 1 - config.warmup)


def ema_decay(config: TrainConfig, updates: int) -> float:
    """The decay of the weights' moving average at the update after ``updates`` earlier ones (the first copies the
    weights): ``ema``, held down to (1 + updates) / (10 + updates) while few steps are averaged, so that the average
    of a short run is not mostly its random initial weights."""
    return min(config.ema, (1 + updates) / (10 + updates))


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per config field (``--batch-size``), defaults shown from the dataclass."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("training config (also settable with --params FILE)")
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        base = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
        shown = f.metadata.get("shown_default", repr(f.default))
        kwargs: dict[str, Any] = {"help": f"{f.metadata['help']} (default: {shown})",
                                  "default": argparse.SUPPRESS}
        if base is bool:
            kwargs.update(type=parse_bool, metavar="BOOL")
        else:
            kwargs["type"] = base
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)
    parser.add_argument("--params", metavar="FILE", help="JSON object of config overrides (e.g. best_params.json)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then ``--params`` file, then explicit flags."""
    config = TrainConfig.from_json(args.params) if getattr(args, "params", None) else TrainConfig()
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    return TrainConfig.from_dict(flags, config) if flags else config
