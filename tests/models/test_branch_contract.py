"""One contract for every registered branch: output shapes, save/load round trip, tiny overfit."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from genrefusion.bundle import objects_from_bytes, objects_to_bytes
from genrefusion.errors import ModelError
from genrefusion.models import BRANCHES, build_branch
from tests.conftest import fit_steps

N_CLASSES = 3
SHAPES = {"matrix": (1, 24, 32), "vector": (12,), "waveform": (1, 2187), "text": (0,)}
MULTI_SHAPES = {"a": (1, 24, 32), "b": (1, 12, 32)}
#: Small hyper-parameters so that the contract runs in seconds; every registered branch needs an entry.
TINY = {
    "mlp": {"width": 32, "depth": 2, "dropout": 0.0},
    "cnn2d": {"channels": (8, 16), "dropout": 0.0},
    "multispectral_late": {"channels": (8, 16), "dropout": 0.0},
    "multispectral_early": {"channels": (8, 16), "height": 24, "dropout": 0.0},
    "cnn_bigru": {"channels": (8, 16), "hidden": 16, "dropout": 0.0},
    "dpa_cnn": {"channels": (8, 16), "dropout": 0.0},
    "ecas_cnn": {"channels": (8, 16), "dropout": 0.0},
    "resnet18": {"width": 8, "dropout": 0.0},
    "efficientnet_b0": {"width_mult": 0.25, "depth_mult": 0.25, "dropout": 0.0, "drop_path": 0.0},
    "waveform_cnn": {"channels": (8, 8, 16, 16, 16), "dropout": 0.0},
    "logreg": {"C": 100.0},
    "svm": {"C": 100.0},
    "gbm": {"n_estimators": 30},
    "musicnn": {"model": "msd-musicnn", "dropout": 0.0},
    "efficientnet_lite0": {"pretrained": True, "dropout": 0.0, "drop_path": 0.0},
    "tfidf": {"min_df": 1},
    "sequence_encoder": {"hidden": 16, "dropout": 0.0},
    "tag_prior": {"labels": ["rock", "pop", "alternative"], "sources": ["msd-musicnn"], "learn": True, "strength": 0.001},
}
#: Branches whose pretrained input has a fixed size.
SHAPE_OF = {"musicnn": (1, 96, 187), "tag_prior": (50,)}
#: A frozen network under a linear head learns faster with a larger step, and has no batch-norm
#: statistics to settle (so it may stop as soon as the loss is low).
LR = {"musicnn": 5e-2}
MIN_STEPS = {"musicnn": 1}


def synthetic(spec_input: str, multi: bool, n_per_class: int = 4, seed: int = 0, shape=None):
    """Examples whose class is written into the signal: a bright band, a spike or a tone."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(N_CLASSES), n_per_class)

    if spec_input == "text":  # a class word among shared filler words, as UTF-8 bytes like the store holds
        words = ["amor", "noite", "coração", "saudade", "festa", "mar"]
        return [np.frombuffer(" ".join([*rng.choice(words, 8), f"classe{c}ção"]).encode(), np.uint8) for c in y], \
            torch.from_numpy(y)

    def make(shape):
        x = rng.normal(0, 0.3, (len(y), *shape)).astype(np.float32)
        for i, c in enumerate(y):
            if spec_input == "vector":
                x[i, c] += 3.0
            elif spec_input == "matrix":
                band = shape[1] // N_CLASSES
                x[i, :, c * band:(c + 1) * band, :] += 2.0
            else:
                t = np.arange(shape[-1])
                x[i, 0] += np.sin(2 * np.pi * (0.02 + 0.08 * c) * t)
        return torch.from_numpy(x)

    x = {k: make(s) for k, s in MULTI_SHAPES.items()} if multi else make(shape or SHAPES[spec_input])
    return x, torch.from_numpy(y)


def test_every_branch_has_tiny_arguments():
    assert set(BRANCHES) <= set(TINY), f"add tiny arguments for {sorted(set(BRANCHES) - set(TINY))}"


def _build(name):
    spec = BRANCHES[name]
    shape = MULTI_SHAPES if spec.multi_input else SHAPE_OF.get(name, SHAPES[spec.input])
    torch.manual_seed(0)
    return build_branch(name, n_classes=N_CLASSES, in_shape=shape, **TINY[name]), spec


