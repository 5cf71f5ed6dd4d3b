"""Lyrics through the whole pipeline: text in the store, TF-IDF and MiniLM branches, artist-grouped folds."""

from __future__ import annotations

import csv

import numpy as np

from genrefusion.config import config_from_dict
from genrefusion.features import get_feature
from genrefusion.training.run import train_run

WORDS = {"samba": "batuque pandeiro roda", "gospel": "senhor glória louvor", "forro": "sanfona xote arrasta"}
FILLER = "amor noite coração saudade festa mar luz estrada".split()


def _lyrics_csv(path):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["genre", "artist", "title", "lyrics"])
        for genre, words in WORDS.items():
            for a in range(10):  # ten artists per genre, two songs each
                for s in range(2):
                    text = " ".join([*rng.choice(FILLER, 20), *rng.choice(words.split(), 3)])
                    w.writerow([genre, f"{genre}-artist-{a}", f"song {s}", text])
    return path


def test_tfidf_and_minilm_fused_on_artist_grouped_folds(tmp_path):
    data = _lyrics_csv(tmp_path / "lyrics.csv")
    cfg = config_from_dict({
        "name": "lyrics", "data": {"path": str(data), "store": str(tmp_path / "store"), "workers": 0},
        "inputs": {"text": {"feature": "lyrics_text"}, "minilm": {"feature": "minilm_embedding"}},
        "branches": {"tfidf": {"model": "tfidf", "inputs": ["text"], "args": {"min_df": 1}},
                     "minilm": {"model": "logreg", "inputs": ["minilm"]}},
        "fusion": {"strategy": "weighted_mean", "mode": "frozen"},
        "protocol": {"name": "kfold", "folds": 3}})
    m = train_run(cfg, tmp_path / "run", log=lambda m: None).metrics
    assert len(m["evaluations"]) == 3
    assert m["summary"]["branches"]["tfidf"]["accuracy"]["mean"] > 0.8  # the genre words are in the text
    for i in (1, 2, 3):
        with open(tmp_path / "run" / f"fold{i}" / "split.csv") as f:
            rows = list(csv.DictReader(f))
        sides = {}
        for r in rows:
            sides.setdefault(r["artist"], set()).add(r["part"] == "test")
        assert all(len(s) == 1 for s in sides.values()), "an artist is on both sides of a fold"


def test_minilm_chunks_pad_and_embeddings_are_normalised():
    e = get_feature("minilm_embedding").fn("eu te amo " * 100, chunk_words=64)
    assert e.shape == (384,) and 0.5 < np.linalg.norm(e) <= 1.0 + 1e-5
    c = get_feature("minilm_chunks").fn("um dois três quatro cinco", chunk_words=2, max_chunks=4)
    assert c.shape == (4, 384) and (np.abs(c).sum(1) > 0).tolist() == [True, True, True, False]
    assert bytes(get_feature("lyrics_text").fn("coração")).decode("utf-8") == "coração"
