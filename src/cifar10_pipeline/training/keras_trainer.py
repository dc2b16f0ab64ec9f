"""TensorFlow/Keras's adapter to the training loop (``training.loop``): ``cifar10-train --framework tensorflow``.

Same config and flags, network, schedule, augmentation and run directory as the PyTorch trainer. The whole
data set lives on the training device as uint8 and is batched by index; augmentation runs on whole batches
there (one projective resampling per image: shift, flip, rotation), so no Python per-sample work sits in the
loop. GPU when present (XLA-compiled train step; bfloat16 mixed precision unless ``precision`` says float32),
CPU otherwise (float32 unless it says bfloat16). Every epoch writes a checkpoint (weights, BatchNorm statistics,
dropout RNG state, optimizer state); augmentation depends only on (epoch seed, step), so ``--resume``
continues where the run stopped.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from cifar10_pipeline.files import atomic_path
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.keras_net import BODY, PREPROCESS, build_model
from cifar10_pipeline.training import gpus
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.datasets import TrainingData
from cifar10_pipeline.training.run import RunError

FRAMEWORK = frameworks.get("tensorflow")
EVAL_BATCH = 1024


def resolve_device(name: str) -> tuple[str, bool]:
    """(TensorFlow device string, whether it is a GPU) for ``config.device``; where TensorFlow cannot use a GPU
    the driver shows, auto warns and cuda is refused (``gpus.use_gpu``)."""
    use_gpu = gpus.use_gpu(name, FRAMEWORK.title, bool(tf.config.list_physical_devices("GPU")), why_no_gpu)
    return ("/GPU:0" if use_gpu else "/CPU:0"), use_gpu


def why_no_gpu() -> tuple[str, str]:
    """(cause, fix) of a TensorFlow that finds no GPU where the NVIDIA driver shows one. TensorFlow's own "Cannot
    dlopen some GPU libraries" line is hidden by TF_CPP_MIN_LOG_LEVEL (``model.frameworks``)."""
    reinstall = "make install-tf GPU=1 (tensorflow[and-cuda], its NVIDIA wheels pinned in constraints-tf-gpu.txt)"
    if not tf.test.is_built_with_cuda():
        return f"this TensorFlow ({tf.__version__}) is built without CUDA", reinstall
    missing = missing_cuda_wheels()
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return (f"TensorFlow's CUDA libraries are not installed ({missing[0]}{more}): this is plain tensorflow, not "
                "tensorflow[and-cuda]"), reinstall
    cuda = tf.sysconfig.get_build_info()["cuda_version"]
    return (gpus.driver_problem(cuda) or f"TensorFlow (CUDA {cuda}) lists no GPU although the driver starts CUDA",
            gpus.driver_fix(cuda))


def missing_cuda_wheels() -> list[str]:
    """The NVIDIA wheels of tensorflow[and-cuda] (its requirements with extra == "and-cuda") not installed here."""
    needed = [re.match(r"[A-Za-z0-9._-]+", r)[0] for r in importlib.metadata.requires("tensorflow") or ()
              if re.search(r"""extra\s*==\s*["']and-cuda["']""", r)]
    missing = []
    for name in needed:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def resolve_precision(name: str, use_gpu: bool) -> str:
    """The Keras dtype policy of the body for ``config.precision``. auto is mixed bfloat16 on the GPU only: on
    CPUs with native bfloat16 TensorFlow's mixed-precision steps are barely faster than float32's, too little to
    trade precision for (BENCHMARKS.md)."""
    bf16 = name == "bfloat16" or (name == "auto" and use_gpu)
    return "mixed_bfloat16" if bf16 else "float32"


def augment(x: tf.Tensor, config: TrainConfig, seed: tf.Tensor) -> tf.Tensor:
    """Random shift (reflection padding), horizontal flip and rotation of a float batch [B, H, W, C].

    One projective transform per image, the same affine map as the PyTorch trainer's ``affine_grid``: an
    integer shift with no rotation samples exactly at pixel centres, so a pure crop is lossless. ``seed`` is a
    stateless int64 [2] seed: the same seed gives the same augmentation, which is what makes resuming exact.
    """
    if not (config.crop_padding or config.flip or config.rotation):
        return x
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    angle_seed, shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    angle = tf.random.stateless_uniform([b], angle_seed, -1.0, 1.0) * math.radians(config.rotation)
    shift = tf.cast(tf.random.stateless_uniform([b, 2], shift_seed, -config.crop_padding, config.crop_padding + 1,
                                                dtype=tf.int32), tf.float32)  # pixels, (x, y)
    sign = tf.where(tf.random.stateless_uniform([b], flip_seed) < 0.5, -1.0, 1.0) if config.flip else tf.ones([b])
    cos, sin = tf.cos(angle), tf.sin(angle)
    # the transform maps each output pixel (x, y), pixel centres at integers, to the input point it samples:
    # input = M (output - centre) + centre + shift, with M = rotation @ horizontal flip
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1, b0, b1 = sign * cos, -sin, sign * sin, cos
    a2 = cx + shift[:, 0] - a0 * cx - a1 * cy
    b2 = cy + shift[:, 1] - b0 * cx - b1 * cy
    zeros = tf.zeros([b])  # no perspective part
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # [B, 8]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=[h, w], fill_value=0.0, interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def make_optimizer(config: TrainConfig) -> keras.optimizers.SGD:
    # the learning rate is set every step (one_cycle_lr); weight decay is added to the kernels' gradients in
    # the train step, as PyTorch's SGD does, because Keras' own weight_decay is decoupled and hits every variable
    return keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def make_train_step(model: keras.Model, optimizer: keras.optimizers.SGD, config: TrainConfig, jit: bool) -> Callable:
    """A compiled step: (normalised augmented batch [B, H, W, C], labels [B], lr) -> (mean loss, correct count)."""
    body = model.get_layer(BODY)
    variables = body.trainable_variables
    decay = [len(v.shape) > 1 for v in variables]  # conv and dense kernels, not BatchNorm scales/offsets or biases
    num_classes = body.output.shape[-1]
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)

    @tf.function(jit_compile=jit)
    def step(x: tf.Tensor, labels: tf.Tensor, lr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            logits = body(x, training=True)
            loss = loss_fn(tf.one_hot(labels, num_classes), logits)
        grads = tape.gradient(loss, variables)
        grads = [g + config.weight_decay * v.value if d else g for g, v, d in zip(grads, variables, decay)]
        optimizer.apply(grads, variables)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == labels, tf.int64))
        return loss, correct

    return step


