"""FusionModel's own behaviour, beyond the per-strategy contract."""

from __future__ import annotations

import torch

from genrefusion.fusion.model import FusionModel


def test_convolutional_branches_run_channels_last_with_unchanged_outputs():
    torch.manual_seed(0)
    model = FusionModel(
        n_classes=3,
        inputs={"image": {"layout": "image", "shape": (1, 16, 16)}, "table": {"layout": "vector", "shape": (5,)}},
        branches={"cnn": {"model": "cnn2d", "inputs": ["image"], "args": {"channels": [4, 8]}},
                  "mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 8}}},
        fusion={"strategy": "logit"}).eval()
    assert model.channels_last == {"cnn": True, "mlp": False}
    x = {"image": torch.randn(4, 1, 16, 16), "table": torch.randn(4, 5)}
    with torch.no_grad():
        fast = model(x)["logits"]
        model.channels_last["cnn"] = False
        model.branches["cnn"].to(memory_format=torch.contiguous_format)
        plain = model(x)["logits"]
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_a_bundled_pretrained_branch_is_rebuilt_without_its_initial_weights(monkeypatch):
    from genrefusion.fusion import model
    from genrefusion.models import efficientnet

    spec = {"n_classes": 3, "inputs": {"image": {"layout": "image", "shape": (1, 32, 32)}},
            "branches": {"lite0": {"model": "efficientnet_lite0", "inputs": ["image"], "args": {"dropout": 0.3}},
                         "cnn": {"model": "cnn2d", "inputs": ["image"], "args": {"channels": [4]}}},
            "fusion": {"strategy": "logit"}}
    rebuilt = model._no_initial_weights(spec)
    assert rebuilt["branches"]["lite0"]["args"] == {"dropout": 0.3, "pretrained": False}
    assert rebuilt["branches"]["cnn"]["args"] == {"channels": [4]} and "pretrained" not in spec["branches"]["lite0"]["args"]

    def no_download():
        raise AssertionError("the ImageNet weights were read")

    monkeypatch.setattr(efficientnet, "lite0_imagenet_state", no_download)
    FusionModel(**rebuilt)  # the bundle's weights are loaded next; the ImageNet ones are never read


def test_predict_runs_in_eval_mode_and_switches_only_a_training_model(monkeypatch):
    torch.manual_seed(0)
    model = FusionModel(n_classes=3, inputs={"table": {"layout": "vector", "shape": (5,)}},
                        branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 8, "dropout": 0.5}}},
                        fusion=None).train()
    x = {"table": torch.randn(6, 5)}
    first = model.predict(x)[0]  # dropout off: the same answer each time
    assert not any(m.training for m in model.modules())
    switched = []
    monkeypatch.setattr(torch.nn.Module, "eval", lambda self: switched.append(self) or self.train(False))
    again = model.predict(x)[0]
    assert switched == []  # already in eval mode: no walk over every submodule per prediction
    assert (first == again).all()
