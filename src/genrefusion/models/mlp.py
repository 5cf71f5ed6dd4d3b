"""The MLP branch for tabular feature vectors."""

from __future__ import annotations

from torch import nn

from genrefusion.models.layers import Branch
from genrefusion.models.registry import register_branch


@register_branch("mlp", input="vector")
class MLP(Branch):
    """Multi-layer perceptron on a feature vector ``(batch, n_features)``; embedding = last hidden layer."""

    def __init__(self, *, n_classes: int, in_shape, width: int = 256, depth: int = 2, dropout: float = 0.3,
                 batch_norm: bool = True):
        super().__init__(n_classes=n_classes, embedding_dim=width)  # body ends in dropout
        layers: list[nn.Module] = []
        d_in = int(in_shape[0])
        for _ in range(depth):
            layers += [nn.Linear(d_in, width)]
            layers += [nn.BatchNorm1d(width)] if batch_norm else []
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            d_in = width
        self.body = nn.Sequential(*layers)

    def embed(self, x):
        return self.body(x)
