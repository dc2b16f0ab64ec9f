"""TensorFlow-only parts of the trainer (``training.keras_trainer``): batched augmentation, weight decay, precision, the
moving average of the weights, and why TensorFlow cannot use a GPU the driver shows. The network is tested in
tests/model/test_keras_net.py; what both trainers share in test_learning.py, test_resume.py, test_ema.py and
test_cli.py (run with ``--framework tensorflow`` in ``.venv-tf``)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from packaging.requirements import Requirement
from packaging.version import Version

from cifar10_pipeline.model.keras_net import BODY, build_model
from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.training import gpus, keras_trainer
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.datasets import prepare_for_training
from cifar10_pipeline.training.keras_trainer import (
    KerasTrainer,
    augment,
    make_optimizer,
    make_train_step,
    missing_cuda_wheels,
    resolve_precision,
    why_no_gpu,
)
from tests.support.paths import REPO


def _batch(seed=0, b=16, h=32, w=32, c=3):
    return tf.constant(np.random.default_rng(seed).normal(size=(b, h, w, c)).astype(np.float32))


def _seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def test_augment_off_is_identity_and_crop_is_an_exact_shift():
    x = _batch()
    off = TrainConfig(crop_padding=0, flip=False, rotation=0.0)
    assert augment(x, off, _seed(0)) is x
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), _seed(0)).numpy()
    x = x.numpy()
    # every output pixel is an input pixel of the same image (no interpolation), within 2 pixels
    inner = shifted[:, 2:-2, 2:-2]
    offsets = []
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.allclose(inner[i], x[i, 2 + dy:30 + dy, 2 + dx:30 + dx], atol=1e-5)]
        assert len(matches) == 1
        offsets += matches
    assert len(set(offsets)) > 5  # the shifts are random, not one fixed offset


def test_augment_reflects_at_the_border():
    x = _batch(b=64, h=8, w=8, c=1)
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), _seed(3)).numpy()
    x = x.numpy()
    # reflection that repeats the edge pixel (d c b a | a b c d), like torch's grid_sample "reflection"
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")
    found = [any(np.allclose(shifted[i], padded[i, 2 + dy:10 + dy, 2 + dx:10 + dx], atol=1e-5)
                 for dy in range(-2, 3) for dx in range(-2, 3)) for i in range(len(x))]
    assert all(found)


def test_augment_flip_mirrors_about_half_the_images_and_rotation_changes_them():
    x = _batch(b=200)
    flipped = augment(x, TrainConfig(crop_padding=0, flip=True, rotation=0.0), _seed(1)).numpy()
    same = [np.allclose(flipped[i], x[i], atol=1e-5) for i in range(len(x))]
    mirrored = [np.allclose(flipped[i], x[i, :, ::-1], atol=1e-5) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140
    config = TrainConfig(crop_padding=0, flip=False, rotation=10.0)
    rotated = augment(x, config, _seed(2)).numpy()
    assert rotated.shape == x.shape and not np.allclose(rotated, x, atol=1e-3)
    # the image centre stays put under a pure rotation: a constant image stays constant away from the corners
    flat = augment(tf.ones([4, 32, 32, 3]), config, _seed(2)).numpy()
    np.testing.assert_allclose(flat[:, 8:24, 8:24], 1.0, atol=1e-5)


def test_augment_is_a_function_of_its_seed():
    x, config = _batch(b=32), TrainConfig()
    np.testing.assert_array_equal(augment(x, config, _seed(5, 7)), augment(x, config, _seed(5, 7)))
    assert not np.allclose(augment(x, config, _seed(5, 7)), augment(x, config, _seed(5, 8)))


def test_weight_decay_hits_conv_and_dense_kernels_only():
    """One SGD step (no momentum) with and without decay: kernels differ by lr * wd * w, nothing else differs."""
    keras.utils.set_random_seed(0)
    lr, wd = 0.1, 0.5
    spec = ModelSpec((8, 8, 3), 4, (0.0,) * 3, (1.0,) * 3, width=8, dropout=0.0, tta=False)
    initial = build_model(spec).get_weights()
    x, labels = _batch(b=8, h=8, w=8), tf.constant(np.arange(8) % 4)
    after = {}
    for decay in (0.0, wd):
        config = TrainConfig(momentum=0.0, weight_decay=decay, dropout=0.0)
        model = build_model(spec)
        model.set_weights(initial)
        make_train_step(model, make_optimizer(config), config, jit=False)(x, labels, tf.constant(lr))
        after[decay] = [v.numpy() for v in model.get_layer(BODY).trainable_variables]
    start = dict(zip((id(v) for v in model.weights), initial))
    variables = model.get_layer(BODY).trainable_variables
    is_kernel = [v.path.endswith("/kernel") for v in variables]
    assert sum(is_kernel) == 8  # 7 convolutions and the classifier
    for v, kernel, decayed, plain in zip(variables, is_kernel, after[wd], after[0.0]):
        expected = plain - lr * wd * start[id(v)] if kernel else plain
        np.testing.assert_allclose(decayed, expected, atol=1e-6, err_msg=v.path)


def test_the_average_follows_its_recurrence_over_the_weights_and_batchnorm_statistics(tmp_path):
    # ema 0.2 binds from the third update on, after ema_decay's lower start (0.18 at the second)
    config = TrainConfig.from_dict({"dataset": "synthetic", "width": 8, "batch_size": 64, "max_train_samples": 256,
                                    "max_test_samples": 64, "ema": 0.2, "runs_dir": str(tmp_path)})
    trainer = KerasTrainer(config, prepare_for_training(config))
    trainer.begin_epoch(0)
    expected: list[np.ndarray] = []
    for i in range(4):
        trainer.step(np.arange(64 * i, 64 * (i + 1)), lr=0.1)
        live = [v.numpy() for v in trainer.live]
        decay = min(0.2, (1 + i) / (10 + i)) if expected else 0.0  # the first update copies the weights
        expected = [decay * e + (1 - decay) * v for e, v in zip(expected or live, live)]
    assert any("moving_variance" in v.path for v in trainer.live)  # BatchNorm's statistics are averaged too
    assert not any("seed" in v.path for v in trainer.live)  # the dropout layers' RNG state is not
    for v, a, e in zip(trainer.live, trainer.averaged, expected):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-5, atol=1e-6, err_msg=v.path)
    assert not np.array_equal(trainer.averaged[0].numpy(), trainer.live[0].numpy())


def test_precision_auto_is_mixed_bfloat16_on_the_gpu_only():
    # on CPUs auto stays float32, where the TensorFlow recipe's goal is measured (bfloat16 is an opt-in there)
    assert resolve_precision("auto", use_gpu=True) == "mixed_bfloat16"
    assert resolve_precision("auto", use_gpu=False) == "float32"
    assert resolve_precision("bfloat16", use_gpu=False) == "mixed_bfloat16"
    assert resolve_precision("float32", use_gpu=True) == "float32"


def test_a_tensorflow_built_without_cuda_is_named_with_make_install_tf_gpu(monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: False)
    cause, fix = why_no_gpu()
    assert cause == f"this TensorFlow ({tf.__version__}) is built without CUDA"
    assert fix.startswith("make install-tf GPU=1 (tensorflow[and-cuda]")


def test_plain_tensorflow_is_told_from_tensorflow_and_cuda(monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(keras_trainer, "missing_cuda_wheels", lambda: ["nvidia-cublas-cu12", "nvidia-cudnn-cu12"])
    cause, fix = why_no_gpu()
    assert cause == ("TensorFlow's CUDA libraries are not installed (nvidia-cublas-cu12 and 1 more): this is plain "
                     "tensorflow, not tensorflow[and-cuda]")
    assert fix.startswith("make install-tf GPU=1 (tensorflow[and-cuda]")


def test_with_its_cuda_libraries_installed_the_driver_is_named(monkeypatch):
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    monkeypatch.setattr(keras_trainer, "missing_cuda_wheels", lambda: [])
    monkeypatch.setattr(gpus, "LIBCUDA", "libcuda-not-installed.so.1")
    cuda = tf.sysconfig.get_build_info()["cuda_version"]
    assert why_no_gpu() == ("the NVIDIA driver's libcuda-not-installed.so.1 cannot be loaded here",
                            gpus.driver_fix(cuda))


def test_the_missing_cuda_wheels_are_the_and_cuda_requirements_not_installed(monkeypatch):
    requires = ["numpy>=1.26", 'nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"',
                "nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == 'and-cuda'", 'tensorflow-io; extra == "gcs"']
    installed = {"numpy", "nvidia-cublas-cu12"}  # not tensorflow-io: another extra's, not looked for

    def distribution(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", lambda name: requires if name == "tensorflow" else None)
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert missing_cuda_wheels() == ["nvidia-cudnn-cu12"]


def test_constraints_tf_gpu_pins_every_cuda_wheel_of_this_tensorflow_within_its_range():
    # what make install-tf GPU=1 installs is what the trainer looks for: no more, no fewer, at allowed versions
    pins = dict(line.split("==") for line in (REPO / "constraints-tf-gpu.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    wanted = [Requirement(r) for r in importlib.metadata.requires("tensorflow")]
    wanted = {r.name: r.specifier for r in wanted
              if r.marker and r.marker.evaluate({"extra": "and-cuda"}) and not r.marker.evaluate({"extra": ""})}
    assert wanted and sorted(pins) == sorted(wanted)
    assert {name: pins[name] for name in pins if Version(pins[name]) not in wanted[name]} == {}


@pytest.mark.slow
def test_mirrored_replicas_train_the_model_of_one_device_on_their_shards(tmp_path):
    """replicas=2 on 2 logical CPU devices (``tests.support.mirrored``, its own process: TensorFlow makes logical
    devices only before it starts) against one device doing the replicas' shards one after the other.

    BatchNorm normalises per replica, so that (and not the plain one-device run) is the model to equal. Tolerance
    1e-2 on weights and 5e-3 on logits: the two run the same arithmetic, as a graph on two devices and eagerly on
    one, whose float32 rounding differs and grows over the 6 steps (measured: up to 2.4e-3 on the first conv's
    weights, 6e-4 on logits); the learning rate of 0.02 keeps that growth small. Gradients summed without the
    division by the whole batch (each replica's step taken twice) moved the weights by 0.06 to 0.26 and the logits
    by 0.045: 5 to 25 times the tolerance. A weight decay counted once per replica is below it and not caught."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "tests.support.mirrored", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "mirrored.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    assert str(arrays["mirrored_device"]) == "/CPU:0"
    mirrored = sorted(k.removeprefix("mirrored_") for k in arrays if k.startswith("mirrored_w"))
    assert len(mirrored) > 20
    for name in [*mirrored, "logits"]:
        np.testing.assert_allclose(arrays[f"mirrored_{name}"], arrays[f"reference_{name}"], rtol=0,
                                   atol=5e-3 if name == "logits" else 1e-2, err_msg=name)
    run = json.loads((tmp_path / "runs" / "mirrored" / "run.json").read_text())
    assert run["devices"] == ["/job:localhost/replica:0/task:0/device:CPU:0",
                              "/job:localhost/replica:0/task:0/device:CPU:1"]
