"""Genres from pretrained taggers' own tags: the tag -> genre table read zero-shot, or a mapping learned
from labelled tracks that starts at the table and is pulled back toward it.

The input is the tag probabilities of one or more musicnn models side by side (``musicnn_tags`` of each
model in ``sources``, ``(50 * len(sources),)``). Zero-shot (``learn=False``) the genre scores are the
table's (:func:`genrefusion.pretrained.tag_genres.zero_shot_logits`) and fitting learns nothing. Learned,
the scores are ``alpha * zero_shot + W u + b`` over the tags' standardised log-odds ``u``, fitted by
class-balanced cross-entropy with the penalty ``strength * (|W|^2 + |b|^2 + (alpha - 1)^2)``: at
``W = b = 0, alpha = 1`` the model is the table, and a few hundred tracks move it only as far as they
pay for. ``strength="cv"`` chooses it by inner folds of the training tracks (an artist's tracks, or a
fold group, kept in one fold).
"""

from __future__ import annotations

import numpy as np

from genrefusion.errors import ModelError
from genrefusion.models.estimators import softmax
from genrefusion.models.classical import ClassicalBranch
from genrefusion.models.registry import register_branch
from genrefusion.pretrained import tag_genres
from genrefusion.splits import inner_folds

#: penalties tried when ``strength="cv"``
CV_STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@register_branch("tag_prior", input="vector", family="classical")
class TagPriorBranch(ClassicalBranch):
    """Genres read off pretrained taggers' tags through the tag -> genre table (zero-shot), or learned from there."""

    def __init__(self, *, n_classes: int, in_shape, labels: tuple[str, ...] | list[str] = (),
                 sources: tuple[str, ...] | list[str] = ("msd-musicnn", "mtt-musicnn"), table: int = 1,
                 learn: bool = False, strength: float | str = "cv", seed: int = 0):
        super().__init__(n_classes=n_classes, in_shape=in_shape, labels=list(labels), sources=list(sources),
                         table=table, learn=learn, strength=strength, seed=seed)
        if len(labels) != n_classes:
            raise ModelError(f"tag_prior: needs the {n_classes} label names (labels), got {list(labels)}")
        if tuple(self.in_shape) != (50 * len(sources),):
            raise ModelError(f"tag_prior: input of {len(sources)} tagger(s) {list(sources)} has "
                             f"{50 * len(sources)} tag probabilities, got shape {tuple(self.in_shape)}")
        if not (strength == "cv" or (isinstance(strength, (int, float)) and not isinstance(strength, bool)
                                     and strength > 0)):
            raise ModelError(f"tag_prior: strength must be a positive number or 'cv', got {strength!r}")
        self.weights = tag_genres.table_weights(list(labels), list(sources), version=table)
        self.state = {"W": np.zeros((n_classes, self.in_shape[0])), "b": np.zeros(n_classes), "alpha": np.ones(1),
                      "mean": np.zeros(self.in_shape[0]), "scale": np.ones(self.in_shape[0])}
        self.chosen_strength: float | None = None

    def zero_shot(self, x: np.ndarray) -> np.ndarray:
        """The table's genre scores ``(N, C)`` for tag probabilities ``x`` ``(N, 50 * n_sources)``."""
        return tag_genres.zero_shot_logits(x, self.weights)

    def logits(self, x: np.ndarray) -> np.ndarray:
        s = self.state
        u = (tag_genres.tag_log_odds(x) - s["mean"]) / s["scale"]
        return s["alpha"][0] * self.zero_shot(x) + u @ s["W"].T + s["b"]

    def fit(self, x, y: np.ndarray, *, groups: np.ndarray | None = None) -> "TagPriorBranch":
        if not self.params["learn"]:
            return self  # the table alone: nothing to learn, and no class needs an example
        x, y = np.asarray(x, np.float64), np.asarray(y)
        missing = sorted(set(range(self.n_classes)) - set(np.unique(y).tolist()))
        if missing:
            raise ModelError(f"{self.branch_name}: classes {missing} have no training example")
        lo = tag_genres.tag_log_odds(x)
        mean, scale = lo.mean(0), lo.std(0)
        scale = np.where(scale > 1e-6, scale, 1.0)
        strength = self.params["strength"]
        if strength == "cv":
            strength = self._choose_strength(x, y, groups)
        self.chosen_strength = float(strength)
        self.state = _fit_residual(self.zero_shot(x), (lo - mean) / scale, y, self.n_classes, float(strength))
        self.state.update(mean=mean, scale=scale)
        return self

    def _choose_strength(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
        """The penalty with the lowest class-balanced log-loss on held-out inner folds."""
        losses = np.zeros(len(CV_STRENGTHS))
        for fit_rows, held in inner_folds(y, groups=groups, seed=self.params["seed"]):
            lo = tag_genres.tag_log_odds(x[fit_rows])
            mean, scale = lo.mean(0), np.where(lo.std(0) > 1e-6, lo.std(0), 1.0)
            u_fit, u_held = (lo - mean) / scale, (tag_genres.tag_log_odds(x[held]) - mean) / scale
            z0_fit, z0_held = self.zero_shot(x[fit_rows]), self.zero_shot(x[held])
            for i, lam in enumerate(CV_STRENGTHS):
                s = _fit_residual(z0_fit, u_fit, y[fit_rows], self.n_classes, lam)
                z = s["alpha"][0] * z0_held + u_held @ s["W"].T + s["b"]
                logp = np.log(np.clip(softmax(z), 1e-12, None))[np.arange(len(held)), y[held]]
                w = _balanced(y[held], self.n_classes)
                losses[i] += -(w * logp).sum() / w.sum()
        return CV_STRENGTHS[int(np.argmin(losses))]

    def predict_proba(self, x) -> np.ndarray:
        return softmax(self.logits(np.asarray(x, np.float64)))

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.state)

    def load_arrays(self, arrays) -> "TagPriorBranch":
        self.state = {k: np.asarray(arrays[k], np.float64) for k in ("W", "b", "alpha", "mean", "scale")}
        return self


def _balanced(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weights that give every class the same total weight."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (len(y) / (n_classes * np.maximum(counts, 1.0)))[y]


def _fit_residual(z0: np.ndarray, u: np.ndarray, y: np.ndarray, n_classes: int, strength: float) -> dict:
    """``alpha, W, b`` minimising class-balanced cross-entropy of ``alpha z0 + u W^T + b`` plus
    ``strength * (|W|^2 + |b|^2 + (alpha - 1)^2)`` (L-BFGS, exact gradient), from the table's point."""
    from scipy.optimize import minimize

    n, t = u.shape
    w = _balanced(y, n_classes)
    w = w / w.sum()
    onehot = np.eye(n_classes)[y]

    def loss(theta):
        alpha, b, W = theta[0], theta[1:1 + n_classes], theta[1 + n_classes:].reshape(n_classes, t)
        z = alpha * z0 + u @ W.T + b
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        g = w[:, None] * (np.exp(logp) - onehot)  # d loss / d z
        value = -(w * (logp * onehot).sum(1)).sum() + strength * ((W ** 2).sum() + (b ** 2).sum() + (alpha - 1) ** 2)
        grad = np.concatenate([[(g * z0).sum() + 2 * strength * (alpha - 1)], g.sum(0) + 2 * strength * b,
                               (g.T @ u + 2 * strength * W).ravel()])
        return value, grad

    theta0 = np.concatenate([[1.0], np.zeros(n_classes), np.zeros(n_classes * t)])
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    theta = res.x
    return {"alpha": theta[:1], "b": theta[1:1 + n_classes], "W": theta[1 + n_classes:].reshape(n_classes, t)}
