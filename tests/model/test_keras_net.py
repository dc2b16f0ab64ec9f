"""The Keras network (``model.keras_net``), TensorFlow only (``.venv-tf``): raw uint8 input normalised inside, TTA
(mirror and shifts) in the full model only, both pooling orders, and the trainer's model file."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar10_pipeline.model.keras_net import (BODY, PREPROCESS, ConvPool, Mirror, Shift, build_model,
                                              load_model_file, pooling_last)
from cifar10_pipeline.model.spec import ModelSpec
from tests.support.views import seen

SPEC = ModelSpec((12, 12, 3), 4, (120.0, 110.0, 100.0), (60.0, 50.0, 40.0), width=8, dropout=0.0, tta=False)


def _normal(seed=0, b=16, h=12, w=12, c=3) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(size=(b, h, w, c)).astype(np.float32))


def _images(n=4, seed=1, side=12) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def test_final_model_takes_raw_uint8_images_and_normalises_inside(trained):
    model = load_model_file(trained.run.final_model("model.keras"))
    assert model.input.dtype == "uint8" and model.input.name == "image"
    assert tuple(model.input.shape) == (None, 32, 32, 3)
    images = _images(side=32)
    preprocess = model.get_layer(PREPROCESS)
    mean, std = np.array(preprocess.mean), np.array(preprocess.std)
    normalised = (images.astype(np.float32) - mean) / std
    body = model.get_layer(BODY)
    # the tiny config bakes TTA in: the mean of the body's logits for the image and its mirror
    expected = (body(normalised, training=False) + body(normalised[:, :, ::-1], training=False)) / 2
    np.testing.assert_allclose(model(images, training=False), expected, atol=1e-4)
    # eval mode is deterministic (dropout off) and the logits are float32
    logits = model(images, training=False)
    assert logits.dtype == tf.float32 and logits.shape == (4, 10)
    np.testing.assert_array_equal(logits, model(images, training=False))


def test_tta_is_in_the_full_model_only_when_the_spec_asks_for_it():
    keras.utils.set_random_seed(0)
    plain = build_model(SPEC)
    rng = np.random.default_rng(0)
    for v in plain.weights:  # default init barely depends on the input; these kernels do
        if v.path.endswith("/kernel"):
            v.assign(rng.normal(size=v.shape).astype(np.float32))
    tta = build_model(dataclasses.replace(SPEC, tta=True))
    tta.set_weights(plain.get_weights())  # the mirror and the mean add no variables
    assert not any(isinstance(layer, Mirror) for layer in plain.layers)
    images = _images()
    mirrored = images[:, :, ::-1]
    averaged = (plain(images, training=False) + plain(mirrored, training=False)) / 2
    np.testing.assert_allclose(tta(images, training=False), averaged, rtol=1e-5)
    np.testing.assert_allclose(tta(mirrored, training=False), tta(images, training=False), rtol=1e-5)
    assert not np.allclose(plain(mirrored, training=False), plain(images, training=False), atol=1e-3)


@pytest.mark.parametrize("axes", [False, True])
def test_shift_tta_sums_the_weighted_logits_of_every_view(axes):
    keras.utils.set_random_seed(0)
    plain = build_model(SPEC)
    rng = np.random.default_rng(0)
    for v in plain.weights:
        if v.path.endswith("/kernel"):
            v.assign(rng.normal(size=v.shape).astype(np.float32))
    spec = dataclasses.replace(SPEC, tta=True, tta_shift=1, tta_shift_axes=axes)
    tta = build_model(spec)
    tta.set_weights(plain.get_weights())  # the views and their sum add no variables
    images = _images()
    expected = sum(weight * plain(seen(images, shift, mirrored), training=False)
                   for shift, mirrored, weight in spec.tta_views())
    np.testing.assert_allclose(tta(images, training=False), expected, rtol=1e-4)
    flip_only = build_model(dataclasses.replace(SPEC, tta=True))
    flip_only.set_weights(plain.get_weights())
    assert not np.allclose(tta(images, training=False), flip_only(images, training=False), rtol=1e-3)


@pytest.mark.parametrize("axes, shifts", [(False, [(-2, -2), (-2, -2), (2, 2), (2, 2)]),
                                          (True, [(-2, 0), (-2, 0), (0, -2), (0, -2), (0, 2), (0, 2), (2, 0), (2, 0)])])
def test_a_saved_shift_tta_model_loads_with_its_views(tmp_path, axes, shifts):
    model = build_model(dataclasses.replace(SPEC, tta=True, tta_shift=2, tta_shift_axes=axes))
    model.save(tmp_path / "model.keras")
    loaded = load_model_file(tmp_path / "model.keras")
    assert sorted(layer.shift for layer in loaded.layers if isinstance(layer, Shift)) == shifts
    images = _images()
    np.testing.assert_allclose(loaded(images, training=False), model(images, training=False), rtol=1e-6)


def test_a_shift_saved_as_one_int_moves_both_axes_as_the_diagonal_views_did():
    # model files saved before the (rows, columns) pair hold "shift": 2
    older = Shift.from_config({**Shift((2, 2)).get_config(), "shift": 2})
    images = _normal()
    assert older.shift == (2, 2)
    np.testing.assert_array_equal(older(images), Shift((2, 2))(images))
    np.testing.assert_array_equal(Shift((2, 2))(images), seen(images.numpy(), (2, 2), False))


def test_conv_pool_computes_the_same_function_in_both_orders():
    # Keras pools first, the graph the ONNX export traces pools last; with BatchNorm's scale fixed at 1 the two
    # agree exactly
    keras.utils.set_random_seed(0)
    model = build_model(dataclasses.replace(SPEC, mean=(0.0,) * 3, std=(1.0,) * 3))
    body = model.get_layer(BODY)
    block = next(layer for layer in body.layers if isinstance(layer, ConvPool))
    for _ in range(3):
        body(_normal(), training=True)  # moves the running statistics off their defaults
    block.bn.beta.assign(np.random.default_rng(0).normal(size=8).astype(np.float32))
    images = _images()
    pool_first = model(images, training=False).numpy()
    with pooling_last(model):
        assert block.pool_last
        pool_last = model(images, training=False).numpy()
    assert not block.pool_last
    np.testing.assert_array_equal(pool_first, pool_last)
    assert block.bn.gamma is None and block.bn.beta.trainable
