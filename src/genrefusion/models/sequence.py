"""A branch for sequences of embeddings, e.g. a lyric's chunk embeddings (``minilm_chunks``)."""

from __future__ import annotations

import torch
from torch import nn

from genrefusion.models.layers import Branch
from genrefusion.models.registry import register_branch


@register_branch("sequence_encoder", input="matrix")
class SequenceEncoder(Branch):
    """``(B, 1, T, D)`` embedding sequences (all-zero rows are padding) -> per-step MLP -> masked
    attention pooling. Also returns ``"sequence"`` ``(B, T, hidden)`` and ``"mask"`` for co-attention."""

    raw_input = True  # pretrained embeddings are used as they are; zero rows must stay zero (padding)

    def __init__(self, *, n_classes: int, in_shape, hidden: int = 128, dropout: float = 0.3):
        super().__init__(n_classes=n_classes, embedding_dim=hidden, dropout=dropout)
        self.step = nn.Sequential(nn.Linear(int(in_shape[-1]), hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.score = nn.Linear(hidden, 1)
        self.sequence_dim = hidden

    def encode(self, x: torch.Tensor):
        x = x[:, 0]
        mask = x.abs().sum(-1) > 0
        mask[:, 0] |= ~mask.any(1)  # an empty text still has one (zero) step
        h = self.step(x)
        w = torch.softmax(self.score(h).squeeze(-1).masked_fill(~mask, float("-inf")), dim=1)
        return (w[..., None] * h).sum(1), h, mask

    def embed(self, x):
        return self.encode(x)[0]

    def forward(self, x):
        z, h, mask = self.encode(x)
        return {"embedding": z, "logits": self.head(z), "sequence": h, "mask": mask}
