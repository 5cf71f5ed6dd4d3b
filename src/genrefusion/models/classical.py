"""Classical branches on feature vectors through scikit-learn's API.

Each is fitted with ``fit(x, y)`` on ``(n, n_features)`` float arrays and integer labels and
called like a neural branch, returning ``{"embedding", "logits"}`` as tensors: both are the
log class probabilities, ``(n, n_classes)``. Inputs are standardised inside the pipeline.
"""

from __future__ import annotations

import numpy as np
import torch

from genrefusion.errors import ModelError
from genrefusion.models.estimators import calibrated_svc, softmax
from genrefusion.models.registry import register_branch


class ClassicalBranch:
    """A scikit-learn pipeline (standardise -> estimator) that speaks the branch contract."""

    family = "classical"

    def __init__(self, *, n_classes: int, in_shape, **params):
        self.n_classes, self.in_shape, self.params = n_classes, tuple(in_shape), params
        self.embedding_dim = n_classes
        self.pipeline = None

    def make_estimator(self, y: np.ndarray, groups: np.ndarray | None = None):  # pragma: no cover - abstract
        raise NotImplementedError

    def make_pipeline(self, y: np.ndarray, groups: np.ndarray | None = None):
        """Standardise, then the estimator (text branches replace this); ``groups`` as in :meth:`fit`."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), self.make_estimator(y, groups))

    @staticmethod
    def prepare(inputs: list) -> np.ndarray:
        """A batch of this branch's inputs (one array per input, early-fused) -> what the pipeline takes."""
        flat = [t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t) for t in inputs]
        return np.concatenate([f.reshape(len(f), -1) for f in flat], axis=1).astype(np.float64)

    def fit(self, x, y: np.ndarray, *, groups: np.ndarray | None = None) -> "ClassicalBranch":
        """Fit on rows ``x`` with classes ``y`` (N,); ``groups`` (N,): rows that inner folds (an estimator's own
        calibration or selection) keep together, e.g. an artist's tracks."""
        missing = sorted(set(range(self.n_classes)) - set(np.unique(y).tolist()))
        if missing:
            raise ModelError(f"{self.branch_name}: classes {missing} have no training example")
        self.pipeline = self.make_pipeline(y, groups).fit(x, y)
        return self

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The fitted state as named arrays, which :meth:`load_arrays` restores on a branch built with the same
        arguments; None where the estimator has no such form (a bundle then keeps :meth:`fitted_object`)."""
        return None

    def fitted_object(self):
        """The fitted scikit-learn pipeline (what a bundle stores with skops where :meth:`arrays` is None)."""
        return self.pipeline

    def load_fitted_object(self, pipeline) -> "ClassicalBranch":
        self.pipeline = pipeline
        return self

    def load_arrays(self, arrays) -> "ClassicalBranch":  # pragma: no cover - only for branches with arrays()
        raise ModelError(f"{self.branch_name}: has no array form")

    def predict_proba(self, x) -> np.ndarray:
        if self.pipeline is None:
            raise ModelError(f"{self.branch_name}: predict before fit")
        proba = np.zeros((len(x), self.n_classes))
        proba[:, self.pipeline.classes_] = self.pipeline.predict_proba(x)
        return proba

    def branch_output(self, x, inputs: list[str]) -> dict[str, torch.Tensor]:
        """As a frozen model's branch: its outputs on a batch of named inputs (``inputs``: the ones it reads)."""
        return self(self.prepare([x[i] for i in inputs]))

    def __call__(self, x) -> dict[str, torch.Tensor]:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        logp = torch.from_numpy(np.log(np.clip(self.predict_proba(x), 1e-12, 1.0)).astype(np.float32))
        return {"embedding": logp, "logits": logp}


@register_branch("logreg", input="vector", family="classical")
class LogisticRegressionBranch(ClassicalBranch):
    """Multinomial logistic regression (L2, strength 1/C)."""

    def __init__(self, *, n_classes: int, in_shape, C: float = 1.0, max_iter: int = 2000, balanced: bool = False):
        super().__init__(n_classes=n_classes, in_shape=in_shape, C=C, max_iter=max_iter, balanced=balanced)

    def make_estimator(self, y, groups=None):
        from sklearn.linear_model import LogisticRegression

        # balanced: each class weighs the same in the loss, however many tracks it has (e.g. collections of
        # different sizes joined: 110 classical tracks beside 10 reggae ones)
        return LogisticRegression(C=self.params["C"], max_iter=self.params["max_iter"],
                                  class_weight="balanced" if self.params["balanced"] else None)

    def fit(self, x, y: np.ndarray, *, groups: np.ndarray | None = None) -> "LogisticRegressionBranch":
        super().fit(x, y, groups=groups)
        self._keep_linear()
        return self

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.linear)

    def load_arrays(self, arrays) -> "LogisticRegressionBranch":
        self.linear = {k: np.asarray(arrays[k]) for k in ("mean", "scale", "coef", "intercept", "classes")}
        return self

    def _keep_linear(self) -> None:
        """What prediction needs, in numpy: a process that only predicts never imports scikit-learn (~1.9 s)."""
        scaler, lr = self.pipeline[0], self.pipeline[-1]
        self.linear = {"mean": scaler.mean_, "scale": scaler.scale_, "coef": lr.coef_, "intercept": lr.intercept_,
                       "classes": lr.classes_}

    def predict_proba(self, x) -> np.ndarray:
        if getattr(self, "linear", None) is None:
            return super().predict_proba(x)
        p = self.linear
        z = ((np.asarray(x, np.float64) - p["mean"]) / p["scale"]) @ p["coef"].T + p["intercept"]
        if z.shape[1] == 1:  # two classes: scikit-learn's binary model, a sigmoid of one score
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        proba = np.zeros((len(z), self.n_classes))
        proba[:, p["classes"]] = softmax(z)
        return proba

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("linear") is not None:
            state["pipeline"] = None  # the numpy parameters say all; unpickling needs no scikit-learn
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if getattr(self, "linear", None) is None and self.pipeline is not None:  # saved before the numpy form
            self._keep_linear()


