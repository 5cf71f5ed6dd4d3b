"""Dense co-attention fusion of two sequences (e.g. lyric chunks and audio frames)."""

from __future__ import annotations

import math

import torch
from torch import nn

from genrefusion.errors import ModelError
from genrefusion.fusion.registry import register_fusion


@register_fusion("coattention", kind="neural")
class CoAttentionFusion(nn.Module):
    """Two branches' ``"sequence"`` outputs projected to ``dim``; a bilinear affinity between every
    step of one and every step of the other; each side attends to the other, is fused with what it
    attended to (``[x, a, x * a]``), pooled (masked mean and max), and the two summaries classified.

    Returns ``{"logits", "attention": (N, T_a, T_b)}``.
    """

    def __init__(self, *, branches, n_classes: int, dim: int = 64, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        seqs = {n: d[2] for n, d in branches.items() if len(d) > 2 and d[2]}
        if len(branches) != 2 or len(seqs) != 2:
            raise ModelError("co-attention fuses exactly two branches that return sequences "
                             f"(e.g. cnn_bigru, sequence_encoder); got {dict(branches)}")
        self.a, self.b = list(seqs)
        self.proj = nn.ModuleDict({n: nn.Linear(d, dim) for n, d in seqs.items()})
        self.affinity = nn.Parameter(torch.eye(dim))
        self.fuse = nn.ModuleDict({n: nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(inplace=True)) for n in seqs})
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * dim, hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        self.scale = 1.0 / math.sqrt(dim)

    @staticmethod
    def _mask(out: dict, seq: torch.Tensor) -> torch.Tensor:
        m = out.get("mask")
        return m if m is not None else torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device)

    @staticmethod
    def _pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(h.dtype)
        mean = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        mx = h.masked_fill(~mask[..., None], float("-inf")).amax(1)
        return torch.cat([mean, mx], dim=1)

    def forward(self, outputs):
        oa, ob = outputs[self.a], outputs[self.b]
        xa, xb = self.proj[self.a](oa["sequence"]), self.proj[self.b](ob["sequence"])
        ma, mb = self._mask(oa, xa), self._mask(ob, xb)
        L = (xa @ self.affinity @ xb.transpose(1, 2)) * self.scale  # (N, Ta, Tb)
        att_ab = torch.softmax(L.masked_fill(~mb[:, None, :], float("-inf")), dim=2)
        att_ba = torch.softmax(L.transpose(1, 2).masked_fill(~ma[:, None, :], float("-inf")), dim=2)
        a_ctx, b_ctx = att_ab @ xb, att_ba @ xa
        ha = self.fuse[self.a](torch.cat([xa, a_ctx, xa * a_ctx], dim=-1))
        hb = self.fuse[self.b](torch.cat([xb, b_ctx, xb * b_ctx], dim=-1))
        z = torch.cat([self._pool(ha, ma), self._pool(hb, mb)], dim=1)
        return {"logits": self.out(z), "attention": att_ab}
