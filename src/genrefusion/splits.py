"""Splits are data: track-to-part assignments that are made, saved, loaded and leak-checked.

Makers: :func:`stratified_split` (any named fractions, e.g. 70/15/15 or the 40/40/20
"branches / fusion / test" protocol, artist-grouped where artists are known),
:func:`kfold_splits` (stratified group k-fold) and :func:`published_split`. Every maker returns a
:class:`Split` that has passed :func:`check_split`; :meth:`Split.load` checks again, so a leaky
split never reaches training.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from genrefusion.datasets.base import Dataset, normalize_artist
from genrefusion.errors import DatasetError, SplitLeakError

TRAIN_VALID_TEST = {"train": 0.7, "valid": 0.15, "test": 0.15}
TWO_STAGE = {"branches": 0.4, "fusion": 0.4, "test": 0.2}
CSV_COLUMNS = ("track_id", "part", "genre", "artist")


@dataclass(frozen=True)
class Split:
    """``assignment`` maps each track id in the split to its part (``"train"``, ``"test"``, ...)."""

    name: str
    assignment: Mapping[str, str]
    # a split known to let artists cross its parts (a leaky protocol kept for comparison, ``split.leaky``):
    # the checker then checks files and windows, not artists
    leaky: bool = False

    @property
    def parts(self) -> list[str]:
        """Part names in first-seen order."""
        return list(dict.fromkeys(self.assignment.values()))

    def ids(self, part: str) -> list[str]:
        if part not in self.parts:
            raise DatasetError(f"split {self.name!r} has no part {part!r}; parts: {self.parts}")
        return [t for t, p in self.assignment.items() if p == part]

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.assignment.values()))

    def save(self, path: str | Path, dataset: Dataset) -> Path:
        """Write ``track_id,part,genre,artist`` rows (atomically) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for tid, part in self.assignment.items():
                t = dataset[tid]
                w.writerow([tid, part, t.genre, t.artist or ""])
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, dataset: Dataset, *, name: str | None = None, leaky: bool = False) -> "Split":
        """Read a saved split; refuse it if a track is listed twice, unknown, or it leaks (``leaky``: artists
        may cross)."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except OSError as err:
            raise DatasetError(f"cannot read split file ({err.strerror})", path=path) from None
        if rows and not {"track_id", "part"} <= rows[0].keys():
            raise DatasetError("a split file needs columns track_id and part", path=path)
        assignment: dict[str, str] = {}
        for line, row in enumerate(rows, start=2):
            tid, part = row["track_id"], row["part"]
            if tid in assignment and assignment[tid] != part:
                raise SplitLeakError(f"track {tid!r} is in both {assignment[tid]!r} and {part!r} (line {line})", path=path)
            assignment[tid] = part
        split = cls(name or path.stem, assignment, leaky)
        check_split(split, dataset)
        return split


def check_split(split: Split, dataset: Dataset, *, windows: Iterable[tuple[str, str]] | None = None) -> None:
    """Raise SplitLeakError unless the split is clean.

    Checks: every id is a track of ``dataset``; no artist (where known, compared case- and
    space-insensitively; not for a ``leaky`` split) and no audio/image file is on two sides; and, given
    ``windows`` as ``(track_id, part)`` pairs, every window sits on its track's side.
    """
    unknown = [t for t in split.assignment if t not in dataset]
    if unknown:
        raise DatasetError(f"split {split.name!r} names {len(unknown)} tracks not in dataset {dataset.name!r}, "
                           f"e.g. {unknown[:3]}")
    sides: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tid, part in split.assignment.items():
        t = dataset[tid]
        artist = normalize_artist(t.artist) if not split.leaky else None
        if artist:
            sides[("artist", artist)].add(part)
        for kind, p in (("file", t.audio_path), ("file", t.image_path)):
            if p is not None:
                sides[(kind, str(Path(p).resolve()))].add(part)
    leaks = [(kind, key, sorted(parts)) for (kind, key), parts in sides.items() if len(parts) > 1]
    if leaks:
        kind, key, parts = leaks[0]
        raise SplitLeakError(f"split {split.name!r} leaks: {kind} {key!r} is on {' and '.join(parts)}"
                             + (f" (and {len(leaks) - 1} more)" if len(leaks) > 1 else ""))
    if windows is not None:
        bad = Counter((tid, part) for tid, part in windows if split.assignment.get(tid) != part)
        if bad:
            (tid, part), n = next(iter(bad.items()))
            raise SplitLeakError(f"split {split.name!r} leaks: {n} window(s) of track {tid!r} are in {part!r} "
                                 f"but the track is in {split.assignment.get(tid)!r}")


def _groups(dataset: Dataset, group_by_artist: bool | None) -> tuple[np.ndarray, bool]:
    artists = [normalize_artist(t.artist) for t in dataset.tracks]
    use = any(artists) if group_by_artist is None else group_by_artist
    if use and not any(artists):
        raise DatasetError(f"dataset {dataset.name!r} has no artist information to group by")
    keys = [a if (use and a) else f"\0track:{t.track_id}" for a, t in zip(artists, dataset.tracks)]
    return np.unique(keys, return_inverse=True)[1], use


def _every_genre_has_two_groups(dataset: Dataset, groups: np.ndarray, labels: np.ndarray) -> None:
    """Artist-grouped folds put a genre whose tracks are all one artist's in one fold's test part, and that fold
    trains without the genre: refuse it up front, naming every such genre, with the way out."""
    single = []
    for genre in np.unique(labels):
        members = np.flatnonzero(labels == genre)
        if len(np.unique(groups[members])) < 2:
            artist = dataset.tracks[members[0]].artist  # none: the genre is one track of no known artist
            single.append(f"{str(genre)!r} ({artist}, {len(members)} tracks)" if artist else f"{str(genre)!r} (1 track)")
    if single:
        raise DatasetError(f"genre(s) of dataset {dataset.name!r} with one artist: {', '.join(single)}; artist-grouped "
                           "folds would train a fold without each. Add tracks by other artists, or accept artist "
                           "leakage in the in-collection figure with split.group_by_artist: false and split.leaky: true")


def _resolution(fractions: Mapping[str, float]) -> list[int]:
    """Fractions as counts of equal folds: {0.7, 0.15, 0.15} -> [14, 3, 3]."""
    values = [Fraction(v).limit_denominator(100) for v in fractions.values()]
    if any(v <= 0 for v in values) or sum(values) != 1:
        raise DatasetError(f"split fractions must be positive and sum to 1, got {dict(fractions)}")
    denom = int(np.lcm.reduce([v.denominator for v in values]))
    return [int(v * denom) for v in values]


def stratified_split(dataset: Dataset, *, fractions: Mapping[str, float] = TRAIN_VALID_TEST, seed: int = 0,
                     group_by_artist: bool | None = None, name: str | None = None, leaky: bool = False) -> Split:
    """A seeded split with each genre's share in every part, artist-grouped where artists are known.

    ``group_by_artist=None`` groups when any artist is known; grouped splits keep all of an
    artist's tracks on one side (stratified group folds), so proportions are approximate.
    ``leaky``: ungrouped where artists are known, on purpose (``split.leaky``); else the checker refuses it.
    """
    if not dataset.tracks:
        raise DatasetError(f"dataset {dataset.name!r} is empty")
    counts = _resolution(fractions)
    names = list(fractions)
    groups, grouped = _groups(dataset, group_by_artist)
    labels = np.array([t.genre for t in dataset.tracks])
    fold_part = np.repeat(np.arange(len(names)), counts)
    n_folds = len(fold_part)
    if grouped:
        from sklearn.model_selection import StratifiedGroupKFold

        n_groups = len(np.unique(groups))
        if n_groups < n_folds:
            raise DatasetError(f"{n_groups} artist groups cannot fill a {'/'.join(map(str, counts))} split")
        fold = np.empty(len(labels), np.int64)
        cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for i, (_, test) in enumerate(cv.split(np.zeros(len(labels)), labels, groups)):
            fold[test] = i
        part_idx = fold_part[fold]
    else:
        rng = np.random.default_rng(seed)
        part_idx = np.empty(len(labels), np.int64)
        shares = np.array(counts, float) / n_folds
        for genre in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == genre))
            quota = _largest_remainder(shares * len(members))
            part_idx[members] = np.repeat(np.arange(len(names)), quota)
    assignment = {t.track_id: names[i] for t, i in zip(dataset.tracks, part_idx)}
    empty = [n for n in names if n not in assignment.values()]
    if empty:
        raise DatasetError(f"dataset {dataset.name!r} ({len(labels)} tracks) is too small: part(s) {empty} would be empty")
    split = Split(name or "-".join(f"{n}{round(f * 100)}" for n, f in fractions.items()) + f"-seed{seed}", assignment,
                  leaky)
    check_split(split, dataset)
    return split


def _largest_remainder(quotas: np.ndarray) -> np.ndarray:
    base = np.floor(quotas).astype(np.int64)
    short = int(round(quotas.sum())) - base.sum()
    base[np.argsort(-(quotas - base), kind="stable")[:short]] += 1
    return base


def kfold_splits(dataset: Dataset, *, k: int = 5, seed: int = 0, group_by_artist: bool | None = None,
                 leaky: bool = False) -> list[Split]:
    """``k`` stratified (artist-grouped where known) folds, each a Split with parts train/test (``leaky``: as
    :func:`stratified_split`)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if k < 2:
        raise DatasetError(f"k-fold needs k >= 2, got {k}")
    groups, grouped = _groups(dataset, group_by_artist)
    labels = np.array([t.genre for t in dataset.tracks])
    if grouped:
        _every_genre_has_two_groups(dataset, groups, labels)
    ids = [t.track_id for t in dataset.tracks]
    out = []
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, test) in enumerate(cv.split(np.zeros(len(ids)), labels, groups)):
        test_set = set(test.tolist())
        split = Split(f"fold{i + 1}of{k}-seed{seed}", {tid: "test" if j in test_set else "train" for j, tid in enumerate(ids)},
                      leaky)
        check_split(split, dataset)
        out.append(split)
    return out


