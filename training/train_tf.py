"""TensorFlow/Keras trainer: ``python -m training.train_tf --help``. The twin of ``training.train_torch``.

Same config and flags, network, schedule, augmentation and run directory as the PyTorch trainer. The whole
data set lives on the training device as uint8 and is batched by index; augmentation runs on whole batches
there (one projective resampling per image: shift, flip, rotation), so no Python per-sample work sits in the
loop. GPU when present (XLA-compiled train step; bfloat16 mixed precision unless ``precision`` says float32),
CPU otherwise (float32 unless it says bfloat16). Every epoch writes a checkpoint (weights, BatchNorm statistics,
dropout RNG state, optimizer state); data order and augmentation depend only on (seed, epoch, step), so
``--resume`` continues where the run stopped.
"""

from __future__ import annotations

import os

# TensorFlow's C++ INFO and WARNING lines (device creation, XLA compilation) would drown the progress bars;
# errors still show. Read when tensorflow is imported, so set before; an explicit setting wins. (TF 2.21 prints
# its first few lines, oneDNN and CUDA probing, before absl logging starts: those ignore this setting.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from training import cli  # noqa: E402
from training.cli import EpochCallback, TrainResult  # noqa: E402
from training.config import ConfigError, TrainConfig, one_cycle_lr  # noqa: E402
from training.datasets import Dataset, prepare_for_training  # noqa: E402
from training.model_tf import BODY, PREPROCESS, build_model  # noqa: E402
from training.run import Run, RunError, epoch_row  # noqa: E402

FRAMEWORK = "tensorflow"
EVAL_BATCH = 1024
MODEL_FILE = "model.keras"
CHECKPOINT_FILE = "checkpoint.npz"
# stateless RNG seeds are (a, b) pairs: a = seed * SEED_STRIDE + epoch, b = step, unique per step for any
# run shorter than SEED_STRIDE epochs (the same stride the PyTorch trainer uses for its per-epoch generator)
SEED_STRIDE = 100_003


def resolve_device(name: str) -> tuple[str, bool]:
    """(TensorFlow device string, whether it is a GPU) for ``config.device``."""
    gpus = tf.config.list_physical_devices("GPU")
    if name == "cuda" and not gpus:
        raise ConfigError("device='cuda' but TensorFlow sees no GPU (use device=auto or cpu)")
    use_gpu = name in ("cuda", "auto") and bool(gpus)
    return ("/GPU:0" if use_gpu else "/CPU:0"), use_gpu


def resolve_precision(name: str, use_gpu: bool) -> str:
    """The Keras dtype policy of the body for ``config.precision``. auto is mixed bfloat16 on the GPU only: on
    2 Zen 4 cores (native bfloat16) a step (batch 128, 28x28, width 32) took 125 ms against 130 ms in float32,
    too little to trade precision for."""
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


