"""The PyTorch network (``model.torch_net``): raw uint8 input normalised inside, TTA (mirror and shifts) in the
eval-mode graph, both pooling orders, and its model file, older ones included."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.model.torch_net import (
    ConvPool,
    build_model,
    load_model_file,
    load_payload,
    pooling_last,
    save_model_file,
    view,
)
from cifar10_pipeline.training.torch_trainer import shift_flip
from tests.support.views import seen

SPEC = ModelSpec((16, 16, 3), 10, (120.0, 110.0, 100.0), (60.0, 50.0, 40.0), width=8, dropout=0.0, tta=False)


def _random_weights(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with weights drawn from N(0, 1): default init barely depends on the input; these weights do."""
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_()
    return model


def _images(n=4, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8))


def test_the_model_takes_raw_uint8_images_and_normalises_inside():
    model = _random_weights(build_model(SPEC)).eval()
    images = _images()
    # NHWC -> NCHW, then (pixel - mean) / std per channel, as a multiplication like the model's
    normalised = (images.permute(0, 3, 1, 2).float() - torch.tensor(SPEC.mean).view(1, 3, 1, 1)) \
        * (1.0 / torch.tensor(SPEC.std).view(1, 3, 1, 1))
    with torch.no_grad():
        logits = model(images)
        torch.testing.assert_close(logits, model.body(normalised))
    assert logits.dtype == torch.float32 and logits.shape == (4, 10)


def test_tta_averages_mirrored_logits_in_eval_mode_only():
    image = _images()
    mirror = image.flip(2)  # [B, H, W, C]: W is dim 2
    plain = _random_weights(build_model(SPEC)).eval()
    tta = build_model(dataclasses.replace(SPEC, tta=True)).eval()
    tta.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(tta(image), (plain(image) + plain(mirror)) / 2)
        torch.testing.assert_close(tta(mirror), tta(image))
        assert not torch.allclose(plain(mirror), plain(image), atol=1e-3)
        tta.train()  # training sees single images: the mirror is the augmentation's job
        torch.testing.assert_close(tta(image), plain.train()(image))


@pytest.mark.parametrize("axes", [False, True])
def test_shift_tta_sums_the_weighted_logits_of_every_view_in_eval_mode_only(axes):
    image = _images()
    plain = _random_weights(build_model(SPEC)).eval()
    spec = dataclasses.replace(SPEC, tta=True, tta_shift=1, tta_shift_axes=axes)
    tta = build_model(spec).eval()
    tta.load_state_dict(plain.state_dict())  # the views add no weights

    with torch.no_grad():
        expected = sum(weight * plain(torch.from_numpy(seen(image.numpy(), shift, mirrored)))
                       for shift, mirrored, weight in spec.tta_views())
        torch.testing.assert_close(tta(image), expected, rtol=1e-4, atol=1e-3)  # logits ~1e5: N(0, 1) weights
        flip_only = build_model(dataclasses.replace(SPEC, tta=True)).eval()
        flip_only.load_state_dict(plain.state_dict())
        assert not torch.allclose(tta(image), flip_only(image), atol=1e-3)  # the shifted views count
        tta.train()
        torch.testing.assert_close(tta(image), plain.train()(image))


def test_a_tta_shift_moves_the_image_as_the_training_shift_does():
    x = torch.randn(2, 3, 7, 9)
    for dy, dx in ((1, 1), (-2, -2), (1, 0), (0, -1)):
        # the augmentation's gather reads (i + dy, j + dx), its shift given as (dx, dy): a TTA shift of s is its -s
        augmented = shift_flip(x, torch.tensor([[-dx, -dy]] * 2), torch.ones(2, dtype=torch.long))
        assert torch.equal(view(x, (dy, dx), False), augmented)


def test_conv_pool_computes_the_same_function_in_both_orders():
    # PyTorch pools first, the ONNX export pools last; with BatchNorm's scale fixed at 1 the two agree exactly
    torch.manual_seed(0)
    block = ConvPool(3, 8)
    for _ in range(3):
        block(torch.randn(16, 3, 12, 12))  # training mode: moves the running statistics off their defaults
    block.bn.bias.data.normal_()
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        pool_first = block.eval()(x)
        with pooling_last(block):
            assert block.pool_last
            pool_last = block(x)
        assert not block.pool_last
        assert torch.equal(pool_first, pool_last)
        assert torch.equal(pool_first, torch.relu(block.bn(torch.max_pool2d(block.conv(x), 2))))
    assert not block.bn.weight.requires_grad and block.bn.bias.requires_grad


def test_pooling_last_puts_every_block_of_the_model_in_eval_mode_and_back():
    model = build_model(SPEC).train()
    blocks = [m for m in model.modules() if isinstance(m, ConvPool)]
    assert len(blocks) == 3
    with pooling_last(model):
        assert not model.training and all(b.pool_last for b in blocks)
    assert not any(b.pool_last for b in blocks)


def test_a_model_file_rebuilds_the_same_network_in_eval_mode(tmp_path):
    model = _random_weights(build_model(dataclasses.replace(SPEC, tta=True))).eval()
    path = tmp_path / "model.pt"
    save_model_file(model.train(), path, config={"width": 8})
    loaded = load_model_file(path)
    assert loaded.spec == model.spec and not loaded.training
    assert load_payload(path)["config"] == {"width": 8}  # the extra entries are kept
    with torch.no_grad():
        torch.testing.assert_close(loaded(_images()), model.eval()(_images()))


def test_an_older_model_file_whose_spec_says_flip_tta_still_loads(tmp_path):
    model = _random_weights(build_model(dataclasses.replace(SPEC, tta=True))).eval()
    path = tmp_path / "model.pt"
    spec = model.spec.to_dict()
    spec["flip_tta"] = spec.pop("tta")  # as model files written before the field's rename store it
    torch.save({"spec": spec, "model": model.state_dict()}, path)
    loaded = load_model_file(path)
    assert loaded.spec.tta
    with torch.no_grad():
        torch.testing.assert_close(loaded(_images()), model(_images()))
