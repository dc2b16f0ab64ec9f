"""TensorFlow/Keras's adapter to the training loop (``training.loop``): ``cifar10-train --framework tensorflow``.

Same config and flags, network, schedule, augmentation and run directory as the PyTorch trainer. The whole
data set lives on the training device as uint8 and is batched by index; augmentation runs on whole batches
there (one projective resampling per image: shift, flip, rotation), so no Python per-sample work sits in the
loop. GPU when present (XLA-compiled train step; bfloat16 mixed precision unless ``precision`` says float32),
CPU otherwise (float32 unless it says bfloat16). Every epoch writes a checkpoint (weights, BatchNorm statistics,
dropout RNG state, optimizer state, the weights' moving average with ``ema``); augmentation depends only on (epoch
seed, step), so ``--resume`` continues where the run stopped.

With ``replicas`` N > 1 a ``tf.distribute.MirroredStrategy`` trains on N devices of this machine (its first N GPUs)
in this one process, by the rules of ``training.distributed``: each replica augments and trains its contiguous
shard of every global batch, and the gradients are summed over the replicas with each shard's loss divided by the
whole batch's size, so that a step is one device's step on the whole batch. BatchNorm normalises each shard with
its own statistics (Keras' default, ``synchronized=False``), and the moving statistics kept are the first
replica's, as PyTorch's DistributedDataParallel does.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from cifar10_pipeline.files import atomic_path
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.keras_net import BODY, PREPROCESS, build_model
from cifar10_pipeline.training import distributed, gpus
from cifar10_pipeline.training.config import ConfigError, TrainConfig, ema_decay
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
    """The Keras dtype policy of the body for ``config.precision``. auto is mixed bfloat16 on the GPU only. On
    CPUs it stays float32: an AMD EPYC with AVX512-BF16 ran TensorFlow's mixed-precision steps barely faster, too
    little to trade precision for; with AMX they are faster (BENCHMARKS.md's choices), and bfloat16 there is an
    opt-in (``precision``) until the TensorFlow recipe's goal is measured in it."""
    bf16 = name == "bfloat16" or (name == "auto" and use_gpu)
    return "mixed_bfloat16" if bf16 else "float32"


def augment(x: tf.Tensor, config: TrainConfig, seed: tf.Tensor, start: tf.Tensor | int = 0,
            batch: tf.Tensor | None = None) -> tf.Tensor:
    """Random shift (reflection padding), horizontal flip and rotation of a float batch [B, H, W, C].

    One projective transform per image, the same affine map as the PyTorch trainer's ``affine_grid``: an
    integer shift with no rotation samples exactly at pixel centres, so a pure crop is lossless. ``seed`` is a
    stateless int64 [2] seed: the same seed gives the same augmentation, which is what makes resuming exact.
    ``x`` may be the images ``start`` .. ``start + B`` of a global batch of ``batch``: the whole batch's parameters
    are drawn and the shard's applied, as one device would augment them.
    """
    if not (config.crop_padding or config.flip or config.rotation):
        return x
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    total = b if batch is None else batch
    angle_seed, shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    angle = tf.random.stateless_uniform([total], angle_seed, -1.0, 1.0)[start:start + b] * math.radians(config.rotation)
    shift = tf.cast(tf.random.stateless_uniform([total, 2], shift_seed, -config.crop_padding, config.crop_padding + 1,
                                                dtype=tf.int32)[start:start + b], tf.float32)  # pixels, (x, y)
    sign = (tf.where(tf.random.stateless_uniform([total], flip_seed)[start:start + b] < 0.5, -1.0, 1.0)
            if config.flip else tf.ones([b]))
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


def make_train_step(model: keras.Model, optimizer: keras.optimizers.SGD, config: TrainConfig, jit: bool,
                    replicas: int = 1) -> Callable:
    """A step: (normalised augmented batch [B, H, W, C], labels [B], lr) -> (mean loss, correct count), compiled.

    With ``replicas`` > 1 it is one replica's step on its shard, called in the MirroredStrategy's replica context
    and not compiled on its own: the loss is the shard's summed over the global ``batch`` (the optimizer sums the
    replicas' gradients), and each replica adds its 1/N of the weight decay."""
    body = model.get_layer(BODY)
    variables = body.trainable_variables
    decay = [len(v.shape) > 1 for v in variables]  # conv and dense kernels, not BatchNorm scales/offsets or biases
    num_classes = body.output.shape[-1]
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing,
                                                   reduction="sum_over_batch_size" if replicas == 1 else "sum")
    weight_decay = config.weight_decay / replicas

    def step(x: tf.Tensor, labels: tf.Tensor, lr: tf.Tensor, batch: tf.Tensor | None = None
             ) -> tuple[tf.Tensor, tf.Tensor]:
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            logits = body(x, training=True)
            loss = loss_fn(tf.one_hot(labels, num_classes), logits)
            if batch is not None:
                loss = loss / tf.cast(batch, loss.dtype)
        grads = tape.gradient(loss, variables)
        grads = [g + weight_decay * v.value if d else g for g, v, d in zip(grads, variables, decay)]
        optimizer.apply(grads, variables)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == labels, tf.int64))
        return loss, correct

    return tf.function(step, jit_compile=jit) if replicas == 1 else step


