"""The synthetic set: deterministic per seed, balanced, one contrasting shape on a random background per image."""

import numpy as np
from PIL import Image

from cifar10_pipeline.contract.images import decode_image
from cifar10_pipeline.training.datasets import load_dataset
from cifar10_pipeline.training.datasets.synthetic import SYNTHETIC_CLASSES, make_synthetic
from tests.support.images import encode


def test_synthetic_is_deterministic_per_seed():
    first, again, other = (make_synthetic(seed, n_train=200, n_test=50) for seed in (3, 3, 4))
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert first.mean == again.mean
    assert not np.array_equal(first.train_images, other.train_images)


def test_synthetic_default_set():
    ds = load_dataset("synthetic", seed=0)
    assert ds.name == "synthetic" and ds.classes == SYNTHETIC_CLASSES and ds.num_classes == 10
    assert ds.train_images.shape == (8000, 32, 32, 3) and ds.test_images.shape == (2000, 32, 32, 3)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert np.bincount(ds.train_labels).tolist() == [800] * 10 and np.bincount(ds.test_labels).tolist() == [200] * 10
    assert all(120 < m < 135 for m in ds.mean) and all(60 < s < 90 for s in ds.std)  # random colours: mid-grey


def test_synthetic_at_another_image_size_is_resized_as_the_service_resizes_it():
    native, resized = (load_dataset("synthetic", seed=1, image_size=size) for size in (32, 20))
    assert native.image_shape == (32, 32, 3) and resized.image_shape == (20, 20, 3)
    assert resized.train_labels.tolist() == native.train_labels.tolist()
    for i in (0, 4321):
        upload = encode(Image.fromarray(native.train_images[i]), "PNG")
        np.testing.assert_array_equal(resized.train_images[i], decode_image(upload, "x.png", (20, 20, 3), 10**6))


def test_synthetic_images_each_show_one_contrasting_shape():
    images = make_synthetic(0, n_train=1000, n_test=10).train_images.astype(np.int16)
    # the shape covers less than half of each image, so the per-channel median is the background colour
    background = np.median(images.reshape(len(images), -1, 3), axis=1)
    # shape pixels differ by >= 64 levels in every channel; 40 is over 3 sigma of the pixel noise
    shape_fraction = (np.abs(images - background[:, None, None, :]).max(axis=-1) > 40).mean(axis=(1, 2))
    assert 0.03 < shape_fraction.min() and shape_fraction.max() < 0.45
