"""Decision-level fusion on frozen branches' outputs (numpy): mean, weighted mean, product, vote,
stacking, and hierarchical fusion of embeddings.

``outputs`` is ``{branch: {"embedding": (N, D_b), "logits": (N, C)}}``; class probabilities of a
branch are the softmax of its logits.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from genrefusion.errors import ModelError
from genrefusion.fusion.registry import register_fusion
from genrefusion.models.estimators import calibrated_svc, logistic_regression, settled, softmax

Outputs = Mapping[str, Mapping[str, np.ndarray]]


class DecisionFusion:
    """Base: ``fit`` learns nothing unless overridden; ``predict_proba`` combines branch probabilities."""

    kind = "decision"
    model = None  # the fitted scikit-learn model of a strategy that fits one

    def __init__(self, *, branches, n_classes: int):
        self.names, self.n_classes = list(branches), n_classes

    @classmethod
    def learns(cls) -> bool:
        """Whether ``fit`` learns anything: true of a strategy that overrides it."""
        return cls.fit is not DecisionFusion.fit

    def probs(self, outputs: Outputs) -> np.ndarray:
        """``(n_branches, N, C)`` probabilities in branch order."""
        missing = [n for n in self.names if n not in outputs]
        if missing:
            raise ModelError(f"{self.fusion_name} fusion: outputs of branch(es) {missing} are missing")
        return np.stack([softmax(np.asarray(outputs[n]["logits"], np.float64)) for n in self.names])

    def fit(self, outputs: Outputs, y: np.ndarray, *, groups: np.ndarray | None = None) -> "DecisionFusion":
        """``y`` (N,) classes of the rows of ``outputs``; ``groups`` (N,) their tracks, which inner
        folds (where a strategy selects settings) keep together."""
        return self

    def predict_proba(self, outputs: Outputs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray] | None:
        """What ``fit`` learned as named arrays (nothing, for a strategy that learns nothing), which
        :meth:`load_arrays` restores on a fusion built with the same arguments; None where it has no such form
        (a bundle then keeps :meth:`fitted_object`)."""
        return None if self.learns() else {}

    def fitted_object(self):
        """The fitted scikit-learn model of a strategy that fits one (stacking, hierarchical)."""
        return self.model

    def load_fitted_object(self, model) -> "DecisionFusion":
        self.model = model
        return self

    def load_arrays(self, arrays) -> "DecisionFusion":
        if self.arrays() is None:  # pragma: no cover - save_bundle pickles these
            raise ModelError(f"{self.fusion_name} fusion has no array form")
        return self


@register_fusion("mean", kind="decision")
class MeanFusion(DecisionFusion):
    """Mean of the branches' class probabilities."""

    def predict_proba(self, outputs):
        return self.probs(outputs).mean(0)


@register_fusion("weighted_mean", kind="decision")
class WeightedMeanFusion(DecisionFusion):
    """Weighted mean of probabilities; weights (on the simplex) minimise log-loss on the data it is fitted on
    (the validation or fusion part, never test)."""

    def __init__(self, *, branches, n_classes: int):
        super().__init__(branches=branches, n_classes=n_classes)
        self.weights = np.full(len(self.names), 1.0 / len(self.names))

    def fit(self, outputs, y, *, groups=None):
        from scipy.optimize import minimize

        p = self.probs(outputs)
        rows = np.arange(len(y))

        def loss(theta):
            w = softmax(theta[None])[0]
            return -np.log(np.clip(np.tensordot(w, p, 1)[rows, y], 1e-12, None)).mean()

        res = minimize(loss, np.zeros(len(self.names)), method="Nelder-Mead" if len(self.names) > 1 else "Powell",
                       options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000})
        self.weights = softmax(res.x[None])[0]
        return self

    def predict_proba(self, outputs):
        return np.tensordot(self.weights, self.probs(outputs), 1)

    def arrays(self):
        return {"weights": self.weights}

    def load_arrays(self, arrays):
        self.weights = np.asarray(arrays["weights"], np.float64)
        return self


@register_fusion("product", kind="decision")
class ProductFusion(DecisionFusion):
    """Product of probabilities (geometric mean, renormalised): a branch that rules a class out vetoes it."""

    def predict_proba(self, outputs):
        logp = np.log(np.clip(self.probs(outputs), 1e-12, None)).mean(0)
        return softmax(logp)


