"""The Track/Dataset contract every dataset module honours, and label normalisation.

A dataset is an *index*: a tuple of :class:`Track` records plus whatever published splits came
with it and the problems found while indexing. Nothing is decoded when a dataset is opened.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Literal, Mapping

import numpy as np

from genrefusion.errors import DatasetError

#: Spellings of one genre that different datasets use, mapped to one canonical label.
GENRE_ALIASES = MappingProxyType(
    {
        "hiphop": "hip-hop",
        "hip-hop": "hip-hop",
        "rap": "hip-hop",
        "r-b": "rnb",
        "r&b": "rnb",
        "rhythm-and-blues": "rnb",
        "electronica": "electronic",
        "old-time-historic": "old-time-historic",
    }
)


def normalize_genre(label: str) -> str:
    """Canonical genre label: NFKC, lower case, words joined by '-', known aliases merged.

    >>> normalize_genre("Hip Hop"), normalize_genre("hiphop"), normalize_genre(" Bossa_Nova ")
    ('hip-hop', 'hip-hop', 'bossa-nova')
    """
    text = unicodedata.normalize("NFKC", str(label)).strip().lower()
    text = re.sub(r"[\s_/]+", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    if not text:
        raise DatasetError(f"empty genre label {label!r}")
    return GENRE_ALIASES.get(text, text)


def normalize_artist(artist: str | None) -> str | None:
    """An artist as compared across split parts (case, Unicode form and spacing ignored); None if blank."""
    if not artist or not artist.strip():
        return None
    return " ".join(unicodedata.normalize("NFKC", artist).casefold().split())


@dataclass(frozen=True)
class FoldKey:
    """What keeps tracks together in inner folds: the same ``artist`` (known), or the same ``group`` (tracks that
    likely share an unknown artist, e.g. a run of GTZAN ids); ``name`` as compared (artists normalised)."""

    kind: Literal["artist", "group"]
    name: str


@dataclass(frozen=True)
class Track:
    """One labelled item of a dataset; each modality it has is a field that is not None."""

    track_id: str
    genre: str
    audio_path: Path | None = None
    artist: str | None = None
    lyrics: str | None = None
    image_path: Path | None = None
    # the track's row of a feature table (the table modality), ``(n_columns,)`` float32, named by its dataset's
    # ``feature_columns``
    table: np.ndarray | None = field(default=None, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything else a loader knows (titles, annotations)
    # where the artist is unknown, tracks that likely share one (GTZAN: a run of consecutive ids): inner folds
    # (cross-fitting, grid search) keep a group together. Not a leak check: splits go by ``artist`` only.
    fold_group: str | None = None

    @property
    def fold_key(self) -> FoldKey | None:
        """What keeps this track's inner-fold group together: its artist, else its ``fold_group``, else nothing."""
        artist = normalize_artist(self.artist)
        if artist:
            return FoldKey("artist", artist)
        return FoldKey("group", self.fold_group) if self.fold_group else None

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the inputs this track has: a subset of audio, image, lyrics, table."""
        have = [("audio", self.audio_path), ("image", self.image_path), ("lyrics", self.lyrics),
                ("table", self.table)]
        return tuple(name for name, value in have if value is not None)


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file or row, found while indexing or validating."""

    reason: str
    path: str | None = None
    track_id: str | None = None

    def __str__(self) -> str:
        where = self.path or self.track_id or "?"
        return f"{where}: {self.reason}"


@dataclass
class Dataset:
    """An index over tracks.

    ``published_splits`` maps a split's name (``"fault_filtered"``) to ``{track_id: part}``;
    ``problems`` lists what indexing skipped or found suspicious (duplicate ids, unknown genre
    folders, rows with missing values, files that do not exist). Every track in ``tracks`` has
    at least one usable input; what was dropped is in ``problems``.
    """

    name: str
    kind: str
    root: Path
    tracks: tuple[Track, ...]
    published_splits: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    feature_columns: tuple[str, ...] = ()  # names of the entries of ``track.table``

    def __post_init__(self):
        self.tracks = tuple(self.tracks)
        self._by_id = {t.track_id: t for t in self.tracks}
        if len(self._by_id) != len(self.tracks):
            dup = [tid for tid, n in Counter(t.track_id for t in self.tracks).items() if n > 1]
            raise DatasetError(f"duplicate track ids in index: {dup[:5]}", path=self.root)

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def __getitem__(self, track_id: str) -> Track:
        try:
            return self._by_id[track_id]
        except KeyError:
            raise DatasetError(f"no track {track_id!r} in dataset {self.name}", path=self.root) from None

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._by_id

    @property
    def genres(self) -> list[str]:
        """Sorted label set."""
        return sorted({t.genre for t in self.tracks})

    def subset(self, track_ids: Iterable[str], *, name: str | None = None) -> "Dataset":
        """The tracks with these ids, in index order; problems are kept, splits restricted."""
        keep = set(track_ids)
        missing = keep - self._by_id.keys()
        if missing:
            raise DatasetError(f"{len(missing)} ids not in dataset, e.g. {sorted(missing)[:3]}", path=self.root)
        splits = {k: {t: p for t, p in v.items() if t in keep} for k, v in self.published_splits.items()}
        return replace(self, name=name or self.name, tracks=tuple(t for t in self.tracks if t.track_id in keep),
                       published_splits=splits)

    def summary(self) -> "DatasetSummary":
        """Counts per genre, per genre and published split, per modality; missing files."""
        per_genre = Counter(t.genre for t in self.tracks)
        per_split = {
            name: dict(Counter((part, self._by_id[t].genre) for t, part in parts.items() if t in self._by_id))
            for name, parts in self.published_splits.items()
        }
        modalities = Counter(m for t in self.tracks for m in t.modalities)
        artists = {t.artist for t in self.tracks if t.artist}
        return DatasetSummary(
            name=self.name, kind=self.kind, root=str(self.root), n_tracks=len(self.tracks),
            per_genre=dict(sorted(per_genre.items())), per_split=per_split,
            modalities=dict(modalities), n_artists=len(artists), problems=list(self.problems),
        )


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    kind: str
    root: str
    n_tracks: int
    per_genre: dict[str, int]
    per_split: dict[str, dict[tuple[str, str], int]]
    modalities: dict[str, int]
    n_artists: int
    problems: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (split counts as ``{split: {part: {genre: n}}}``)."""
        splits: dict[str, dict[str, dict[str, int]]] = {}
        order = {"train": 0, "valid": 1, "test": 2}
        for name, counts in self.per_split.items():
            for (part, genre), n in sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 3), kv[0])):
                splits.setdefault(name, {}).setdefault(part, {})[genre] = n
        return {
            "name": self.name, "kind": self.kind, "root": self.root, "n_tracks": self.n_tracks,
            "per_genre": self.per_genre, "splits": splits, "modalities": self.modalities,
            "n_artists": self.n_artists, "problems": [str(p) for p in self.problems],
        }


def unique_tracks(tracks: Iterable[Track], problems: list[Problem]) -> list[Track]:
    """Keep the first track of each id; report the others as duplicates."""
    seen: dict[str, Track] = {}
    for t in tracks:
        if t.track_id in seen:
            first = seen[t.track_id]
            where = t.audio_path or t.image_path
            problems.append(Problem(
                f"duplicate track id {t.track_id!r} (kept {first.audio_path or first.image_path or 'the first row'})",
                path=str(where) if where else None, track_id=t.track_id))
            continue
        seen[t.track_id] = t
    return list(seen.values())
