"""No train/serve skew: a photo decoded for training (the folder data set) and the same file uploaded to /predict
give the model the same pixels, for every format and mode, at any size, in RGB and in gray.

The served model is a pixel echo (tests.support.onnx_models): its logits are its input pixels, so the
probabilities /predict answers give back exactly what the service's decoding produced."""

from __future__ import annotations

import numpy as np
import pytest

from cifar10_pipeline.training.datasets import load_dataset
from tests.support.api import post_files
from tests.support.images import GRAY_KINDS, PHOTO_KINDS, write_photos
from tests.support.onnx_models import build_pixel_echo, echoed_pixels, write_model

SIZE = 8  # pixels: an 8x8x3 echo has 193 classes


@pytest.mark.parametrize("kinds, channels", [(PHOTO_KINDS, 3), (GRAY_KINDS, 1)], ids=["rgb", "gray"])
def test_a_photo_decoded_for_training_and_uploaded_gives_the_same_pixels(make_app, tmp_path, monkeypatch, kinds,
                                                                         channels):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # one photo of every kind per class and split, each of its own size (40x40 .. 300x300)
    paths = write_photos(tmp_path / "photos", {"train": len(kinds), "test": 1}, kinds=kinds)
    ds = load_dataset("folder", tmp_path / "photos", image_size=SIZE)
    assert ds.image_shape == (SIZE, SIZE, channels)
    trained = dict(zip([p for p in paths if p.parts[-3] == "train"], ds.train_images, strict=True))  # class by class

    shape = ds.image_shape
    echo = write_model(tmp_path / "echo.onnx", build_pixel_echo(*shape))
    client = make_app(model_path=echo).test_client()
    top_k = f"?top_k={int(np.prod(shape)) + 1}"  # every class: the anchor and each pixel
    for path, pixels in trained.items():
        response = post_files(client, [(path.name, path.read_bytes())], top_k)
        assert response.status_code == 200, response.json
        served = echoed_pixels(response.json["predictions"][0], shape)
        np.testing.assert_array_equal(served, pixels, err_msg=f"{path.name}: training and serving disagree")
    assert len({pixels.tobytes() for pixels in trained.values()}) == len(trained)  # no two photos alike
