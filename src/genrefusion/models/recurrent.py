"""CNN-BiGRU: a convolutional front end, a bidirectional GRU over time, attention pooling."""

from __future__ import annotations

from torch import nn

from genrefusion.models.layers import AttentionPool, Branch, ConvBlock2d
from genrefusion.models.registry import register_branch


@register_branch("cnn_bigru", input="matrix")
class CNNBiGRU(Branch):
    """Conv blocks pool frequency (and time by ``time_pool``), the frequency axis is folded into
    features, a BiGRU reads the frame sequence, and attention pooling summarises it; the BiGRU's
    outputs are also returned as ``"sequence"`` (for co-attention)."""

    def __init__(self, *, n_classes: int, in_shape, channels: tuple[int, ...] = (16, 32, 64), hidden: int = 64,
                 time_pool: int = 2, dropout: float = 0.3):
        c_in, n_bins = int(in_shape[0]), int(in_shape[1])
        blocks = []
        for c in channels:
            blocks.append(ConvBlock2d(c_in, c, pool=(2, time_pool)))
            c_in = c
            n_bins = -(-n_bins // 2)
        super().__init__(n_classes=n_classes, embedding_dim=2 * hidden, dropout=dropout)
        self.front = nn.Sequential(*blocks)
        self.gru = nn.GRU(c_in * n_bins, hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * hidden)
        self.sequence_dim = 2 * hidden

    def sequence(self, x):
        h = self.front(x)  # (B, C, F', T')
        out, _ = self.gru(h.flatten(1, 2).transpose(1, 2))  # over (B, T', C * F')
        return out

    def embed(self, x):
        return self.pool(self.sequence(x))

    def forward(self, x):
        seq = self.sequence(x)
        z = self.pool(seq)
        return {"embedding": z, "logits": self.head(z), "sequence": seq}
