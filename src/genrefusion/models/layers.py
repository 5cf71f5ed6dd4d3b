"""Building blocks shared by the neural branches: the branch base class and common layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Branch(nn.Module):
    """Base of every neural branch: ``embed(x) -> (batch, embedding_dim)``, then a linear head.

    Subclasses set ``self.embedding_dim`` and implement ``embed``; the forward pass returns
    ``{"embedding": (batch, embedding_dim), "logits": (batch, n_classes)}``.
    """

    def __init__(self, *, n_classes: int, embedding_dim: int, dropout: float = 0.0):
        super().__init__()
        self.n_classes = n_classes
        self.embedding_dim = embedding_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, n_classes))

    def embed(self, x) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x) -> dict[str, torch.Tensor]:
        z = self.embed(x)
        return {"embedding": z, "logits": self.head(z)}


class ConvBlock2d(nn.Sequential):
    """conv 3x3 -> batch-norm -> ReLU (x ``n_convs``) -> max-pool ``pool``."""

    def __init__(self, c_in: int, c_out: int, *, pool=(2, 2), n_convs: int = 1):
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        if pool:
            layers.append(nn.MaxPool2d(pool, ceil_mode=True))
        super().__init__(*layers)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 2C)``: mean and max over the map, so a short loud event still counts."""
    return torch.cat([x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))], dim=1)


class AttentionPool(nn.Module):
    """``(B, T, D)`` -> ``(B, D)``: softmax-weighted mean over time with learned scores."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(x), dim=1)
        return (w * x).sum(dim=1)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation style channel attention from pooled mean and max descriptors."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.mlp(x.mean(dim=(-2, -1))) + self.mlp(x.amax(dim=(-2, -1))))
        return x * w[:, :, None, None]


class EfficientChannelAttention(nn.Module):
    """ECA: a 1-D convolution across the pooled channel descriptor (no dimensionality reduction)."""

    def __init__(self, channels: int, kernel_size: int | None = None):
        super().__init__()
        if kernel_size is None:  # ECA-Net's adaptive size: odd, growing with log2(channels)
            k = int(abs((torch.log2(torch.tensor(float(channels))).item() + 1) / 2))
            kernel_size = k if k % 2 else k + 1
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.conv(x.mean(dim=(-2, -1))[:, None, :]))[:, 0]
        return x * w[:, :, None, None]


class SpatialAttention(nn.Module):
    """A 7x7 convolution over channel-pooled (mean, max) maps gives a weight per time-frequency cell."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


def resize_height(x: torch.Tensor, height: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, height, W)`` by linear interpolation along the frequency axis."""
    if x.shape[-2] == height:
        return x
    return F.interpolate(x, size=(height, x.shape[-1]), mode="bilinear", align_corners=False)
