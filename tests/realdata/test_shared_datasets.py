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
    assert published_split(ds, "stratified", leaky=True).counts() == {"train": 500, "valid": 250, "test": 250}
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


def test_gtzan_artists_come_from_sturms_index_and_no_artist_crosses_a_split_or_an_inner_fold():
    import numpy as np

    from genrefusion.errors import DatasetError, SplitLeakError
    from genrefusion.splits import inner_folds, kfold_splits
    from genrefusion.track_data import TrackData

    ds = open_dataset(SHARED / "gtzan")
    assert sum(t.artist is not None for t in ds.tracks) == 919 and len({t.artist for t in ds.tracks if t.artist}) == 244
    assert ds["blues.00000"].artist == "John Lee Hooker"
    with pytest.raises(SplitLeakError, match="artist"):  # the published random split lets 101 artists cross
        published_split(ds, "stratified")
    ff = published_split(ds, "fault_filtered")  # checked: no artist on two of its parts

    def artists_cross(ids_a, ids_b) -> set:
        return {ds[t].artist for t in ids_a if ds[t].artist} & {ds[t].artist for t in ids_b if ds[t].artist}

    for fold in kfold_splits(ds.subset(ff.ids("train")), k=5, seed=0):  # random splits group by artist now
        assert not artists_cross(fold.ids("train"), fold.ids("test"))
    clips = open_dataset(SHARED / "gtzan" / "audio")  # the 100 clips: reggae's ten are Bob Marley's
    assert {clips[f"reggae.0000{i}"].artist for i in range(10)} == {"Bob Marley"}
    with pytest.raises(DatasetError, match="one artist: 'blues' \\(John Lee Hooker, 10 tracks\\).*'reggae' \\(Bob Marley"):
        kfold_splits(clips, k=5)
    # inner folds (grid search, stacking, cross-fitting) of the training tracks: by artist, blocks of 25 ids where
    # the index names none
    ids = ff.ids("train") + ff.ids("valid")
    labels = ds.genres
    data = TrackData(ids, np.array([labels.index(ds[t].genre) for t in ids]), labels, {}, [ds[t].fold_key for t in ids])
    for fit_rows, held_rows in inner_folds(data.y, groups=data.groups(), k=5, seed=0):
        assert not artists_cross([ids[i] for i in fit_rows], [ids[i] for i in held_rows])
        unknown = lambda rows: {ds[ids[i]].fold_group for i in rows if not ds[ids[i]].artist}  # noqa: E731
        assert not unknown(fit_rows) & unknown(held_rows)


def test_every_kfold_run_of_the_recipes_and_suites_can_train_every_genre_in_every_fold():
    """Artist grouping must not leave a genre out of a fold's training (GTZAN's clips: reggae is one artist): every
    shipped recipe and suite entry with k folds on the shared data makes its folds, each training on every genre."""
    from pathlib import Path

    from genrefusion.benchmarks.suites import SUITES, Entry, _recipe, entry_config
    from genrefusion.config import config_from_dict
    from genrefusion.recipes import list_recipes
    from genrefusion.splits import kfold_splits
    from genrefusion.training.prepare import open_run_dataset

    entries = {f"recipe {r.name}": Entry("recipe", r.name, _recipe(r.name)) for r in list_recipes()}
    entries.update({f"{suite.name}/{e.id}": e for suite in SUITES.values() for e in suite.entries})
    configs = {where: config_from_dict(entry_config(e, data_root=str(SHARED), quick=False, seeds=1))
               for where, e in entries.items()}
    checked = set()
    for where, cfg in configs.items():
        key = (cfg.data.path, tuple(c.path for c in cfg.data.collections), cfg.split.group_by_artist, cfg.split.leaky,
               cfg.protocol.folds, tuple(cfg.data.exclude))
        if cfg.protocol.name != "kfold" or not Path(cfg.data.path).exists() or key in checked:
            continue
        checked.add(key)
        ds = open_run_dataset(cfg)
        for fold in kfold_splits(ds, k=cfg.protocol.folds, seed=cfg.split.seed, group_by_artist=cfg.split.group_by_artist,
                                 leaky=cfg.split.leaky):
            assert {ds[t].genre for t in fold.ids("train")} == set(ds.genres), where
    assert any(key[0].endswith("gtzan/audio") and not key[2] for key in checked)  # the shipped recipes' data