@register_branch("svm", input="vector", family="classical")
class SVMBranch(ClassicalBranch):
    """Support-vector machine (RBF kernel by default) with Platt-scaled probabilities."""

    def __init__(self, *, n_classes: int, in_shape, C: float = 10.0, kernel: str = "rbf", gamma: str | float = "scale",
                 seed: int = 0):
        super().__init__(n_classes=n_classes, in_shape=in_shape, C=C, kernel=kernel, gamma=gamma, seed=seed)

    def make_estimator(self, y, groups=None):
        return calibrated_svc(C=self.params["C"], kernel=self.params["kernel"], gamma=self.params["gamma"],
                              seed=self.params["seed"], y=y, groups=groups)


@register_branch("gbm", input="vector", family="classical")
class GradientBoostingBranch(ClassicalBranch):
    """Gradient-boosted trees: xgboost-cpu where installed (``backend="xgboost"``), else scikit-learn's
    histogram boosting (LightGBM's algorithm); ``backend="auto"`` picks the first available."""

    def __init__(self, *, n_classes: int, in_shape, n_estimators: int = 300, learning_rate: float = 0.05,
                 max_depth: int = 4, subsample: float = 0.8, backend: str = "auto", seed: int = 0):
        super().__init__(n_classes=n_classes, in_shape=in_shape, n_estimators=n_estimators,
                         learning_rate=learning_rate, max_depth=max_depth, subsample=subsample, backend=backend,
                         seed=seed)
        if backend not in ("auto", "xgboost", "sklearn"):
            raise ModelError(f"gbm: backend must be auto, xgboost or sklearn, got {backend!r}")

    def make_estimator(self, y, groups=None):
        p = self.params
        backend = p["backend"]
        if backend in ("auto", "xgboost"):
            try:
                from xgboost import XGBClassifier
            except ImportError:
                if backend == "xgboost":
                    raise ModelError("gbm: backend 'xgboost' needs xgboost-cpu (pip install 'genrefusion[boost]')") from None
            else:
                return XGBClassifier(n_estimators=p["n_estimators"], learning_rate=p["learning_rate"],
                                     max_depth=p["max_depth"], subsample=p["subsample"], random_state=p["seed"],
                                     n_jobs=1, tree_method="hist", eval_metric="mlogloss")
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=p["n_estimators"], learning_rate=p["learning_rate"],
                                              max_depth=p["max_depth"], random_state=p["seed"], early_stopping=False)


@register_branch("tfidf", input="text", family="classical")
class TfidfBranch(ClassicalBranch):
    """TF-IDF of word and character n-grams (sublinear tf), then a logistic regression; the vocabulary
    is learned from the training texts only."""

    def __init__(self, *, n_classes: int, in_shape, word_ngrams: tuple[int, int] = (1, 2),
                 char_ngrams: tuple[int, int] = (2, 5), max_features: int = 200_000, min_df: int = 2, C: float = 10.0):
        super().__init__(n_classes=n_classes, in_shape=in_shape, word_ngrams=tuple(word_ngrams),
                         char_ngrams=tuple(char_ngrams), max_features=max_features, min_df=min_df, C=C)

    def make_pipeline(self, y, groups=None):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        p = self.params
        parts = [TfidfVectorizer(analyzer="word", ngram_range=p["word_ngrams"], min_df=p["min_df"], sublinear_tf=True,
                                 max_features=p["max_features"])]
        if p["char_ngrams"]:
            parts.append(TfidfVectorizer(analyzer="char_wb", ngram_range=p["char_ngrams"], min_df=p["min_df"],
                                         sublinear_tf=True, max_features=p["max_features"]))
        return make_pipeline(make_union(*parts), LogisticRegression(C=p["C"], max_iter=3000))

    @staticmethod
    def prepare(inputs: list) -> list[str]:
        """Texts of several inputs are joined by a newline."""
        def text(v):
            return v if isinstance(v, str) else bytes(np.asarray(v, np.uint8)).decode("utf-8")

        return ["\n".join(text(col[i]) for col in inputs) for i in range(len(inputs[0]))]
