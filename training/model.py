"""The PyTorch CNN. Its input is the ONNX contract's raw ``uint8 [B, H, W, C]`` image, so the exported graph
carries all preprocessing (scale, mean/std, NHWC -> NCHW).

Edges to shapes to objects: a stem conv, then three blocks of conv + BatchNorm + GELU with a 2x2 max-pool
between their two convs (resolution 32 -> 16 -> 8 -> 4), a global max-pool, Dropout, and a linear classifier.
With ``flip_tta`` the eval-mode model averages the logits of each image and its mirror (test-time
augmentation), so the exported graph does it too and every client gets it for free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Everything that builds the network; stored in every checkpoint so a file rebuilds its own model."""

    height: int
    width: int
    channels: int
    num_classes: int
    mean: tuple[float, ...]  # per channel, pixel units (0..255)
    std: tuple[float, ...]
    base_width: int = 64
    dropout: float = 0.1
    flip_tta: bool = False  # eval mode: mean logits of the image and its horizontal mirror

    @classmethod
    def from_dict(cls, values: dict) -> ModelSpec:
        return cls(**{**values, "mean": tuple(values["mean"]), "std": tuple(values["std"])})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Preprocess(nn.Module):
    """uint8 [B, H, W, C] raw pixels -> float32 [B, C, H, W], normalised with the data set's mean/std."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.mean) * self.inv_std


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


class Block(nn.Sequential):
    """conv (full resolution) -> 2x2 max-pool -> conv (half resolution)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv_bn(c_in, c_out), nn.MaxPool2d(2), conv_bn(c_out, c_out))


class Net(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        w = spec.base_width
        self.spec = spec
        self.preprocess = Preprocess(spec.mean, spec.std)
        self.body = nn.Sequential(
            conv_bn(spec.channels, w // 2),
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
        """Normalised float [B, C, H, W] -> logits float32 [B, num_classes]; with flip TTA in eval mode."""
        if self.training or not self.spec.flip_tta:
            return self.body(x).float()
        # one body call on [2B, ...]: the batch then its mirror (flip along W); [2B, K] -> [2, B, K] -> mean
        return self.body(torch.cat([x, x.flip(3)])).float().unflatten(0, (2, -1)).mean(0)


def build_model(spec: ModelSpec) -> Net:
    return Net(spec)
