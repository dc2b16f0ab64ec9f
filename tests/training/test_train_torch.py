"""PyTorch-only parts of the trainer (batched augmentation, precision) and of its exporter. The shared behaviour is in
tests/training/test_trainers.py and tests/export/."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.model.torch_net import ConvPool, build_model, pooling_last
from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.training.torch_trainer import (
    augment,
    resolve_precision,
    rotate_shift_flip,
    shift_flip,
)


def _batch(seed=0, b=16, c=3, h=32, w=32):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, c, h, w)).astype(np.float32))


def test_augment_off_is_identity_and_crop_is_an_exact_shift():
    x = _batch()
    gen = torch.Generator().manual_seed(0)
    off = TrainConfig(crop_padding=0, flip=False, rotation=0.0)
    assert torch.equal(augment(x, off, gen), x)
    shifted = augment(x, TrainConfig(crop_padding=2, flip=False, rotation=0.0), gen)
    # every output pixel is an input pixel of the same image (no interpolation), within 2 pixels
    inner = shifted[:, :, 2:-2, 2:-2]
    for i in range(len(x)):
        matches = [torch.allclose(inner[i], x[i, :, 2 + dy:30 + dy, 2 + dx:30 + dx], atol=1e-5)
                   for dy in range(-2, 3) for dx in range(-2, 3)]
        assert sum(matches) == 1


def test_augment_flip_mirrors_about_half_the_images_and_rotation_changes_them():
    x = _batch(b=200)
    flipped = augment(x, TrainConfig(crop_padding=0, flip=True, rotation=0.0), torch.Generator().manual_seed(1))
    same = [torch.allclose(flipped[i], x[i], atol=1e-5) for i in range(len(x))]
    mirrored = [torch.allclose(flipped[i], x[i].flip(-1), atol=1e-5) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140
    rotated = augment(x, TrainConfig(crop_padding=0, flip=False, rotation=10.0), torch.Generator().manual_seed(2))
    assert rotated.shape == x.shape and not torch.allclose(rotated, x, atol=1e-3)


def test_shift_flip_gather_equals_resampling_at_angle_zero():
    # the fast path (no rotation) must be the same map as the bilinear one, reflection at the edges included
    x = _batch(b=64, h=28, w=20)
    gen = torch.Generator().manual_seed(3)
    shift = torch.randint(-4, 5, (64, 2), generator=gen)
    sign = torch.where(torch.rand(64, generator=gen) < 0.5, -1, 1)
    expected = rotate_shift_flip(x, torch.zeros(64), shift, sign)
    torch.testing.assert_close(shift_flip(x, shift, sign), expected, atol=1e-4, rtol=0)  # bilinear weights round to ~1e-6


def test_tta_averages_mirrored_logits_in_eval_mode_only():
    torch.manual_seed(0)
    spec = ModelSpec((16, 16, 3), 10, (120.0,) * 3, (60.0,) * 3, width=8, dropout=0.0, tta=False)
    image = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    mirror = image.flip(2)  # [B, H, W, C]: W is dim 2
    plain, tta = build_model(spec).eval(), build_model(dataclasses.replace(spec, tta=True)).eval()
    for p in plain.parameters():  # default init barely depends on the input; these weights do
        p.data.normal_()
    tta.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(tta(image), (plain(image) + plain(mirror)) / 2)
        torch.testing.assert_close(tta(mirror), tta(image))
        assert not torch.allclose(plain(mirror), plain(image), atol=1e-3)
        tta.train()  # training sees single images: the mirror is the augmentation's job
        torch.testing.assert_close(tta(image), plain.train()(image))


def test_precision_auto_is_bfloat16_exactly_where_it_is_native():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    native_cpu = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if native_cpu else torch.float32)
    assert resolve_precision("auto", cuda) == torch.bfloat16
    assert resolve_precision("float32", cuda) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16


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
