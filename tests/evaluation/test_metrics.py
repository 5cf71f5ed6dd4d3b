import numpy as np
import pytest

from genrefusion.errors import ConfigError
from genrefusion.evaluation.metrics import aggregate, classification_metrics, mean_std


def test_metrics_on_a_known_confusion():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.05
    m = classification_metrics(y, p, ["a", "b", "c"], top_k=2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3) and m["per_class"]["b"]["recall"] == 1.0
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["macro_f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    assert m["top2_accuracy"] >= m["accuracy"]


def test_window_aggregation_mean_vote_max():
    p = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.9, 0.1]])
    idx = [0, 0, 0, 1]
    assert aggregate(p, idx, 2, "mean")[0].argmax() == 1  # mean 0.4 vs 0.6
    assert aggregate(p, idx, 2, "vote")[0].argmax() == 0  # two windows of three vote class 0
    assert aggregate(p, idx, 2, "max")[0].argmax() == 1
    with pytest.raises(ConfigError):
        aggregate(p, idx, 2, "median")


def test_mean_std_over_runs():
    s = mean_std([{"accuracy": 0.5}, {"accuracy": 0.7}])
    assert s["accuracy"]["mean"] == pytest.approx(0.6) and s["accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
