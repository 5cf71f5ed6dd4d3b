"""One contract for every registered dataset kind: detected, indexed into valid Tracks, summarised."""

from __future__ import annotations

import pytest

from genrefusion.datasets import DATASETS, Track, detect_kind, normalize_genre, open_dataset
from tests.datasets.builders import BUILDERS


def test_every_registered_kind_has_a_builder():
    assert set(DATASETS) == set(BUILDERS)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_dataset_contract(kind, tmp_path):
    path = BUILDERS[kind](tmp_path / kind)
    assert detect_kind(path) == kind
    ds = open_dataset(path)
    assert ds.kind == kind and len(ds) > 0
    ids = [t.track_id for t in ds]
    assert len(ids) == len(set(ids))
    for t in ds:
        assert isinstance(t, Track) and t.track_id and t.modalities
        assert t.genre == normalize_genre(t.genre)
        for p in (t.audio_path, t.image_path):
            assert p is None or p.is_file()
        assert ds[t.track_id] is t
    summary = ds.summary()
    assert sum(summary.per_genre.values()) == len(ds)
    assert summary.to_dict()["n_tracks"] == len(ds)
    for name, parts in ds.published_splits.items():
        assert set(parts) <= set(ids), name
