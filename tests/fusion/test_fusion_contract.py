"""One contract for every registered fusion strategy: shapes, save/load round trip, tiny overfit."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from genrefusion.bundle import objects_from_bytes, objects_to_bytes
from genrefusion.errors import ModelError
from genrefusion.fusion import FUSIONS, build_fusion
from genrefusion.models.estimators import CV_CS
from tests.conftest import fit_steps

N_CLASSES, N = 3, 30
TWO = {"a": (8, N_CLASSES), "b": (6, N_CLASSES)}
BRANCHES_FOR = {"early": {"a": (8, N_CLASSES)},  # early fusion reads one branch over concatenated inputs
                "coattention": {"a": (8, N_CLASSES, 5), "b": (6, N_CLASSES, 4)}}  # two branches with sequences


def outputs(branches, seed=0, informative=("a", "b")):
    """Branch outputs whose embeddings and logits carry the class (for the informative branches)."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % N_CLASSES
    out = {}
    for name, (dim, c, *seq) in branches.items():
        emb = rng.normal(0, 1, (N, dim))
        logits = rng.normal(0, 1, (N, c))
        if name in informative:
            emb[np.arange(N), y % dim] += 4.0
            logits[np.arange(N), y] += 8.0
        out[name] = {"embedding": torch.tensor(emb, dtype=torch.float32), "logits": torch.tensor(logits, dtype=torch.float32)}
        if seq and seq[0]:  # a sequence of 7 steps, the class written into some of them
            s = rng.normal(0, 1, (N, 7, seq[0]))
            s[np.arange(N), 2, y % seq[0]] += 4.0
            out[name]["sequence"] = torch.tensor(s, dtype=torch.float32)
    return out, torch.from_numpy(y)


@pytest.mark.parametrize("name", sorted(n for n, s in FUSIONS.items() if not s.learns))
def test_a_strategy_that_learns_nothing_predicts_the_same_before_and_after_fitting(name):
    fusion = build_fusion(name, branches=TWO, n_classes=N_CLASSES)
    outs, y = outputs(TWO)
    as_np = {n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}
    before = fusion.predict_proba(as_np)
    assert np.array_equal(fusion.fit(as_np, (y.numpy() + 1) % N_CLASSES).predict_proba(as_np), before)


def test_only_mean_product_and_vote_learn_nothing():
    assert sorted(n for n, s in FUSIONS.items() if not s.learns) == ["mean", "product", "vote"]


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_fusion_contract(name):
    spec = FUSIONS[name]
    branches = BRANCHES_FOR.get(name, TWO)
    torch.manual_seed(0)
    fusion = build_fusion(name, branches=branches, n_classes=N_CLASSES)
    outs, y = outputs(branches)
    if spec.kind == "decision":
        as_np = {n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}
        fusion.fit(as_np, y.numpy())
        p = fusion.predict_proba(as_np)
        assert p.shape == (N, N_CLASSES) and np.allclose(p.sum(1), 1.0)
        assert (p.argmax(1) == y.numpy()).all()
        clone = pickle.loads(pickle.dumps(fusion))  # how Ray and worker processes carry a fitted fusion
        assert np.array_equal(clone.predict_proba(as_np), p)
        # what a bundle keeps, without pickle: its array form, or its fitted scikit-learn model through skops
        rebuilt, arrays = build_fusion(name, branches=branches, n_classes=N_CLASSES), fusion.arrays()
        if arrays is not None:
            rebuilt.load_arrays(arrays)
        else:
            rebuilt.load_fitted_object(objects_from_bytes(objects_to_bytes({"f": fusion.fitted_object()}))["f"])
        assert np.array_equal(rebuilt.predict_proba(as_np), p)
        return
    out = fusion(outs)
    assert out["logits"].shape == (N, N_CLASSES)
    if list(fusion.parameters()):  # early fusion has nothing of its own to train
        losses = fit_steps(fusion, lambda: fusion(outs), y, lr=1e-2)
        assert losses[-1] < 0.5 * losses[0]
    fusion.eval()
    with torch.no_grad():
        logits = fusion(outs)["logits"]
    assert (logits.argmax(1) == y).all()
    buf = io.BytesIO()
    torch.save(fusion.state_dict(), buf)
    buf.seek(0)
    clone = build_fusion(name, branches=branches, n_classes=N_CLASSES)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(outs)["logits"], logits)


