"""ResNet-18 in plain torch (no torchvision), for spectrogram and waveform images."""

from __future__ import annotations

from torch import nn

from genrefusion.models.layers import Branch
from genrefusion.models.registry import register_branch


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


@register_branch("resnet18", input="matrix")
class ResNet18(Branch):
    """ResNet-18 (He et al. 2016), torchvision's layer names; ``width`` scales all channels (64 = standard)."""

    def __init__(self, *, n_classes: int, in_shape, width: int = 64, dropout: float = 0.2):
        widths = [width, 2 * width, 4 * width, 8 * width]
        super().__init__(n_classes=n_classes, embedding_dim=widths[-1], dropout=dropout)
        self.conv1 = nn.Conv2d(int(in_shape[0]), width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = width
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, c, stride), BasicBlock(c, c, 1)))
            c_in = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(-2, -1))
