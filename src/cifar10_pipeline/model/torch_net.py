"""The PyTorch CNN of ``model.spec``; its input is the ONNX contract's raw ``uint8 [B, H, W, C]`` image."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cifar10_pipeline.files import atomic_path
from cifar10_pipeline.model import ModelFileError
from cifar10_pipeline.model.spec import ModelSpec, pooling_last_blocks, shifted_index


class Preprocess(nn.Module):
    """uint8 [B, H, W, C] raw pixels -> float32 [B, C, H, W], normalised with the data set's mean/std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.mean) * self.inv_std


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm whose scale stays 1 (only its shift trains): a positive scale makes BatchNorm + ReLU monotone per
    channel, so they commute with max-pooling (``ConvPool``)."""
    bn = nn.BatchNorm2d(channels)
    bn.weight.requires_grad_(False)
    return bn


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), batch_norm(c_out), nn.ReLU(inplace=True))


class ConvPool(nn.Module):
    """3x3 conv, BatchNorm, ReLU and a 2x2 max-pool, in the order that runs fastest where it runs; both orders
    compute the same function because BatchNorm (scale 1) and ReLU are monotone per channel.

    PyTorch pools first, leaving BatchNorm and ReLU a quarter of the pixels; the ONNX export (``pooling_last``)
    pools last, so that onnxruntime folds BatchNorm into the conv and fuses the ReLU (fp32 and INT8).
    """

    pool_last = False  # set only by pooling_last

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.pool_last:
            return F.max_pool2d(F.relu(self.bn(x)), 2)
        return F.relu(self.bn(F.max_pool2d(x, 2)), inplace=True)


def pooling_last(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """``model`` in eval mode with every ConvPool pooling last: the graph the ONNX export traces."""
    model.eval()
    return pooling_last_blocks(m for m in model.modules() if isinstance(m, ConvPool))


class Block(nn.Sequential):
    """conv (full resolution) -> 2x2 max-pool -> conv (half resolution)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvPool(c_in, c_out), conv_bn(c_out, c_out))


class Net(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        w = spec.width
        self.spec = spec
        self.preprocess = Preprocess(spec.mean, spec.std)
        self.body = nn.Sequential(
            conv_bn(spec.image_shape[2], w // 2),
            Block(w // 2, w),
            Block(w, 2 * w),
            Block(2 * w, 4 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Dropout(spec.dropout),
            nn.Linear(4 * w, spec.num_classes),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] -> logits float32 [B, num_classes]."""
        return self.classify(self.preprocess(image))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float [B, C, H, W] -> logits float32 [B, num_classes]; with the spec's TTA in eval mode."""
        views = self.spec.tta_views()
        if self.training or len(views) == 1:
            return self.body(x).float()
        # one body call on [V*B, ...], the batch seen V ways; [V*B, K] -> [V, B, K] -> weighted sum over the views
        logits = self.body(torch.cat([view(x, shift, mirrored) for shift, mirrored, _ in views])).float()
        weights = torch.tensor([weight for *_, weight in views], device=x.device).view(-1, 1, 1)
        return (logits.unflatten(0, (len(views), -1)) * weights).sum(0)


def view(x: torch.Tensor, shift: tuple[int, int], mirrored: bool) -> torch.Tensor:
    """[B, C, H, W] flipped along W if ``mirrored``, then moved ``shift`` = (rows, columns) pixels down and right
    (``shifted_index``)."""
    if mirrored:
        x = x.flip(3)
    for axis, by in zip((2, 3), shift):
        if by:
            x = x.index_select(axis, torch.tensor(shifted_index(x.shape[axis], by), device=x.device))
    return x


def build_model(spec: ModelSpec) -> Net:
    return Net(spec)


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary file and a rename: a reader sees the old file or the whole new one."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_model_file(model: Net, path: Path, **extra: Any) -> None:
    """The weights with the spec that rebuilds them (and ``extra`` entries such as the training config)."""
    save_atomic({"spec": model.spec.to_dict(), "model": model.state_dict(), **extra}, path)


def load_payload(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """What ``save_atomic`` wrote. Only tensors and plain containers are unpickled (``weights_only``): a shared
    model file or checkpoint whose pickle would call a function is refused before anything in it runs."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelFileError(
            f"{path} is refused: it holds more than tensors and plain containers (a pickle that would run code when "
            f"loaded, or a file this project did not write). Re-train, or get the file from a source you trust. "
            f"PyTorch said: {str(e).splitlines()[0]}") from e


def load_model_file(path: Path) -> Net:
    """A model file written by ``save_model_file``: the rebuilt network, in eval mode on the CPU."""
    payload = load_payload(path)
    model = build_model(ModelSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["model"])
    return model.eval()
