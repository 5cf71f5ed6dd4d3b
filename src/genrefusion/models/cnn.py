"""Convolutional branches over spectrogram matrices and waveforms.

Matrix inputs are ``(batch, channels, n_bins, n_frames)`` (a log-mel window is ``(B, 1, 128, T)``);
the multi-spectral CNNs read several such inputs of the same window (STFT, mel, MFCC).
"""

from __future__ import annotations

import torch
from torch import nn

from genrefusion.models.layers import Branch, ConvBlock2d, global_pool, resize_height
from genrefusion.models.registry import register_branch


class ConvTrunk(nn.Module):
    """Stacked :class:`ConvBlock2d` (each halving both axes) then mean+max pooling -> ``(B, 2 * channels[-1])``."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        blocks, c_in = [], in_channels
        for c in channels:
            blocks.append(ConvBlock2d(c_in, c))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = 2 * channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.blocks(x))


@register_branch("cnn2d", input="matrix")
class CNN2d(Branch):
    """A small 2-D CNN for one log-mel / STFT / MFCC window."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.3):
        trunk = ConvTrunk(int(in_shape[0]), tuple(channels))
        super().__init__(n_classes=n_classes, embedding_dim=trunk.out_dim, dropout=dropout)
        self.trunk = trunk

    def embed(self, x):
        return self.trunk(x)


@register_branch("multispectral_late", input="matrix", multi_input=True)
class MultiSpectralLate(Branch):
    """Late-fusion CNN: one CNN per spectrogram (STFT, mel, MFCC); their pooled maps concatenated before the classifier."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.3):
        trunks = {name: ConvTrunk(int(shape[0]), tuple(channels)) for name, shape in in_shape.items()}
        super().__init__(n_classes=n_classes, embedding_dim=sum(t.out_dim for t in trunks.values()), dropout=dropout)
        self.trunks = nn.ModuleDict(trunks)

    def embed(self, x: dict[str, torch.Tensor]):
        return torch.cat([trunk(x[name]) for name, trunk in self.trunks.items()], dim=1)


@register_branch("multispectral_early", input="matrix", multi_input=True)
class MultiSpectralEarly(Branch):
    """Early-fusion twin: the spectrograms resized to one height and stacked as channels of one CNN."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64, 128),
                 height: int = 128, dropout: float = 0.3):
        trunk = ConvTrunk(sum(int(s[0]) for s in in_shape.values()), tuple(channels))
        super().__init__(n_classes=n_classes, embedding_dim=trunk.out_dim, dropout=dropout)
        self.names, self.height, self.trunk = list(in_shape), height, trunk

    def embed(self, x: dict[str, torch.Tensor]):
        width = min(x[n].shape[-1] for n in self.names)
        return self.trunk(torch.cat([resize_height(x[n][..., :width], self.height) for n in self.names], dim=1))


@register_branch("waveform_cnn", input="waveform")
class WaveformCNN(Branch):
    """Sample-level 1-D CNN on raw audio ``(B, 1, n_samples)``: a strided 3-sample front end, then
    blocks of conv 3 -> BN -> ReLU -> max-pool 3 (Lee et al.'s SampleCNN), mean+max over time."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 256),
                 dropout: float = 0.3):
        layers: list[nn.Module] = [nn.Conv1d(int(in_shape[0]), channels[0], 3, stride=3, bias=False),
                                   nn.BatchNorm1d(channels[0]), nn.ReLU(inplace=True)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv1d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm1d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool1d(3, ceil_mode=True)]
        super().__init__(n_classes=n_classes, embedding_dim=2 * channels[-1], dropout=dropout)
        self.body = nn.Sequential(*layers)

    def embed(self, x):
        h = self.body(x)
        return torch.cat([h.mean(-1), h.amax(-1)], dim=1)
