"""Split makers keep proportions and groups; the leak checker refuses every kind of leak."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from genrefusion.datasets.base import Dataset, Track
from genrefusion.errors import DatasetError, SplitLeakError
from genrefusion.splits import TWO_STAGE, Split, check_split, inner_folds, kfold_splits, published_split, stratified_split


def make_dataset(n_per_genre=20, genres=("a", "b", "c"), artists_per_genre=None) -> Dataset:
    tracks = []
    for g in genres:
        for i in range(n_per_genre):
            artist = f"{g}-artist{i % artists_per_genre}" if artists_per_genre else None
            tracks.append(Track(f"{g}{i:03d}", g, artist=artist, audio_path=Path(f"/data/{g}/{i}.wav")))
    return Dataset("toy", "manifest", Path("/data"), tuple(tracks))


def test_stratified_split_exact_per_genre_shares_and_seeded():
    ds = make_dataset(20)
    split = stratified_split(ds, seed=3)
    per = Counter((ds[t].genre, p) for t, p in split.assignment.items())
    assert all(per[(g, "train")] == 14 and per[(g, "valid")] == 3 and per[(g, "test")] == 3 for g in "abc")
    assert split.assignment == stratified_split(ds, seed=3).assignment
    assert split.assignment != stratified_split(ds, seed=4).assignment


def test_two_stage_protocol_parts():
    split = stratified_split(make_dataset(20), fractions=TWO_STAGE, seed=0)
    assert split.counts() == {"branches": 24, "fusion": 24, "test": 12}


def test_artist_grouped_split_never_splits_an_artist():
    ds = make_dataset(40, artists_per_genre=8)
    split = stratified_split(ds, seed=0)
    sides = {}
    for tid, part in split.assignment.items():
        sides.setdefault(ds[tid].artist, set()).add(part)
    assert all(len(s) == 1 for s in sides.values())
    assert 0.55 < split.counts()["train"] / len(ds) < 0.85


def test_kfold_each_track_tested_once_and_artists_grouped():
    ds = make_dataset(30, artists_per_genre=6)
    folds = kfold_splits(ds, k=5, seed=1)
    tested = Counter(t for f in folds for t in f.ids("test"))
    assert set(tested.values()) == {1} and len(tested) == len(ds)
    for f in folds:
        train_artists = {ds[t].artist for t in f.ids("train")}
        assert not train_artists & {ds[t].artist for t in f.ids("test")}


def test_kfold_refuses_a_genre_of_one_artist_up_front_and_accepts_it_leaky():
    """Grouped, a genre whose tracks are one artist's lands in one fold's test part, and that fold would train
    without it (GTZAN's clips: reggae is Bob Marley's): a clear error with the way out, not a failed fold."""
    tracks = [*make_dataset(10, artists_per_genre=5).tracks,
              *(Track(f"r{i:03d}", "reggae", artist="Bob Marley", audio_path=Path(f"/data/r/{i}.wav")) for i in range(10))]
    ds = Dataset("toy", "manifest", Path("/data"), tuple(tracks))
    with pytest.raises(DatasetError, match="genre\\(s\\) of dataset 'toy' with one artist: 'reggae' \\(Bob Marley, 10 "
                                           "tracks\\);.*split.group_by_artist: false and split.leaky: true"):
        kfold_splits(ds, k=5)
    with pytest.raises(SplitLeakError, match="leaks: artist"):  # ungrouped, the checker still refuses a silent leak
        kfold_splits(ds, k=5, group_by_artist=False)
    folds = kfold_splits(ds, k=5, group_by_artist=False, leaky=True)
    assert all("reggae" in {ds[t].genre for t in f.ids("train")} for f in folds)


def test_save_load_round_trip(tmp_path):
    ds = make_dataset(10)
    split = stratified_split(ds, seed=0)
    path = split.save(tmp_path / "run" / "split.csv", ds)
    assert Split.load(path, ds).assignment == split.assignment
    assert path.read_text().splitlines()[0] == "track_id,part,genre,artist"


def test_artist_leak_is_refused():
    ds = make_dataset(4, artists_per_genre=1)
    with pytest.raises(SplitLeakError, match="artist 'a-artist0' is on"):
        check_split(Split("bad", {"a000": "train", "a001": "test"}), ds)


def test_track_listed_on_two_sides_in_a_file_is_refused(tmp_path):
    ds = make_dataset(4)
    path = tmp_path / "split.csv"
    path.write_text("track_id,part\na000,train\na001,test\na000,test\n")
    with pytest.raises(SplitLeakError, match="'a000' is in both 'train' and 'test'"):
        Split.load(path, ds)


def test_same_file_under_two_ids_is_refused():
    t = Track("x1", "a", audio_path=Path("/data/same.wav"))
    ds = Dataset("dup", "manifest", Path("/data"), (t, Track("x2", "a", audio_path=Path("/data/same.wav"))))
    with pytest.raises(SplitLeakError, match="file"):
        check_split(Split("s", {"x1": "train", "x2": "test"}), ds)


def test_window_on_the_wrong_side_is_refused():
    ds = make_dataset(4)
    split = Split("s", {"a000": "train", "a001": "test"})
    check_split(split, ds, windows=[("a000", "train"), ("a000", "train"), ("a001", "test")])
    with pytest.raises(SplitLeakError, match="window"):
        check_split(split, ds, windows=[("a000", "train"), ("a000", "test")])


def test_unknown_ids_bad_fractions_and_tiny_datasets():
    ds = make_dataset(2)
    with pytest.raises(DatasetError, match="not in dataset"):
        check_split(Split("s", {"zzz": "train"}), ds)
    with pytest.raises(DatasetError, match="sum to 1"):
        stratified_split(ds, fractions={"train": 0.5, "test": 0.2})
    with pytest.raises(DatasetError, match="too small"):
        stratified_split(make_dataset(1, genres=("a",)), seed=0)


def test_published_split():
    ds = make_dataset(2)
    ds.published_splits["paper"] = {"a000": "train", "a001": "test"}
    assert published_split(ds, "paper").counts() == {"train": 1, "test": 1}
    with pytest.raises(DatasetError, match="no published split 'x'"):
        published_split(ds, "x")


def test_inner_folds_keep_a_tracks_windows_together_and_are_stratified():
    from sklearn.model_selection import StratifiedKFold

    y = np.repeat(np.arange(3), 24)  # 3 classes x 6 tracks x 4 windows
    tracks = np.repeat(np.arange(18), 4)
    folds = inner_folds(y, groups=tracks, seed=1)
    assert len(folds) == 5
    assert all(not set(tracks[a]) & set(tracks[b]) for a, b in folds)
    assert sorted(np.concatenate([b for _, b in folds]).tolist()) == list(range(len(y)))  # each row tested once
    assert all(set(y[b]) == {0, 1, 2} for _, b in folds)  # every class in every fold
    assert len(inner_folds(y, groups=np.where(y == 0, tracks % 3, tracks))) == 3  # a class of three tracks
    plain = [b.tolist() for _, b in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(72), y)]
    assert [b.tolist() for _, b in inner_folds(y)] == plain  # one row per track: the same folds as before
    assert [b.tolist() for _, b in inner_folds(y, groups=np.arange(72))] == plain