def resolve_replica_devices(config: TrainConfig, use_gpu: bool) -> list[str]:
    """The devices of ``config.replicas`` replicas: this machine's first GPUs (logical CPU devices where a program
    made them, as the tests do, on a machine without a GPU)."""
    kind = "GPU" if use_gpu else "CPU"
    devices = [d.name for d in tf.config.list_logical_devices(kind)]
    if len(devices) < config.replicas:
        raise ConfigError(f"replicas={config.replicas} but TensorFlow sees {len(devices)} {kind} device(s) here: "
                          f"{devices}")
    return devices[:config.replicas]


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
    is_main = True  # MirroredStrategy's replicas live in this one process


    def __init__(self, config: TrainConfig, data: TrainingData):
        if distributed.topology().launched:
            raise ConfigError("TensorFlow trains on several devices of one machine in one process (replicas, a "
                              "MirroredStrategy): start it without torchrun")
        self.device, use_gpu = resolve_device(config.device)
        keras.utils.set_random_seed(config.seed)
        self.spec = config.model_spec(data.image_shape, data.num_classes, data.mean, data.std)
        # XLA fuses BatchNorm + ReLU on the GPU; on the CPU it replaces oneDNN's convolutions with slower ones
        self.jit = use_gpu
        self.dtype = resolve_precision(config.precision, use_gpu)
        self.strategy = (tf.distribute.MirroredStrategy(resolve_replica_devices(config, use_gpu))
                         if config.replicas > 1 else None)
        with self.strategy.scope() if self.strategy else tf.device(self.device):
            self.model = build_model(self.spec, self.dtype)
            self.optimizer = make_optimizer(config)
            self.optimizer.build(self.model.get_layer(BODY).trainable_variables)
            train_x = tf.constant(data.train_images)
            self.train_y = tf.constant(data.train_labels)
            preprocess = self.model.get_layer(PREPROCESS)
            # not XLA-compiled: XLA has no kernel for the projective transform
            self._batch = tf.function(lambda idx, seed: augment(preprocess(tf.gather(train_x, idx)), config, seed))
            self._step = make_train_step(self.model, self.optimizer, config, jit=self.jit, replicas=config.replicas)
            self._predict = make_predict(self.model, jit=self.jit)
            # the moving average (ema) of the float variables: weights and BatchNorm statistics, as PyTorch's
            # AveragedModel(use_buffers=True) averages them; not the dropout layers' seed state
            self.live = [v for v in self.model.get_layer(BODY).variables if "float" in v.dtype] if config.ema else []
            self.averaged = [tf.Variable(v.value, trainable=False) for v in self.live]
            self._average = tf.function(lambda decay: [a.assign(decay * a + (1 - decay) * v.value)
                                                       for a, v in zip(self.averaged, self.live)])
        self.config, self.updates = config, 0  # updates of the average
        if self.strategy:
            self._step = self._mirrored_step(config, data, preprocess)
        self._seed, self._step_in_epoch = 0, 0

    def _mirrored_step(self, config: TrainConfig, data: TrainingData, preprocess: keras.layers.Layer) -> Callable:
        """The step of the replicas: each gathers its shard of the global batch from its own copy of the training
        set, augments and trains it; returns the whole batch's mean loss and correct count."""
        strategy, replica_step, n = self.strategy, self._step, config.replicas
        # a copy of the (uint8) training set on each replica's device: a shard is gathered where it is trained
        local = strategy.experimental_distribute_values_from_function(
            lambda _: (tf.constant(data.train_images), tf.constant(data.train_labels)))

        def replica(images: tf.Tensor, labels: tf.Tensor, idx: tf.Tensor, seed: tf.Tensor, lr: tf.Tensor):
            rank = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
            b = tf.shape(idx)[0]
            base, extra = b // n, b % n  # distributed.shard, in the graph: the batch size is a tensor here
            start = rank * base + tf.minimum(rank, extra)
            part = idx[start:start + base + tf.cast(rank < extra, tf.int32)]
            x = augment(preprocess(tf.gather(images, part)), config, seed, start, b)
            return replica_step(x, tf.gather(labels, part), lr, b)

        @tf.function
        def step(idx: tf.Tensor, seed: tf.Tensor, lr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            loss, correct = strategy.run(replica, args=(*local, idx, seed, lr))
            return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

        return step

    def describe(self) -> dict[str, Any]:
        replicas = {"devices": list(self.strategy.extended.worker_devices)} if self.strategy else {}
        return {"framework_version": tf.__version__, "keras_version": keras.__version__, "device": self.device,
                **replicas, "precision": self.dtype.removeprefix("mixed_"), "xla": self.jit,
                "num_parameters": sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)}

    def share(self, value: Any) -> Any:
        return value

    def close(self) -> None:
        pass

    def begin_epoch(self, seed: int) -> None:
        # stateless RNG seeds are (epoch seed, step) pairs: one per step, a pure function of where the run is
        self._seed, self._step_in_epoch = seed, 0

    def step(self, idx: np.ndarray, lr: float) -> tuple[tf.Tensor, tf.Tensor]:
        seed = tf.constant([self._seed, self._step_in_epoch], tf.int64)
        self._step_in_epoch += 1
        if self.strategy:
            result = self._step(tf.constant(idx, tf.int32), seed, tf.constant(lr, tf.float32))
        else:
            with tf.device(self.device):
                x = self._batch(tf.constant(idx), seed)
                result = self._step(x, tf.gather(self.train_y, idx), tf.constant(lr, tf.float32))
        self.update_average()
        return result

    def update_average(self) -> None:
        """With ema, move the average towards the weights a step just made; the first update copies them, as
        AveragedModel's does."""
        if self.averaged:
            self._average(tf.constant(ema_decay(self.config, self.updates) if self.updates else 0.0, tf.float32))
            self.updates += 1

    @contextlib.contextmanager
    def final_weights(self) -> Iterator[None]:
        """Inside, the model holds the weights it is evaluated and saved with: their moving average with ema (the
        live ones come back after), else the live ones."""
        kept = [v.numpy() for v in self.live]
        for v, a in zip(self.live, self.averaged):
            v.assign(a)
        try:
            yield
        finally:
            for v, value in zip(self.live, kept):
                v.assign(value)

    def predict(self, images: np.ndarray, live: bool = False) -> np.ndarray:
        with tf.device(self.device), contextlib.nullcontext() if live else self.final_weights():
            return self._predict(images)

    def save_checkpoint(self, path: Path, epoch: int) -> None:
        """Every model variable (weights, BatchNorm statistics, dropout seed state) and optimizer variable,
        atomically."""
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        arrays |= {f"optimizer_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        arrays |= {f"averaged_{i}": v.numpy() for i, v in enumerate(self.averaged)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, epoch=epoch, updates=self.updates, **arrays)

    def load_checkpoint(self, path: Path) -> int:
        with np.load(path) as saved:
            for prefix, variables in (("model", self.model.variables), ("optimizer", self.optimizer.variables),
                                      ("averaged", self.averaged)):
                stored = sorted((k for k in saved.files if k.startswith(prefix + "_")),
                                key=lambda k: int(k.split("_")[1]))
                shapes = [saved[k].shape for k in stored]
                if shapes != [tuple(v.shape) for v in variables]:
                    raise RunError(f"{path} holds {prefix} variables of shapes {shapes}, which do not fit the model "
                                   f"this run's config builds ({[tuple(v.shape) for v in variables]})")
                for k, v in zip(stored, variables):
                    v.assign(saved[k])
            self.updates = int(saved["updates"]) if "updates" in saved.files else 0  # none before ema existed
            return int(saved["epoch"])

    def save_model(self, path: Path) -> None:
        """The inference model, always float32 (a mixed-precision body is rebuilt in float32 and gets the weights).

        ``self.dtype`` is the policy the model was built with: the functional body's own ``dtype_policy`` says
        float32 whatever its layers compute in, so it cannot tell.
        """
        with self.final_weights():
            model = self.model
            if self.dtype != "float32":
                model = build_model(self.spec, "float32")
                model.set_weights(self.model.get_weights())
            with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the .keras suffix
                model.save(tmp)