def make_predict(model: keras.Model, jit: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Eval-mode logits float32 [N, classes] for uint8 [N, H, W, C] images, in batches of EVAL_BATCH."""
    forward = tf.function(lambda x: model(x, training=False), jit_compile=jit)
    return lambda images: np.concatenate(
        [forward(images[i:i + EVAL_BATCH]).numpy() for i in range(0, len(images), EVAL_BATCH)])


class KerasTrainer:
    """``training.loop.Trainer`` for TensorFlow/Keras: the network, SGD, the training data on the device, and
    compiled augmentation, training and prediction functions."""

    framework = FRAMEWORK.name
    model_file = FRAMEWORK.model_file
    checkpoint_file = FRAMEWORK.checkpoint_file

    def __init__(self, config: TrainConfig, data: TrainingData):
        self.device, use_gpu = resolve_device(config.device)
        keras.utils.set_random_seed(config.seed)
        self.spec = config.model_spec(data.image_shape, data.num_classes, data.mean, data.std)
        # XLA fuses BatchNorm + ReLU on the GPU; on the CPU it replaces oneDNN's convolutions with slower ones
        self.jit = use_gpu
        self.dtype = resolve_precision(config.precision, use_gpu)
        with tf.device(self.device):
            self.model = build_model(self.spec, self.dtype)
            self.optimizer = make_optimizer(config)
            self.optimizer.build(self.model.get_layer(BODY).trainable_variables)
            train_x = tf.constant(data.train_images)
            self.train_y = tf.constant(data.train_labels)
            preprocess = self.model.get_layer(PREPROCESS)
            # not XLA-compiled: XLA has no kernel for the projective transform
            self._batch = tf.function(lambda idx, seed: augment(preprocess(tf.gather(train_x, idx)), config, seed))
            self._step = make_train_step(self.model, self.optimizer, config, jit=self.jit)
            self._predict = make_predict(self.model, jit=self.jit)
        self._seed, self._step_in_epoch = 0, 0

    def describe(self) -> dict[str, Any]:
        return {"framework_version": tf.__version__, "keras_version": keras.__version__, "device": self.device,
                "precision": self.dtype.removeprefix("mixed_"), "xla": self.jit,
                "num_parameters": sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)}

    def begin_epoch(self, seed: int) -> None:
        # stateless RNG seeds are (epoch seed, step) pairs: one per step, a pure function of where the run is
        self._seed, self._step_in_epoch = seed, 0

    def step(self, idx: np.ndarray, lr: float) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.device(self.device):
            x = self._batch(tf.constant(idx), tf.constant([self._seed, self._step_in_epoch], tf.int64))
            self._step_in_epoch += 1
            return self._step(x, tf.gather(self.train_y, idx), tf.constant(lr, tf.float32))

    def predict(self, images: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return self._predict(images)

    def save_checkpoint(self, path: Path, epoch: int) -> None:
        """Every model variable (weights, BatchNorm statistics, dropout seed state) and optimizer variable,
        atomically."""
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        arrays |= {f"optimizer_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, epoch=epoch, **arrays)

    def load_checkpoint(self, path: Path) -> int:
        with np.load(path) as saved:
            for prefix, variables in (("model", self.model.variables), ("optimizer", self.optimizer.variables)):
                stored = sorted((k for k in saved.files if k.startswith(prefix + "_")),
                                key=lambda k: int(k.split("_")[1]))
                shapes = [saved[k].shape for k in stored]
                if shapes != [tuple(v.shape) for v in variables]:
                    raise RunError(f"{path} holds {prefix} variables of shapes {shapes}, which do not fit the model "
                                   f"this run's config builds ({[tuple(v.shape) for v in variables]})")
                for k, v in zip(stored, variables):
                    v.assign(saved[k])
            return int(saved["epoch"])

    def save_model(self, path: Path) -> None:
        """The inference model, always float32 (a mixed-precision body is rebuilt in float32 and gets the weights).

        ``self.dtype`` is the policy the model was built with: the functional body's own ``dtype_policy`` says
        float32 whatever its layers compute in, so it cannot tell.
        """
        model = self.model
        if self.dtype != "float32":
            model = build_model(self.spec, "float32")
            model.set_weights(self.model.get_weights())
        with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the .keras suffix
            model.save(tmp)

