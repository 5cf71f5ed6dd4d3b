"""Co-attention on synthetic paired sequences where only the combination of both modalities decides
the label (XOR of a marker in each), so a working fusion must beat either branch alone."""

from __future__ import annotations

import numpy as np
import torch

from genrefusion.fusion.model import FusionModel
from tests.conftest import fit_steps

N, T, D = 160, 6, 8


def paired(seed: int):
    """'Text' and 'audio' sequences; each carries one bit in a random step; label = bit_a XOR bit_b."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, N), rng.integers(0, 2, N)
    xa = rng.normal(0, 0.3, (N, 1, T, D)).astype(np.float32)
    xb = rng.normal(0, 0.3, (N, 1, T, D)).astype(np.float32)
    for i in range(N):
        xa[i, 0, rng.integers(T), a[i]] += 3.0
        xb[i, 0, rng.integers(T), 2 + b[i]] += 3.0
    return {"text": torch.from_numpy(xa), "audio": torch.from_numpy(xb)}, torch.from_numpy(a ^ b)


def train(model, x, y, steps=300):
    torch.manual_seed(0)
    fit_steps(model, lambda: model(x), y, lr=3e-3, max_steps=steps)
    return model


def accuracy(model, x, y) -> float:
    return float((model.predict_proba(x).argmax(1) == y.numpy()).mean())


def build(branches, fusion=None):
    torch.manual_seed(0)
    inputs = {n: {"layout": "sequence", "shape": (1, T, D)} for n in ("text", "audio")}
    return FusionModel(n_classes=2, inputs={n: inputs[n] for n in {i for b in branches.values() for i in b["inputs"]}},
                       branches=branches, fusion=fusion)


def test_coattention_beats_each_modality_alone():
    (x, y), (xt, yt) = paired(0), paired(1)
    enc = {"model": "sequence_encoder", "args": {"hidden": 32, "dropout": 0.0}}
    fused = train(build({"t": {**enc, "inputs": ["text"]}, "a": {**enc, "inputs": ["audio"]}},
                        {"strategy": "coattention", "args": {"dim": 16, "hidden": 32, "dropout": 0.0}}), x, y)
    alone = {n: train(build({n: {**enc, "inputs": [n]}}), {n: x[n]}, y) for n in ("text", "audio")}
    acc_fused = accuracy(fused, xt, yt)
    acc_alone = {n: accuracy(m, {n: xt[n]}, yt) for n, m in alone.items()}
    assert max(acc_alone.values()) < 0.65  # one bit of an XOR says nothing about the label
    assert acc_fused > 0.9, (acc_fused, acc_alone)
    att = fused(xt)["attention"]
    assert att.shape == (N, T, T) and torch.allclose(att.sum(-1), torch.ones(N, T))