@pytest.mark.parametrize("name", sorted(BRANCHES))
def test_branch_contract(name):
    model, spec = _build(name)
    x, y = synthetic(spec.input, spec.multi_input, shape=SHAPE_OF.get(name))
    if spec.family == "classical":
        x = spec.cls.prepare([x.numpy() if isinstance(x, torch.Tensor) else x])
        model.fit(x, y.numpy())
        out = model(x)
        assert out["logits"].shape == (len(y), N_CLASSES) and out["embedding"].shape == (len(y), model.embedding_dim)
        clone = pickle.loads(pickle.dumps(model))  # how Ray and worker processes carry a fitted branch
        assert torch.equal(clone(x)["logits"], out["logits"])
        assert (out["logits"].argmax(1) == y).all(), "a classical branch must fit 12 separable examples"
        # what a bundle keeps, without pickle: its array form, or its fitted scikit-learn object through skops
        arrays, rebuilt = model.arrays(), _build(name)[0]
        if arrays is not None:
            rebuilt.load_arrays(arrays)
        else:
            rebuilt.load_fitted_object(objects_from_bytes(objects_to_bytes({"b": model.fitted_object()}))["b"])
        assert torch.equal(rebuilt(x)["logits"], out["logits"])
        return
    out = model(x)
    assert out["embedding"].shape == (len(y), model.embedding_dim)
    assert out["logits"].shape == (len(y), N_CLASSES)

    # 60 steps at least: batch-norm running statistics settle before the eval-mode check
    losses = fit_steps(model, lambda: model(x), y, lr=LR.get(name, 3e-3), min_steps=MIN_STEPS.get(name, 60))
    model.eval()
    with torch.no_grad():
        acc = (model(x)["logits"].argmax(1) == y).float().mean().item()
    assert losses[-1] < 0.5 * losses[0], f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert acc == 1.0, f"training accuracy {acc:.2f} after {len(losses)} steps"

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    clone, _ = _build(name)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    clone.eval()
    with torch.no_grad():
        a, b = model(x), clone(x)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["embedding"], b["embedding"])


def test_unknown_branch_and_argument_name_the_close_match():
    with pytest.raises(ModelError, match="did you mean 'cnn2d'"):
        build_branch("cnn2", n_classes=3, in_shape=(1, 8, 8))
    with pytest.raises(ModelError, match="did you mean 'dropout'"):
        build_branch("cnn2d", n_classes=3, in_shape=(1, 8, 8), dropuot=0.1)


def test_wrong_input_rank_is_refused():
    with pytest.raises(ModelError, match="rank 3"):
        build_branch("cnn2d", n_classes=3, in_shape=(57,))


def test_efficientnet_b0_and_resnet18_have_the_published_sizes():
    b0 = build_branch("efficientnet_b0", n_classes=1000, in_shape=(3, 224, 224))
    r18 = build_branch("resnet18", n_classes=1000, in_shape=(3, 224, 224))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(b0) - 5_288_548) / 5_288_548 < 0.01  # torchvision's efficientnet_b0
    assert count(r18) == 11_689_512  # torchvision's resnet18
    assert b0.embedding_dim == 1280 and r18.embedding_dim == 512


@pytest.mark.parametrize("n_classes", [2, 4])
def test_a_saved_logistic_regression_predicts_as_scikit_learn_without_it(n_classes):
    from genrefusion.models.classical import LogisticRegressionBranch

    rng = np.random.default_rng(0)
    y = np.arange(60) % n_classes
    x = rng.normal(size=(60, 5)) + y[:, None]
    branch = LogisticRegressionBranch(n_classes=n_classes, in_shape=(5,), C=0.5).fit(x, y)
    expected = branch.pipeline.predict_proba(x)
    blob = pickle.dumps(branch)
    assert b"sklearn" not in blob  # so loading a bundle does not import scikit-learn
    np.testing.assert_allclose(pickle.loads(blob).predict_proba(x), expected, atol=1e-12)

    # a branch pickled before the numpy form (the pipeline only) gets it when loaded
    old = LogisticRegressionBranch.__new__(LogisticRegressionBranch)
    old.__setstate__({k: v for k, v in branch.__dict__.items() if k != "linear"})
    np.testing.assert_allclose(old.predict_proba(x), expected, atol=1e-12)
