"""The tag -> genre table: which tags of the pretrained taggers name or imply which genre
(``tag_genres.json``, versioned), and the genre scores it gives without any training.

A tagger's tags come in a vocabulary (``msd``: the Million Song Dataset's last.fm tags; ``mtt``:
MagnaTagATune's); each musicnn model reads out one of them. For a label set, the table becomes one
weight matrix per source model, ``(n_labels, 50)``; labels the table does not know, and genres no
tag names (reggae), get no evidence.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from genrefusion.errors import ModelError
from genrefusion.pretrained import musicnn_spec as spec

TABLE_FILE = Path(__file__).with_name("tag_genres.json")
VOCABULARIES = {"msd": spec.MSD_LABELS, "mtt": spec.MTT_LABELS}
#: tag probabilities are clipped to [EPS, 1 - EPS] before their log-odds are taken
EPS = 1e-4
#: the log-odds a genre gets when no tag speaks for it: a probability of 2 %
NO_EVIDENCE = float(np.log(0.02 / 0.98))


@cache
def _table() -> dict:
    return json.loads(TABLE_FILE.read_text(encoding="utf-8"))


def table_version() -> int:
    return int(_table()["version"])


def vocabulary(model: str) -> str:
    """``msd`` or ``mtt``: the tag vocabulary musicnn ``model`` reads out."""
    if model not in spec.MODELS:
        raise ModelError(f"unknown tagger {model!r}; known: {', '.join(spec.MODELS)}")
    return "msd" if spec.MODELS[model][2] is spec.MSD_LABELS else "mtt"


def table_weights(labels: list[str], sources: list[str], *, version: int) -> np.ndarray:
    """``(n_labels, 50 * len(sources))``: each label's weight on each tag of the sources' tag vectors, in
    order (labels normalised as datasets normalise genres; unknown labels get a row of zeros)."""
    from genrefusion.datasets.base import normalize_genre

    if version != table_version():
        raise ModelError(f"tag table version {version} is not available (this genrefusion has version "
                         f"{table_version()})")
    genres = _table()["genres"]
    blocks = []
    for model in sources:
        vocab = vocabulary(model)
        names = VOCABULARIES[vocab]
        w = np.zeros((len(labels), len(names)))
        for i, label in enumerate(labels):
            for tag, weight in genres.get(normalize_genre(label), {}).get(vocab, {}).items():
                w[i, names.index(tag)] = weight
        blocks.append(w)
    return np.concatenate(blocks, axis=1)


def tag_log_odds(proba: np.ndarray) -> np.ndarray:
    """Log-odds of tag probabilities ``(N, T)``, clipped to [EPS, 1 - EPS] first."""
    p = np.clip(np.asarray(proba, np.float64), EPS, 1.0 - EPS)
    return np.log(p / (1.0 - p))


def zero_shot_logits(proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Genre scores ``(N, C)`` straight from tag probabilities ``(N, T)``: each genre's score is the strongest
    of its tags, ``max_t (log-odds_t + log w_gt)`` (a weight-1 tag's own log-odds), so a genre named by many
    tags (rock) gains nothing from their number; a genre with no tag gets :data:`NO_EVIDENCE`."""
    lo = tag_log_odds(proba)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)  # -inf where the tag says nothing of the genre
    z = (lo[:, None, :] + logw[None]).max(axis=2)
    return np.where(np.isfinite(z), z, NO_EVIDENCE)