def _save_checkpoint(path: Path, epoch: int, model: keras.Model, optimizer: keras.optimizers.SGD) -> None:
    """Every model variable (weights, BatchNorm statistics, dropout seed state) and optimizer variable, atomically."""
    arrays = {f"model_{i}": v.numpy() for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer_{i}": v.numpy() for i, v in enumerate(optimizer.variables)}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, epoch=epoch, **arrays)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model: keras.Model, optimizer: keras.optimizers.SGD) -> int:
    """Restore what ``_save_checkpoint`` wrote into a freshly built model and optimizer; returns the epoch."""
    if not path.is_file():
        raise RunError(f"{path} does not exist: the run stopped before its first epoch ended; start it afresh")
    with np.load(path) as saved:
        for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
            stored = sorted((k for k in saved.files if k.startswith(prefix + "_")), key=lambda k: int(k.split("_")[1]))
            shapes = [saved[k].shape for k in stored]
            if shapes != [tuple(v.shape) for v in variables]:
                raise RunError(f"{path} holds {prefix} variables of shapes {shapes}, which do not fit the model "
                               f"this run's config builds ({[tuple(v.shape) for v in variables]})")
            for k, v in zip(stored, variables):
                v.assign(saved[k])
        return int(saved["epoch"])


def train(config: TrainConfig, *, resume: Run | None = None, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train the CNN; a run directory records everything. ``resume`` continues a run from its checkpoint."""
    device, use_gpu = resolve_device(config.device)
    keras.utils.set_random_seed(config.seed)
    ds = prepare_for_training(config)
    # XLA fuses BatchNorm + GELU on the GPU; on the CPU it replaces oneDNN's convolutions with slower ones
    # (width 64, batch 512, 28x28: 3.8 s per step with XLA, 3.0 s without, 2 cores)
    dtype = resolve_precision(config.precision, use_gpu)
    with tf.device(device):
        model = _build(ds, config, dtype)
        optimizer = make_optimizer(config)
        optimizer.build(model.get_layer(BODY).trainable_variables)

        run, start_epoch = resume, 0
        if resume is not None:
            start_epoch = _load_checkpoint(resume.path / CHECKPOINT_FILE, model, optimizer)
            run.truncate_metrics(start_epoch)
            print(f"resuming {run.path} after epoch {start_epoch}/{config.epochs}", file=sys.stderr)
        else:
            run = Run.create(config, FRAMEWORK)
        run.update_info(framework_version=tf.__version__, keras_version=keras.__version__, device=device,
                        precision=dtype.removeprefix("mixed_"), xla=use_gpu, dataset=ds.name, classes=list(ds.classes),
                        num_parameters=sum(int(np.prod(v.shape)) for v in model.trainable_variables))

        train_x = tf.constant(ds.train_images)
        train_y = tf.constant(ds.train_labels)
        preprocess = model.get_layer(PREPROCESS)
        # not XLA-compiled: XLA has no kernel for the projective transform
        batch = tf.function(lambda idx, seed: augment(preprocess(tf.gather(train_x, idx)), config, seed))
        step = make_train_step(model, optimizer, config, jit=use_gpu)
        predict = make_predict(model, jit=use_gpu)
        n = len(ds.train_images)
        steps_per_epoch = math.ceil(n / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        split = "val" if config.val_fraction > 0 else "test"

        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            # data order and augmentation depend only on (seed, epoch): a resumed epoch replays exactly
            order = np.random.default_rng([config.seed, epoch]).permutation(n)
            loss_sum = tf.zeros((), tf.float32)
            correct = tf.zeros((), tf.int64)
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=None)
            for i in bar:
                idx = order[i * config.batch_size:(i + 1) * config.batch_size]
                lr = one_cycle_lr(config, (epoch * steps_per_epoch + i + 1) / total_steps)
                x = batch(tf.constant(idx), tf.constant([config.seed * SEED_STRIDE + epoch, i], tf.int64))
                loss, batch_correct = step(x, tf.gather(train_y, idx), tf.constant(lr, tf.float32))
                loss_sum += loss * len(idx)
                correct += batch_correct
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.3g}")
            train_seconds = time.perf_counter() - t0

            eval_logits = predict(ds.test_images)
            row = epoch_row(epoch + 1, lr, float(loss_sum), int(correct), n, eval_logits, ds.test_labels, split,
                            train_seconds, time.perf_counter() - t0)
            run.log_epoch(row)
            _save_checkpoint(run.path / CHECKPOINT_FILE, epoch + 1, model, optimizer)
            if on_epoch is not None:
                on_epoch(epoch + 1, row)

        if start_epoch == config.epochs:  # resumed a run whose last epoch was done: nothing evaluated it here
            eval_logits = predict(ds.test_images)
        _save_final(model, ds, config, dtype, run.path / MODEL_FILE)
    accuracy = run.finish(eval_logits, ds.test_labels, ds.classes, split)
    return TrainResult(run=run, eval_accuracy=accuracy, metrics=run.metrics())


def _build(ds: Dataset, config: TrainConfig, dtype: str) -> keras.Model:
    return build_model(ds.image_shape, ds.num_classes, ds.mean, ds.std, width=config.width, dropout=config.dropout,
                       flip_tta=config.flip_tta, dtype=dtype)


def _save_final(model: keras.Model, ds: Dataset, config: TrainConfig, dtype: str, path: Path) -> None:
    """The inference model, always float32 (a mixed-precision body is rebuilt in float32 and gets the weights).

    ``dtype`` is the policy the model was built with: the functional body's own ``dtype_policy`` says float32
    whatever its layers compute in, so it cannot tell.
    """
    if dtype != "float32":
        weights = model.get_weights()
        model = _build(ds, config, "float32")
        model.set_weights(weights)
    tmp = path.with_name("model.tmp.keras")  # Keras insists on the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)


def load_trained(run: Run) -> keras.Model:
    """The final model of a finished run (float32, CPU placement left to TensorFlow)."""
    path = run.path / MODEL_FILE
    if not path.is_file():
        raise RunError(f"{run.path} has no final model ({MODEL_FILE}): the run did not finish; resume it with --resume")
    return keras.saving.load_model(path)


def build_parser() -> argparse.ArgumentParser:
    return cli.build_parser("python -m training.train_tf", "TensorFlow/Keras")


def main(argv: list[str] | None = None) -> int:
    return cli.main(train, FRAMEWORK, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
