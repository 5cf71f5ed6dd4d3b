"""Attention CNNs: DPA-CNN (dual parallel attention) and ECAS-CNN (efficient channel + spatial attention)."""

from __future__ import annotations

from torch import nn

from genrefusion.models.layers import (Branch, ChannelAttention, ConvBlock2d, EfficientChannelAttention,
                                       SpatialAttention, global_pool)
from genrefusion.models.registry import register_branch


class _AttentionCNN(Branch):
    """Conv blocks; after each of the last ``attend_last`` blocks an attention module re-weights the map."""

    def __init__(self, *, n_classes: int, in_shape, channels, attend_last: int, dropout: float, attention):
        super().__init__(n_classes=n_classes, embedding_dim=2 * channels[-1], dropout=dropout)
        layers, c_in = [], int(in_shape[0])
        for i, c in enumerate(channels):
            layers.append(ConvBlock2d(c_in, c, n_convs=2))
            if i >= len(channels) - attend_last:
                layers.append(attention(c))
            c_in = c
        self.body = nn.Sequential(*layers)

    def embed(self, x):
        return global_pool(self.body(x))


class DualParallelAttention(nn.Module):
    """Channel attention and spatial attention applied side by side to the same map, summed."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel, self.spatial = ChannelAttention(channels), SpatialAttention()

    def forward(self, x):
        return self.channel(x) + self.spatial(x)


class ECASAttention(nn.Sequential):
    """Efficient channel attention, then spatial attention."""

    def __init__(self, channels: int):
        super().__init__(EfficientChannelAttention(channels), SpatialAttention())


@register_branch("dpa_cnn", input="matrix")
class DPACNN(_AttentionCNN):
    """CNN with dual parallel (channel | spatial) attention after the later blocks (for log-mel windows)."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64, 128),
                 attend_last: int = 2, dropout: float = 0.3):
        super().__init__(n_classes=n_classes, in_shape=in_shape, channels=tuple(channels), attend_last=attend_last,
                         dropout=dropout, attention=DualParallelAttention)


@register_branch("ecas_cnn", input="matrix")
class ECASCNN(_AttentionCNN):
    """CNN with efficient channel attention plus spatial attention after the later blocks (for MFCC windows)."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64, 128),
                 attend_last: int = 2, dropout: float = 0.3):
        super().__init__(n_classes=n_classes, in_shape=in_shape, channels=tuple(channels), attend_last=attend_last,
                         dropout=dropout, attention=ECASAttention)
