"""Lyrics datasets (text only, no audio): the Brazilian lyrics CSV and the Mendeley 1950-2019 sample.

``lyrics-br``: ``genre,artist,title,lyrics``; ids are ``<artist>/<title>``.
``mendeley``: lemmatised lyrics, six audio descriptors (``Track.table``, named by
``feature_columns``), topic scores; ids are the source dataset's row ids.
Rows with empty lyrics, or only a placeholder such as "(Instrumental)", are reported and left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre, unique_tracks
from genrefusion.datasets.csvtable import is_csv, read_header, read_rows
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

MENDELEY_DESCRIPTORS = ("danceability", "loudness", "acousticness", "instrumentalness", "valence", "energy")
MENDELEY_TOPICS = ("dating", "violence", "world/life", "night/time", "shake the audience", "family/gospel", "romantic",
                   "communication", "obscene", "music", "movement/places", "light/visual perceptions",
                   "family/spiritual", "like/girls", "sadness", "feelings")


NO_LYRICS = re.compile(r"^\W*(instrumental|no lyrics|sem letra)?\W*$", re.IGNORECASE)


def _header(path: Path) -> list[str]:
    return (read_header(path) or [[]])[0] if is_csv(path) else []


def _row_tracks(path: Path, make) -> tuple[list[Track], list[Problem]]:
    problems: list[Problem] = []
    tracks = []
    for line, row in enumerate(read_rows(path), start=2):
        where = f"{path}:{line}"
        if NO_LYRICS.match(row.get("lyrics") or ""):
            problems.append(Problem(f"no lyrics ({(row.get('lyrics') or '').strip()!r}); row skipped", path=where))
            continue
        try:
            tracks.append(make(row))
        except (DatasetError, ValueError, KeyError) as err:
            problems.append(Problem(f"bad row ({err}); skipped", path=where))
    return unique_tracks(tracks, problems), problems


@register_dataset("lyrics-br", detect=lambda p: set(_header(p)) >= {"genre", "artist", "title", "lyrics"}
                  and "artist_name" not in _header(p), priority=30, description="Brazilian lyrics CSV (genre,artist,title,lyrics)")
def load_brazilian_lyrics(path: Path) -> Dataset:
    def make(row):
        artist = row["artist"].strip()
        return Track(f"{artist}/{row['title'].strip()}", normalize_genre(row["genre"]), artist=artist or None,
                     lyrics=row["lyrics"].strip(), extra={"title": row["title"].strip()})

    tracks, problems = _row_tracks(Path(path), make)
    return Dataset("lyrics-br", "lyrics-br", Path(path), tuple(tracks), problems=problems)


@register_dataset("mendeley", detect=lambda p: {"artist_name", "lyrics", "genre", "danceability"} <= set(_header(p)),
                  priority=30, description="Mendeley 'Music Dataset: 1950 to 2019' (lyrics + audio descriptors)")
def load_mendeley(path: Path) -> Dataset:
    def make(row):
        tid = (row.get("Unnamed: 0") or row.get("") or "").strip() or f"{row['artist_name']}/{row['track_name']}"
        extra = {"title": row["track_name"], "release_date": row.get("release_date"),
                 "topics": {t: float(row[t]) for t in MENDELEY_TOPICS if t in row}}
        return Track(tid, normalize_genre(row["genre"]), artist=row["artist_name"].strip() or None,
                     lyrics=row["lyrics"].strip(), extra=extra,
                     table=np.array([float(row[c]) for c in MENDELEY_DESCRIPTORS], dtype=np.float32))

    tracks, problems = _row_tracks(Path(path), make)
    return Dataset("mendeley", "mendeley", Path(path), tuple(tracks), problems=problems,
                   feature_columns=MENDELEY_DESCRIPTORS)
