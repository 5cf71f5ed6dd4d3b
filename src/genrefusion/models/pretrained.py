"""Branches around pretrained networks: frozen feature extractors with a new head, optionally fine-tuned."""

from __future__ import annotations

import copy

from genrefusion.models.layers import Branch
from genrefusion.models.registry import register_branch


@register_branch("musicnn", input="matrix")
class MusicnnBranch(Branch):
    """Pretrained musicnn (MSD/MTT, musicnn or vgg) on ``musicnn_mel`` windows ``(1, 96, 187)``:
    its penultimate features feed a new linear head; frozen unless ``fine_tune``."""

    raw_input = True  # the network was trained on log10(10000 mel + 1) as is: no standardisation

    def __init__(self, *, n_classes: int, in_shape, model: str = "msd-musicnn", fine_tune: bool = False,
                 dropout: float = 0.3):
        from genrefusion.pretrained.musicnn import load_musicnn

        net = copy.deepcopy(load_musicnn(model))
        super().__init__(n_classes=n_classes, embedding_dim=net.embedding_dim, dropout=dropout)
        self.net, self.fine_tune = net, fine_tune
        for p in net.parameters():
            p.requires_grad = fine_tune

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.fine_tune:
            self.net.eval()  # frozen: batch-norm keeps the pretrained statistics
        return self

    def embed(self, x):
        return self.net(x[:, 0].transpose(1, 2))["penultimate"]  # (B, 1, 96, T) -> (B, T, 96)
