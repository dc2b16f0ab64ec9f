"""The Keras CNN of ``model.spec``, the same network as ``model.torch_net``; its input is the ONNX
contract's raw ``uint8 [B, H, W, C]`` image.

The full model is ``image -> Preprocess -> body``; the trainer calls the two parts separately so that
augmentation runs on the normalised float batch between them, as in the PyTorch trainer. With the spec's
``tta`` / ``tta_shift`` the full model sums the body's logits over the spec's views of the image, weighted (the trainer
never trains through them).

Initialisation, BatchNorm momentum and epsilon follow PyTorch's defaults, so that hyperparameters tuned with
one framework carry over to the other.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from cifar10_pipeline.contract import INPUT_NAME
from cifar10_pipeline.model.spec import ModelSpec, pooling_last_blocks, shifted_index

PREPROCESS = "preprocess"
BODY = "body"
# PyTorch's default for conv and linear weights (kaiming_uniform with a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
TORCH_INIT = {"scale": 1.0 / 3.0, "mode": "fan_in", "distribution": "uniform"}
# PyTorch's BatchNorm: running = 0.9 * running + 0.1 * batch, eps 1e-5 (Keras defaults: 0.99, 1e-3)
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="cifar10_pipeline")
class Preprocess(keras.layers.Layer):
    """uint8 [B, H, W, C] raw pixels -> float32 [B, H, W, C], normalised with the data set's mean/std.

    Always float32, also under a mixed-precision policy: the body casts to its compute dtype itself.
    """

    def __init__(self, mean: list[float], std: list[float], **kwargs: Any):
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def call(self, image: tf.Tensor) -> tf.Tensor:
        x = tf.cast(image, tf.float32)
        return (x - tf.constant(self.mean)) * tf.constant([1.0 / s for s in self.std])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("dtype", None)  # fixed to float32 by __init__
        return {**config, "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="cifar10_pipeline")
class Mirror(keras.layers.Layer):
    """Horizontal flip of a float [B, H, W, C] batch (reverses W)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reverse(x, axis=[2])


@keras.saving.register_keras_serializable(package="cifar10_pipeline")
class Shift(keras.layers.Layer):
    """A float [B, H, W, C] batch moved ``shift`` = (rows, columns) pixels down and right (up and left where
    negative), as ``model.spec.shifted_index`` reads it: one constant gather per shifted axis. An int shifts both
    axes by as much: the diagonal views of model files saved before the pair."""

    def __init__(self, shift: int | list[int] | tuple[int, int], **kwargs: Any):
        super().__init__(**kwargs)
        self.shift = (shift, shift) if isinstance(shift, int) else tuple(shift)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        for axis, by in zip((1, 2), self.shift):
            if by:
                x = tf.gather(x, shifted_index(x.shape[axis], by), axis=axis)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shift": list(self.shift)}


def _conv(channels: int, dtype: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, dtype=dtype,
                               kernel_initializer=keras.initializers.VarianceScaling(**TORCH_INIT))


def _batch_norm(dtype: str) -> keras.layers.BatchNormalization:
    """BatchNorm with its scale fixed at 1, only the shift trains, as ``model.torch_net.batch_norm``."""
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=False, dtype=dtype)


def _conv_bn(x: keras.KerasTensor, channels: int, dtype: str) -> keras.KerasTensor:
    x = _batch_norm(dtype)(_conv(channels, dtype)(x))
    return keras.layers.ReLU(dtype=dtype)(x)


@keras.saving.register_keras_serializable(package="cifar10_pipeline")
class ConvPool(keras.layers.Layer):
    """3x3 conv, BatchNorm, ReLU and a 2x2 max-pool: pooled first, except in the graph the ONNX export traces
    (``pooling_last``); the same function either way, ``model.torch_net.ConvPool`` says why."""

    pool_last = False  # set only by pooling_last

    def __init__(self, channels: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = _conv(channels, self.dtype_policy)
        self.bn = _batch_norm(self.dtype_policy)

    def build(self, input_shape: tuple) -> None:
        self.conv.build(input_shape)
        self.bn.build((*input_shape[:-1], self.channels))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = self.conv(x)
        if self.pool_last:
            return tf.nn.max_pool2d(tf.nn.relu(self.bn(x, training=training)), 2, 2, "VALID")
        return tf.nn.relu(self.bn(tf.nn.max_pool2d(x, 2, 2, "VALID"), training=training))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels}


def pooling_last(model: keras.Model) -> contextlib.AbstractContextManager[None]:
    """``model`` with every ConvPool pooling last: the graph the ONNX export traces (in inference mode)."""
    return pooling_last_blocks(layer for layer in model.get_layer(BODY).layers if isinstance(layer, ConvPool))


def _body(shape: tuple[int, int, int], num_classes: int, width: int, dropout: float, dtype: str) -> keras.Model:
    """Normalised float [B, H, W, C] -> float32 logits [B, num_classes]."""
    inputs = keras.Input(shape=shape, dtype="float32")
    x = _conv_bn(inputs, width // 2, dtype)
    for channels in (width, 2 * width, 4 * width):
        x = ConvPool(channels, dtype=dtype)(x)  # conv at full resolution, pooled
        x = _conv_bn(x, channels, dtype)  # half resolution
    x = keras.layers.GlobalMaxPooling2D(dtype=dtype)(x)
    x = keras.layers.Dropout(dropout, dtype=dtype)(x)
    # float32 classifier: logits (and the loss) stay float32 under a mixed-precision policy
    logits = keras.layers.Dense(num_classes, dtype="float32",
                                kernel_initializer=keras.initializers.VarianceScaling(**TORCH_INIT))(x)
    return keras.Model(inputs, logits, name=BODY)


def build_model(spec: ModelSpec, dtype: str = "float32") -> keras.Model:
    """uint8 [B, H, W, C] ``image`` -> float32 logits [B, num_classes].

    dtype: the Keras dtype policy of the body, "float32" or "mixed_bfloat16" (GPU training); variables are
    float32 either way, so weights move between the two with ``set_weights``.
    """
    image = keras.Input(shape=spec.image_shape, dtype="uint8", name=INPUT_NAME)
    x = Preprocess(list(spec.mean), list(spec.std), name=PREPROCESS)(image)
    body = _body(spec.image_shape, spec.num_classes, spec.width, spec.dropout, dtype)
    views = spec.tta_views()
    if len(views) == 1:
        return keras.Model(image, body(x), name="cnn")
    weighted = []  # the same body (same weights) on every view; the weighted sum of their logits
    for shift, mirrored, weight in views:
        seen = Mirror(dtype="float32")(x) if mirrored else x
        seen = Shift(shift, dtype="float32")(seen) if any(shift) else seen
        weighted.append(keras.layers.Rescaling(weight, dtype="float32")(body(seen)))
    return keras.Model(image, keras.layers.Add(dtype="float32")(weighted), name="cnn")


def load_model_file(path: Path) -> keras.Model:
    """A model file written by the trainer (``Model.save``): float32, device placement left to TensorFlow."""
    return keras.saving.load_model(path)
