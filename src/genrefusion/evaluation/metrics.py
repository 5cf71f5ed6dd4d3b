"""Classification metrics from labels and class probabilities, and window -> track aggregation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from genrefusion.errors import ConfigError


def _mean(p, idx, n):
    return np.stack([p[idx == i].mean(0) for i in range(n)])


def _vote(p, idx, n):
    out = np.zeros((n, p.shape[1]))
    np.add.at(out, (idx, p.argmax(1)), 1.0)
    out += 1e-3 * _mean(p, idx, n)  # ties go to the higher mean probability
    return out / out.sum(1, keepdims=True)


def _max(p, idx, n):
    out = np.stack([p[idx == i].max(0) for i in range(n)])
    return out / out.sum(1, keepdims=True)


AGGREGATORS = {"mean": _mean, "vote": _vote, "max": _max}


def aggregate(proba: np.ndarray, track_index: Sequence[int], n_tracks: int, how: str = "mean") -> np.ndarray:
    """Window probabilities ``(n_windows, C)`` -> track probabilities ``(n_tracks, C)``.

    ``how``: "mean" of probabilities, majority "vote" of window top classes, or "max" per class.
    """
    if how not in AGGREGATORS:
        raise ConfigError(f"eval.aggregate must be one of {sorted(AGGREGATORS)}, got {how!r}")
    idx = np.asarray(track_index)
    if len(np.unique(idx)) != n_tracks:
        raise ConfigError(f"{n_tracks} tracks but windows of {len(np.unique(idx))}")
    return AGGREGATORS[how](np.asarray(proba, np.float64), idx, n_tracks)


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts: rows true class, columns predicted."""
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


#: bins of the top probability for the expected calibration error
ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """ECE: over ``bins`` equal-width bins of the top probability, the track-weighted mean of
    |accuracy - mean top probability| (0: the probabilities say how often the answer is right)."""
    y, proba = np.asarray(y), np.asarray(proba, np.float64)
    if not len(y):
        return 0.0
    conf = proba.max(1)
    right = proba.argmax(1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[which == b].mean() - conf[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def classification_metrics(y: np.ndarray, proba: np.ndarray, labels: list[str], *, top_k: int = 3) -> dict:
    """Accuracy, balanced accuracy, macro-F1, top-k accuracy, expected calibration error, per-class P/R/F1 and
    the confusion matrix."""
    y = np.asarray(y)
    n = len(labels)
    pred = proba.argmax(1)
    cm = confusion(y, pred, n)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = support > 0
    k = min(top_k, n)
    topk = np.argsort(-proba, axis=1)[:, :k]
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        f"top{k}_accuracy": float((topk == y[:, None]).any(1).mean()) if len(y) else 0.0,
        "ece": expected_calibration_error(y, proba),
        "per_class": {labels[i]: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                                  "support": int(support[i])} for i in range(n)},
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "ece")


def mean_std(results: list[dict], keys: Sequence[str] = SUMMARY_KEYS) -> dict:
    """``{key: {"mean", "std", "values"}}`` over several runs' metrics (seeds, folds, repeats)."""
    out = {}
    for k in keys:
        vals = [r[k] for r in results if k in r]
        if vals:
            out[k] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                      "values": [float(v) for v in vals]}
    return out


def paired_bootstrap(a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float, int]:
    """How much ``a`` beats ``b`` on the items both scored (``{item: score}``, e.g. each test track's accuracy
    over seeds): ``(mean difference, low, high, n items)``, the bounds a ``level`` percentile interval of the
    mean difference over ``resamples`` seeded resamples of the items, taken in pairs."""
    common = sorted(a.keys() & b.keys())
    if not common:
        raise ValueError("the two have no item in common")
    d = np.array([a[t] - b[t] for t in common], np.float64)
    means = d[np.random.default_rng(seed).integers(0, len(d), (resamples, len(d)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)), len(d)


@dataclass(frozen=True)
class Spread:
    """One metric over a run's evaluations (seeds, repeats or folds): its mean, std and each value."""

    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, d: Mapping) -> "Spread":
        return cls(float(d["mean"]), float(d["std"]), tuple(float(v) for v in d["values"]))

    def to_dict(self) -> dict:
        """As ``metrics.json`` and ``results.json`` keep it."""
        return {"mean": self.mean, "std": self.std, "values": list(self.values)}


@dataclass(frozen=True)
class RunMetrics:
    """A run's results (``metrics.json``, :func:`genrefusion.training.run.train_run`) as typed fields: every
    summary metric at track and window level, each fused branch alone, the training time, the labels and the
    confusion matrix (test tracks, true x predicted, over the evaluations). ``raw`` keeps the whole file."""

    track: Mapping[str, Spread]
    window: Mapping[str, Spread]
    branches: Mapping[str, Mapping[str, Spread]]
    training_seconds: float
    labels: tuple[str, ...]
    confusion: tuple[tuple[float, ...], ...]
    n_evaluations: int
    raw: Mapping = field(repr=False, compare=False)

    @property
    def accuracy(self) -> Spread:
        """Track-level test accuracy: the figure a run is reported by."""
        return self.track["accuracy"]

    @property
    def macro_f1(self) -> Spread:
        return self.track["macro_f1"]

    @classmethod
    def from_dict(cls, metrics: Mapping) -> "RunMetrics":
        s = metrics["summary"]
        level = lambda d: {k: Spread.of(v) for k, v in d.items() if isinstance(v, Mapping) and "mean" in v}  # noqa: E731
        return cls(level(s["track"]), level(s["window"]), {b: level(v) for b, v in (s.get("branches") or {}).items()},
                   float(s.get("training_seconds", 0.0)), tuple(metrics.get("labels", ())),
                   tuple(tuple(row) for row in metrics.get("confusion", ())), len(metrics.get("evaluations", ())), metrics)
