"""The shared datasets index as documented, and extraction runs on real audio."""

from __future__ import annotations

import pytest

from genrefusion.datasets import open_dataset
from genrefusion.features.extract import ExtractConfig, extract
from genrefusion.features.store import FeatureStore
from genrefusion.splits import published_split, stratified_split
from tests.conftest import SHARED, needs_shared

pytestmark = [needs_shared, pytest.mark.realdata]


def test_gtzan_fault_filtered_split_is_clean_and_sized_as_published():
    ds = open_dataset(SHARED / "gtzan")
    assert len(ds) == 1000 and ds.summary().modalities == {"audio": 100, "image": 999, "table": 1000}
    assert published_split(ds, "fault_filtered").counts() == {"train": 443, "valid": 197, "test": 290}
    assert published_split(ds, "stratified").counts() == {"train": 500, "valid": 250, "test": 250}
    assert "jazz.00054" in ds and ds["jazz.00054"].image_path is None  # corrupt in GTZAN, no image


def test_emotify_and_lyrics_index():
    emotify = open_dataset(SHARED / "emotify")
    assert len(emotify) == 400 and emotify.genres == ["classical", "electronic", "pop", "rock"]
    assert all(t.extra["n_annotations"] > 0 for t in emotify)
    br = open_dataset(SHARED / "lyrics" / "brazilian_lyrics.csv")
    assert len(br.genres) == 7 and len(br) >= 6200
    folds = stratified_split(br, seed=0)
    artists = {}
    for tid, part in folds.assignment.items():
        artists.setdefault(br[tid].artist, set()).add(part)
    assert all(len(p) == 1 for p in artists.values())
    mendeley = open_dataset(SHARED / "lyrics" / "mendeley_music_1950_2019_sample.csv")
    assert len(mendeley) == 1000 and "hip-hop" in mendeley.genres


def test_extract_real_emotify_clips(tmp_path):
    ds = open_dataset(SHARED / "emotify")
    small = ds.subset([t.track_id for t in ds if t.track_id.endswith((".001", ".002"))])
    store = FeatureStore(tmp_path / "s")
    try:
        report = extract(small, store, ExtractConfig(features=["log_mel", "mfcc", "mel_image"], workers=2),
                         run_dir=tmp_path / "run")
        assert (report.n_computed, report.n_failed) == (8, 0)
        mel = store.feature(report.features["log_mel"]).read(["rock.001"])[0]
        assert mel.shape[0] == 128 and mel.shape[1] > 1200  # ~30 s at hop 512
    finally:
        store.close()