def inner_folds(y: np.ndarray, *, groups: np.ndarray | None = None, k: int = 5,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified ``(train_rows, test_rows)`` folds of the rows ``y`` (N,) for a model's own model
    selection, at most ``k`` and at least 2 (fewer than ``k`` where a class has fewer groups).
    ``groups`` (N,): the track (or artist) of each row; a group's rows stay in one fold, or the
    windows of one track on both sides would make every setting look good. Without groups, or with
    one row per group, the folds are scikit-learn's StratifiedKFold's."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(y)
    x = np.zeros(len(y))
    if groups is None or len(np.unique(groups)) == len(y):
        n = min(k, int(np.bincount(y)[np.unique(y)].min()))
        return list(StratifiedKFold(max(2, n), shuffle=True, random_state=seed).split(x, y))
    n = min(k, min(len(np.unique(groups[y == c])) for c in np.unique(y)))
    return list(StratifiedGroupKFold(max(2, n), shuffle=True, random_state=seed).split(x, y, groups))


def published_split(dataset: Dataset, name: str, *, leaky: bool = False) -> Split:
    """A split that came with the dataset (e.g. GTZAN's ``fault_filtered``), leak-checked (``leaky``: but for
    artists, who may cross a split known to leak, kept for comparison)."""
    if name not in dataset.published_splits:
        known = ", ".join(dataset.published_splits) or "none"
        raise DatasetError(f"dataset {dataset.name!r} has no published split {name!r}; it has: {known}")
    split = Split(name, dict(dataset.published_splits[name]), leaky)
    check_split(split, dataset)
    return split
