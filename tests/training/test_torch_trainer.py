"""PyTorch-only parts of the trainer (``training.torch_trainer``): batched augmentation, precision, the moving average
of the weights, and why PyTorch cannot use a GPU the driver shows; on a GPU (marker gpu), one training step runs
there. The network is tested in tests/model/test_torch_net.py; what both trainers share in test_learning.py,
test_resume.py, test_ema.py and test_cli.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from cifar10_pipeline.training import gpus
from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.datasets import prepare_for_training
from cifar10_pipeline.training.torch_trainer import (
    TorchTrainer,
    augment,
    resolve_precision,
    rotate_shift_flip,
    shift_flip,
    why_no_gpu,
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
    # bilinear weights at integer shifts are 0 and 1 up to rounding
    torch.testing.assert_close(shift_flip(x, shift, sign), expected, atol=1e-4, rtol=0)


def test_precision_auto_is_bfloat16_exactly_where_it_is_native():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    native_cpu = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if native_cpu else torch.float32)
    assert resolve_precision("auto", cuda) == torch.bfloat16
    assert resolve_precision("float32", cuda) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16


def test_the_average_follows_its_recurrence_over_the_weights_and_batchnorm_statistics(tmp_path):
    # ema 0.2 binds from the third update on, after ema_decay's lower start (0.18 at the second)
    config = TrainConfig.from_dict({"dataset": "synthetic", "width": 8, "batch_size": 64, "max_train_samples": 256,
                                    "max_test_samples": 64, "ema": 0.2, "runs_dir": str(tmp_path)})
    trainer = TorchTrainer(config, prepare_for_training(config))
    trainer.begin_epoch(0)
    expected: dict[str, torch.Tensor] = {}
    for i in range(4):
        trainer.step(np.arange(64 * i, 64 * (i + 1)), lr=0.1)
        live = {k: v.clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
        decay = min(0.2, (1 + i) / (10 + i)) if expected else 0.0  # the first update copies the weights
        expected = {k: decay * expected.get(k, 0) + (1 - decay) * v for k, v in live.items()}
    assert any("running_var" in k for k in expected)  # BatchNorm's statistics are averaged too
    averaged = trainer.averaged.module.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(averaged[k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(averaged["body.0.0.weight"], trainer.model.state_dict()["body.0.0.weight"])


def test_a_cpu_only_build_is_named_with_the_commands_that_install_the_cuda_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    cause, fix = why_no_gpu()
    assert cause == f"this PyTorch ({torch.__version__}) is a CPU-only build"
    pip = f"{sys.executable} -m pip"
    assert fix.endswith(f": {pip} uninstall -y torch && {pip} install 'torch=={torch.__version__.split('+')[0]}' "
                        "--index-url https://pypi.org/simple")


def test_a_cuda_build_names_what_the_driver_lacks(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(gpus, "LIBCUDA", "libcuda-not-installed.so.1")
    assert why_no_gpu() == ("the NVIDIA driver's libcuda-not-installed.so.1 cannot be loaded here",
                            gpus.driver_fix("12.8"))


def test_a_cuda_build_on_a_driver_that_starts_gives_pytorchs_own_reason(monkeypatch):
    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 11040).\nPlease update it.")

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(gpus, "driver_problem", lambda cuda_version: None)
    monkeypatch.setattr(torch.cuda, "init", init)
    assert why_no_gpu() == ("PyTorch cannot start CUDA 12.8: The NVIDIA driver on your system is too old (found "
                            "version 11040).", gpus.driver_fix("12.8"))


@pytest.mark.gpu
def test_on_cuda_one_step_runs_on_the_gpu_with_the_network_and_the_data_there(tmp_path):
    config = TrainConfig.from_dict({"dataset": "synthetic", "width": 8, "batch_size": 64, "max_train_samples": 256,
                                    "max_test_samples": 64, "device": "cuda", "runs_dir": str(tmp_path)})
    trainer = TorchTrainer(config, prepare_for_training(config))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.begin_epoch(0)
    loss, correct = trainer.step(np.arange(64), lr=0.1)
    assert {p.device.type for p in trainer.model.parameters()} == {"cuda"}
    assert trainer.train_x.device.type == loss.device.type == correct.device.type == "cuda"
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))  # the step updated them
    assert torch.cuda.max_memory_allocated() > trainer.train_x.numel()  # the images, at least, were put there
