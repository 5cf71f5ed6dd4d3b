"""The tag -> genre table and the tag prior built on it: zero-shot readings, a learned mapping that starts at
the table and stays near it, and its array form."""

from __future__ import annotations

import numpy as np
import pytest

from genrefusion.errors import ModelError
from genrefusion.models import build_branch
from genrefusion.pretrained import tag_genres
from genrefusion.pretrained.musicnn_spec import MSD_LABELS, MTT_LABELS

LABELS = ["blues", "classical", "electronic", "hip-hop", "reggae", "rock"]
SOURCES = ["msd-musicnn", "mtt-musicnn"]


def tags(**on: float) -> np.ndarray:
    """A (100,) MSD + MTT tag vector: every tag at 2 %, the named ones (``msd_rock=0.9``) as given."""
    x = np.full(100, 0.02)
    for key, p in on.items():
        vocab, tag = key.split("_", 1)
        names = MSD_LABELS if vocab == "msd" else MTT_LABELS
        name = next(n for n in (tag.replace("_", " "), tag.replace("_", "-")) if n in names)  # "classic rock", "Hip-Hop"
        x[names.index(name) + (50 if vocab == "mtt" else 0)] = p
    return x


def test_every_table_tag_is_in_its_vocabulary_and_every_weight_in_range():
    table = tag_genres._table()
    assert table["version"] == tag_genres.table_version() == 1
    for genre, vocabs in table["genres"].items():
        for vocab, weights in vocabs.items():
            assert set(weights) <= set(tag_genres.VOCABULARIES[vocab]), (genre, vocab)
            assert all(0 < w <= 1 for w in weights.values())


def test_table_weights_follow_labels_and_sources_and_refuse_other_versions():
    w = tag_genres.table_weights(["Hip Hop", "rock", "axé"], SOURCES, version=1)  # labels normalised like datasets'
    assert w.shape == (3, 100)
    assert w[0, MSD_LABELS.index("Hip-Hop")] == 1.0 and w[1, 50 + MTT_LABELS.index("rock")] == 1.0
    assert not w[2].any()  # a genre the table does not know
    assert tag_genres.table_weights(["rock"], ["mtt-musicnn"], version=1).shape == (1, 50)
    with pytest.raises(ModelError, match="version 2"):
        tag_genres.table_weights(["rock"], SOURCES, version=2)


def test_zero_shot_reads_a_genre_off_its_strongest_tag_and_a_nameless_genre_gets_no_evidence():
    w = tag_genres.table_weights(LABELS, SOURCES, version=1)
    x = np.stack([tags(msd_blues=0.8), tags(mtt_classical=0.9, mtt_violin=0.9), tags(msd_House=0.7, mtt_techno=0.6),
                  tags(msd_Hip_Hop=0.85), tags(msd_rock=0.6, msd_classic_rock=0.7)])
    z = tag_genres.zero_shot_logits(x, w)
    assert [LABELS[i] for i in z.argmax(1)] == ["blues", "classical", "electronic", "hip-hop", "rock"]
    assert np.allclose(z[:, LABELS.index("reggae")], tag_genres.NO_EVIDENCE)
    # many rock tags at 2 % are no more rock than one: the strongest tag counts, not their number
    np.testing.assert_allclose(z[0, LABELS.index("rock")], np.log(0.02 / 0.98), atol=1e-9)


def _data(rng, n=30):
    """Tracks whose tags point the table's way, except reggae (no tag of its own) whose tracks carry 'chill'."""
    rows, y = [], []
    for c, genre in enumerate(LABELS):
        for _ in range(n):
            on = {"blues": {"msd_blues": 0.6}, "classical": {"mtt_classical": 0.7}, "electronic": {"msd_electronic": 0.6},
                  "hip-hop": {"msd_Hip_Hop": 0.6}, "reggae": {"msd_chill": 0.6}, "rock": {"msd_rock": 0.6}}[genre]
            x = tags(**on) * np.exp(rng.normal(0, 0.3, 100))
            rows.append(np.clip(x, 1e-3, 0.99))
            y.append(c)
    return np.array(rows), np.array(y)


def _prior(**args):
    return build_branch("tag_prior", n_classes=len(LABELS), in_shape=(100,), labels=LABELS, sources=SOURCES, **args)


def test_zero_shot_learns_nothing_and_needs_no_examples():
    x, y = _data(np.random.default_rng(0))
    zero = _prior().fit(x[:5], y[:5])  # classes missing: nothing is learned, so nothing is refused
    np.testing.assert_allclose(zero.predict_proba(x), _prior().predict_proba(x))
    assert (zero.predict_proba(x).argmax(1)[y != LABELS.index("reggae")] == y[y != LABELS.index("reggae")]).mean() > 0.9


def test_a_learned_mapping_starts_at_the_table_and_a_strong_penalty_keeps_it_there():
    rng = np.random.default_rng(1)
    x, y = _data(rng)
    test_x, test_y = _data(rng, 10)
    zero = _prior()
    tight = _prior(learn=True, strength=1e4).fit(x, y)
    loose = _prior(learn=True, strength=1e-3).fit(x, y)
    reggae = test_y == LABELS.index("reggae")
    assert np.abs(tight.predict_proba(test_x) - zero.predict_proba(test_x)).max() < 0.02  # held at the table
    assert (zero.predict_proba(test_x).argmax(1)[reggae] == test_y[reggae]).mean() == 0  # the table cannot name it
    assert (loose.predict_proba(test_x).argmax(1) == test_y).mean() > 0.95  # the tracks teach it reggae
    chosen = _prior(learn=True, strength="cv").fit(x, y, groups=np.arange(len(y)) // 3)
    assert chosen.chosen_strength in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    assert (chosen.predict_proba(test_x).argmax(1) == test_y).mean() > 0.9


def test_the_tag_prior_refuses_what_it_cannot_read():
    with pytest.raises(ModelError, match="label names"):
        build_branch("tag_prior", n_classes=3, in_shape=(100,), labels=["rock"], sources=SOURCES)
    with pytest.raises(ModelError, match="has 100 tag probabilities"):
        build_branch("tag_prior", n_classes=1 + 1, in_shape=(50,), labels=["rock", "pop"], sources=SOURCES)
    with pytest.raises(ModelError, match="strength"):
        _prior(learn=True, strength=-1.0)
    with pytest.raises(ModelError, match="unknown tagger"):
        build_branch("tag_prior", n_classes=2, in_shape=(50,), labels=["rock", "pop"], sources=["vggish"])