def test_weighted_mean_trusts_the_informative_branch():
    f = build_fusion("weighted_mean", branches=TWO, n_classes=N_CLASSES)
    outs, y = outputs(TWO, informative=("a",))
    f.fit({n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}, y.numpy())
    assert f.weights[0] > 0.8


def test_gated_fusion_weights_are_a_distribution():
    f = build_fusion("gated", branches=TWO, n_classes=N_CLASSES)
    outs, _ = outputs(TWO)
    w = f(outs)["weights"]
    assert w.shape == (N, 2) and torch.allclose(w.sum(1), torch.ones(N))


def test_hierarchical_drops_zero_variance_dimensions():
    f = build_fusion("hierarchical", branches=TWO, n_classes=N_CLASSES)
    outs, y = outputs(TWO)
    outs["a"]["embedding"][:, 5:] = 1.0  # three constant dimensions
    f.fit({n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}, y.numpy())
    assert f.n_kept == 8 + 6 - 3


@pytest.mark.parametrize("name", ["stacking", "hierarchical"])
def test_cross_validated_regularisation_is_chosen_on_the_fusion_tracks_only(name, monkeypatch):
    from genrefusion.fusion import decision

    outs, y = outputs(TWO)
    data = {n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}
    chosen = build_fusion(name, branches=TWO, n_classes=N_CLASSES).fit(data, y.numpy()).model[-1]
    assert type(chosen).__name__ == "LogisticRegression"  # the fitted model keeps what predicts, not the search
    monkeypatch.setattr(decision, "settled", lambda pipeline: pipeline)  # to look at the search itself
    f = build_fusion(name, branches=TWO, n_classes=N_CLASSES).fit(data, y.numpy())  # C="cv" by default
    search = f.model[-1]
    assert search.best_params_["C"] == chosen.C
    assert search.best_params_["C"] in CV_CS and len(search.cv) == 5  # 10 tracks per class
    assert (f.predict_proba(data).argmax(1) == y.numpy()).mean() > 0.9
    rare = np.r_[[0, 0, 0], np.ones(N - 3, int)]  # a class of three tracks: three folds
    assert len(f.fit(data, rare).model[-1].cv) == 3
    with pytest.raises(ModelError, match="two tracks of every class"):
        f.fit(data, np.r_[[0], np.ones(N - 1, int)])
    # rows are windows: 3 per track, 4 tracks per class; a track's windows never straddle an inner fold
    tracks = y.numpy() + N_CLASSES * (np.arange(N) // (3 * N_CLASSES))
    folds = f.fit(data, y.numpy(), groups=tracks).model[-1].cv
    assert len(folds) == 4 and all(not set(tracks[a]) & set(tracks[b]) for a, b in folds)
    with pytest.raises(ModelError, match="two tracks of every class"):  # three windows of one track are one track
        f.fit(data, rare, groups=np.r_[[0, 0, 0], np.arange(1, N - 2)])
    with pytest.raises(ModelError, match="number or 'cv'"):
        build_fusion(name, branches=TWO, n_classes=N_CLASSES, C="auto")


def test_cv_regularisation_is_only_for_logistic_regression():
    with pytest.raises(ModelError, match="logreg"):
        build_fusion("hierarchical", branches=TWO, n_classes=N_CLASSES, classifier="svm", C="cv")


def test_bad_fusion_names_and_mismatched_classes_are_refused():
    with pytest.raises(ModelError, match="did you mean 'gated'"):
        build_fusion("gatd", branches=TWO, n_classes=3)
    with pytest.raises(ModelError, match="predict"):
        build_fusion("feature", branches={"a": (8, 4), "b": (6, 3)}, n_classes=3)
    with pytest.raises(ModelError, match="one branch"):
        build_fusion("early", branches=TWO, n_classes=3)
