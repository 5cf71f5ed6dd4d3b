"""Neural fusion heads: early (pass-through), feature-level, logit-level, gated/attention."""

from __future__ import annotations

import torch
from torch import nn

from genrefusion.errors import ModelError
from genrefusion.fusion.registry import register_fusion


def mlp(d_in: int, hidden: int, depth: int, d_out: int, dropout: float) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units (Linear -> ReLU -> Dropout), then a linear output."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        d_in = hidden
    return nn.Sequential(*layers, nn.Linear(d_in, d_out))


@register_fusion("early", kind="neural")
class EarlyFusion(nn.Module):
    """Early fusion: inputs are concatenated (vectors) or stacked (spectrograms) before one branch;
    this head passes that branch's logits through."""

    def __init__(self, *, branches, n_classes: int):
        super().__init__()
        if len(branches) != 1:
            raise ModelError(f"early fusion takes one branch reading several inputs, got branches {sorted(branches)}")
        self.name = next(iter(branches))

    def forward(self, outputs):
        return {"logits": outputs[self.name]["logits"]}


@register_fusion("feature", kind="neural")
class FeatureFusion(nn.Module):
    """Feature-level fusion: branch embeddings (each optionally projected to ``project`` dims) concatenated, then an MLP."""

    def __init__(self, *, branches, n_classes: int, project: int = 0, hidden: int = 256, depth: int = 1,
                 dropout: float = 0.3):
        super().__init__()
        self.names = list(branches)
        self.proj = nn.ModuleDict({n: nn.Linear(d, project) if project else nn.Identity() for n, (d, *_) in branches.items()})
        d_in = project * len(branches) if project else sum(d for d, *_ in branches.values())
        self.mlp = mlp(d_in, hidden, depth, n_classes, dropout)

    def forward(self, outputs):
        z = torch.cat([self.proj[n](outputs[n]["embedding"]) for n in self.names], dim=1)
        return {"logits": self.mlp(z)}


@register_fusion("logit", kind="neural")
class LogitFusion(nn.Module):
    """Logit-level (late) fusion: branch logits concatenated, then a small MLP."""

    def __init__(self, *, branches, n_classes: int, hidden: int = 64, depth: int = 1, dropout: float = 0.1):
        super().__init__()
        self.names = list(branches)
        self.mlp = mlp(n_classes * len(branches), hidden, depth, n_classes, dropout)

    def forward(self, outputs):
        return {"logits": self.mlp(torch.cat([outputs[n]["logits"] for n in self.names], dim=1))}


@register_fusion("gated", kind="neural")
class GatedFusion(nn.Module):
    """Gated / attention fusion: each embedding projected to ``dim``; a gate computed from all of them
    gives input-dependent branch weights (softmax); the weighted sum is classified.

    Returns ``{"logits": (N, C), "weights": (N, n_branches)}``.
    """

    def __init__(self, *, branches, n_classes: int, dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.names = list(branches)
        self.proj = nn.ModuleDict({n: nn.Sequential(nn.Linear(d, dim), nn.ReLU(inplace=True))
                                   for n, (d, *_) in branches.items()})
        self.gate = nn.Linear(dim * len(branches), len(branches))
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, outputs):
        h = torch.stack([self.proj[n](outputs[n]["embedding"]) for n in self.names], dim=1)  # (N, B, dim)
        w = torch.softmax(self.gate(h.flatten(1)), dim=1)
        return {"logits": self.out((w[:, :, None] * h).sum(1)), "weights": w}