@register_fusion("vote", kind="decision")
class VoteFusion(DecisionFusion):
    """Majority vote of the branches' top classes; ties broken by mean probability.

    ``predict_proba`` returns vote shares plus a tie-breaking term smaller than one vote.
    """

    def predict_proba(self, outputs):
        p = self.probs(outputs)
        votes = np.zeros(p.shape[1:])
        np.add.at(votes, (np.arange(p.shape[1])[None, :].repeat(len(p), 0), p.argmax(2)), 1.0)
        score = votes + 0.5 * p.mean(0)  # < 1 vote, so it only orders ties
        return score / score.sum(1, keepdims=True)


@register_fusion("stacking", kind="decision")
class StackingFusion(DecisionFusion):
    """Stacking: a logistic regression on the branches' concatenated, standardised log-probabilities;
    ``C="cv"`` (default) chooses its regularisation by inner folds of the fusion tracks.

    The inner folds keep each track's windows together, and an artist's tracks, or a dataset's fold
    group where it names no artists (GTZAN: runs of ids). With neither, tracks of one artist or album
    on both sides of an inner fold make every C look good: on GTZAN's fault-filtered split, before it
    had fold groups, the stacker fitted its 197 validation tracks to 95 % and scored 46 % on test."""

    def __init__(self, *, branches, n_classes: int, C: float | str = "cv", seed: int = 0):
        super().__init__(branches=branches, n_classes=n_classes)
        logistic_regression(C, np.arange(2).repeat(2), max_iter=1)  # a bad C fails before any training
        self.C, self.seed, self.model = C, seed, None

    def _x(self, outputs):
        p = self.probs(outputs)
        return np.log(np.clip(p, 1e-12, None)).transpose(1, 0, 2).reshape(p.shape[1], -1)

    def fit(self, outputs, y, *, groups=None):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = settled(make_pipeline(StandardScaler(), logistic_regression(
            self.C, y, max_iter=2000, seed=self.seed, groups=groups)).fit(self._x(outputs), y))
        return self

    def predict_proba(self, outputs):
        if self.model is None:
            raise ModelError("stacking fusion: predict before fit")
        out = np.zeros((len(next(iter(outputs.values()))["logits"]), self.n_classes))
        out[:, self.model.classes_] = self.model.predict_proba(self._x(outputs))
        return out


def _hierarchical_classifier(name: str, C: float | str, seed: int, y: np.ndarray, groups: np.ndarray | None = None):
    from sklearn.neural_network import MLPClassifier

    if C == "cv" and name != "logreg":
        raise ModelError(f"hierarchical fusion: C='cv' is for the logreg classifier, not {name!r}")
    makers = {
        "logreg": lambda: logistic_regression(C, y, max_iter=3000, seed=seed, groups=groups),
        "svm": lambda: calibrated_svc(C=C, seed=seed, y=y, groups=groups),
        "mlp": lambda: MLPClassifier((256,), alpha=1.0 / C, max_iter=500, early_stopping=False, random_state=seed),
    }
    if name not in makers:
        raise ModelError(f"hierarchical fusion: classifier must be one of {sorted(makers)}, got {name!r}")
    return makers[name]()


@register_fusion("hierarchical", kind="decision")
class HierarchicalFusion(DecisionFusion):
    """Hierarchical fusion: frozen branches' embeddings concatenated, zero-variance dimensions removed,
    standardised, then a classifier (logistic regression, SVM or MLP). ``C="cv"`` (logistic regression
    only; its default) chooses the regularisation by inner folds of the fusion tracks; SVM and MLP
    default to C=1."""

    def __init__(self, *, branches, n_classes: int, classifier: str = "logreg", C: float | str | None = None,
                 seed: int = 0):
        super().__init__(branches=branches, n_classes=n_classes)
        C = ("cv" if classifier == "logreg" else 1.0) if C is None else C
        _hierarchical_classifier(classifier, C, seed, np.arange(2).repeat(2))  # a bad name fails before any training
        self.classifier, self.C, self.seed, self.model = classifier, C, seed, None

    def _x(self, outputs):
        return np.concatenate([np.asarray(outputs[n]["embedding"], np.float64) for n in self.names], axis=1)

    def fit(self, outputs, y, *, groups=None):
        from sklearn.feature_selection import VarianceThreshold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = settled(make_pipeline(VarianceThreshold(0.0), StandardScaler(),
                                            _hierarchical_classifier(self.classifier, self.C, self.seed, y, groups)
                                            ).fit(self._x(outputs), y))
        return self

    @property
    def n_kept(self) -> int:
        """Embedding dimensions left after zero-variance removal."""
        return int(self.model[0].get_support().sum()) if self.model is not None else 0

    def predict_proba(self, outputs):
        if self.model is None:
            raise ModelError("hierarchical fusion: predict before fit")
        x = self._x(outputs)
        out = np.zeros((len(x), self.n_classes))
        out[:, self.model.classes_] = self.model.predict_proba(x)
        return out
