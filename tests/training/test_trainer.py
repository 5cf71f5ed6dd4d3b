"""The trainer: exact resume after a kill, early stopping, class weights, the hyper-dynamic schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrefusion.config import HyperDynamicConfig, TrainConfig
from genrefusion.training.trainer import Trainer, Validation, class_weights


class Source:
    """Random batches of a linearly separable 3-class problem, drawn from the epoch's generator."""

    def __init__(self):
        g = np.random.default_rng(0)
        self.x = g.normal(0, 1, (60, 5)).astype(np.float32)
        self.y = (self.x[:, 0] > 0.5).astype(np.int64) + (self.x[:, 1] > 0.5)

    def epoch_batches(self, rng, class_boost):
        order = rng.permutation(len(self.y))
        for s in range(0, len(order), 16):
            i = order[s:s + 16]
            yield {"x": torch.from_numpy(self.x[i])}, torch.from_numpy(self.y[i])

    def evaluate(self, model):
        with torch.no_grad():
            logits = model({"x": torch.from_numpy(self.x)})["logits"]
        pred = logits.argmax(1).numpy()
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(self.y)).item()
        return Validation(loss, float((pred == self.y).mean()), np.array([(pred[self.y == c] == c).mean() for c in range(3)]))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3))

    def forward(self, x):
        return {"logits": self.body(x["x"])}


def _trainer(model, tmp_path, cfg, log=None):
    return Trainer(model, cfg, n_classes=3, y_train=Source().y, checkpoint_dir=tmp_path, fingerprint={"t": 1}, log=log)


def test_resumed_training_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(epochs=6, lr=0.01, patience=0)
    whole = Net()
    _trainer(whole, tmp_path / "a", cfg).fit(Source(), Source())

    class Killed(Exception):
        pass

    def kill_at_epoch_3(msg):
        if msg.startswith("epoch=3"):
            raise Killed  # after epoch 2's checkpoint, before epoch 3's
    part = Net()
    with pytest.raises(Killed):
        _trainer(part, tmp_path / "b", cfg, log=kill_at_epoch_3).fit(Source(), Source())
    resumed = Net()
    result = _trainer(resumed, tmp_path / "b", cfg).fit(Source(), Source())
    assert result.resumed_from == 3
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    cfg = TrainConfig(epochs=2, lr=0.01)
    _trainer(Net(), tmp_path, cfg).fit(Source(), Source())
    other = Trainer(Net(), cfg, n_classes=3, y_train=Source().y, checkpoint_dir=tmp_path, fingerprint={"t": 2})
    assert other.fit(Source(), Source()).resumed_from is None


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    cfg = TrainConfig(epochs=40, lr=0.05, patience=3)
    model = Net()
    r = _trainer(model, tmp_path, cfg).fit(Source(), Source())
    assert r.stopped_early and len(r.history) < 40
    assert r.best_accuracy == max(h["valid_accuracy"] for h in r.history)
    assert Source().evaluate(model).accuracy == pytest.approx(r.best_accuracy)


def test_class_weights_are_inverse_frequency():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[0] < w[1] and w[2] == 0 and np.isclose(w[w > 0].mean(), 1.0)


def test_hyper_dynamic_graduates_good_classes_and_boosts_struggling_ones(tmp_path):
    cfg = TrainConfig(hyper_dynamic=HyperDynamicConfig(enabled=True, graduate_at=0.9, graduate_weight=0.5, max_boost=2.0,
                                                       momentum=0.0))
    t = _trainer(Net(), tmp_path, cfg)
    t._update_boost(np.array([0.95, 0.45, 0.0]))
    assert t.boost[0] == 0.5 and t.boost[1] == pytest.approx(1.5) and t.boost[2] == pytest.approx(2.0)


def test_augmentation_is_seeded_and_changes_spectrograms():
    from genrefusion.config import AugmentConfig
    from genrefusion.training.augment import augment, mixup

    x = {"mel": torch.randn(4, 1, 16, 20), "table": torch.randn(4, 6)}
    cfg = AugmentConfig(gain_db=3.0, time_masks=2, freq_masks=1, mask_fraction=0.3)
    kw = dict(layouts={"mel": "frames", "table": "vector"}, features={"mel": "log_mel", "table": "table_row"}, cfg=cfg)
    a = augment(x, rng=np.random.default_rng(1), **kw)
    b = augment(x, rng=np.random.default_rng(1), **kw)
    c = augment(x, rng=np.random.default_rng(2), **kw)
    assert torch.equal(a["mel"], b["mel"]) and not torch.equal(a["mel"], c["mel"])
    assert not torch.equal(a["mel"], x["mel"]) and torch.equal(a["table"], x["table"])
    m1, perm, lam = mixup(x, 0.4, np.random.default_rng(3))
    assert torch.allclose(m1["table"], lam * x["table"] + (1 - lam) * x["table"][perm])
