"""scikit-learn estimators that classical branches and decision fusions share, and the numpy softmax.

A leaf module (no genrefusion model imports): branches (:mod:`genrefusion.models.classical`) and
fusions (:mod:`genrefusion.fusion.decision`) both build on it, neither on the other.
"""

from __future__ import annotations

import numpy as np
import torch

from genrefusion.errors import ModelError
from genrefusion.splits import inner_folds


def softmax(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """Row-wise softmax ``(N, C) -> (N, C)`` in float64 (numpy arrays or torch tensors)."""
    z = logits.detach().cpu().double().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: Inverse regularisation strengths tried when ``C="cv"``
CV_CS = tuple(float(c) for c in np.logspace(-3, 2, 11))


def logistic_regression(C: float | str, y: np.ndarray, *, max_iter: int, seed: int = 0,
                         groups: np.ndarray | None = None):
    """A logistic regression; ``C="cv"`` picks C from :data:`CV_CS` by stratified inner folds (up to 5)
    of the rows it is fitted on (the fusion tracks' windows: never test), by log-loss; a track's
    windows (``groups``) stay in one fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    if C != "cv":
        if isinstance(C, str):
            raise ModelError(f"C must be a number or 'cv', got {C!r}")
        return LogisticRegression(C=C, max_iter=max_iter)
    y = np.asarray(y)
    tracks = np.arange(len(y)) if groups is None else np.asarray(groups)
    if not len(y) or min(len(np.unique(tracks[y == c])) for c in np.unique(y)) < 2:
        raise ModelError("C='cv' needs at least two tracks of every class among the fusion tracks")
    return GridSearchCV(LogisticRegression(max_iter=max_iter), {"C": list(CV_CS)}, scoring="neg_log_loss",
                        cv=inner_folds(y, groups=groups, seed=seed))


def calibrated_svc(*, C: float, y: np.ndarray, kernel: str = "rbf", gamma: str | float = "scale", seed: int = 0,
                   groups: np.ndarray | None = None):
    """An SVC with Platt-scaled probabilities (scikit-learn's replacement for ``probability=True``),
    calibrated by up to 5-fold cross-validation (fewer folds where a class has fewer examples), each
    track's rows (``groups``, (N,)) in one fold."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(C=C, kernel=kernel, gamma=gamma, random_state=seed), method="sigmoid",
                                  ensemble=False, cv=inner_folds(y, groups=groups, seed=seed))


def settled(pipeline):
    """A fitted pipeline whose last step, if a grid search, is replaced by the estimator it chose: that is what
    predicts, and a bundle then keeps fitted arrays, not the search's scorer and folds."""
    from sklearn.model_selection import GridSearchCV

    name, last = pipeline.steps[-1]
    if isinstance(last, GridSearchCV):
        pipeline.steps[-1] = (name, last.best_estimator_)
    return pipeline
