"""Emotify (Aljanaki, Wiering & Veltkamp 2016): 400 excerpts, 100 each of classical, electronic,
pop and rock, as ``audio/<genre>/<genre>.NNN.<ext>`` plus ``annotations.csv`` (GEMS emotions per
listener). Track ids are ``<genre>.NNN``; ``extra`` holds each emotion's mean over listeners and
``n_annotations``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from genrefusion.audio import AUDIO_EXTENSIONS
from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre
from genrefusion.datasets.csvtable import read_header, read_rows
from genrefusion.datasets.folders import scan_genre_folders
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

GENRES = ("classical", "electronic", "pop", "rock")
EMOTIONS = ("amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power", "joyful_activation",
            "tension", "sadness", "mood", "liked", "disliked")
ID_PATTERN = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d+)$")


def _audio_root(path: Path) -> Path:
    return path / "audio" if (path / "audio").is_dir() else path


def detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    header = (read_header(path / "annotations.csv") or [[]])[0] if (path / "annotations.csv").is_file() else []
    folders = {p.name for p in _audio_root(path).iterdir() if p.is_dir()}
    return "amazement" in header or folders == set(GENRES)


@register_dataset("emotify", detect=detect, priority=50, description="Emotify: 400 clips, 4 genres, GEMS annotations")
def load_emotify(path: Path) -> Dataset:
    root = Path(path)
    problems: list[Problem] = []
    files = scan_genre_folders(_audio_root(root), extensions=AUDIO_EXTENSIONS, problems=problems, genres=GENRES)
    if not files:
        raise DatasetError("no Emotify audio found under audio/<genre>/", path=root)
    annotations = _annotations(root / "annotations.csv", problems) if (root / "annotations.csv").is_file() else {}
    tracks = []
    for f in files:
        m = ID_PATTERN.match(f.path.name.rsplit(".", 1)[0])
        if not m or normalize_genre(m["genre"]) != f.genre:
            problems.append(Problem("file name is not <genre>.NNN in its genre folder; skipped", path=str(f.path)))
            continue
        tid = f"{m['genre']}.{int(m['num']):03d}"
        tracks.append(Track(tid, f.genre, audio_path=f.path, extra=annotations.get((f.genre, int(m["num"])), {})))
    return Dataset("emotify", "emotify", root, tuple(tracks), problems=problems)


def _annotations(path: Path, problems: list[Problem]) -> dict[tuple[str, int], dict]:
    """Mean annotation per ``(genre, number within genre)``.

    The published file numbers tracks 1-400 across genres (classical 1-100, rock 101-200, ...),
    while files are numbered 1-100 within each genre: ids are shifted by each genre's first id.
    """
    sums: dict[tuple[str, int], list[list[float]]] = defaultdict(list)
    for line, row in enumerate(read_rows(path), start=2):
        try:
            key = (normalize_genre(row["genre"]), int(row["track id"]))
            sums[key].append([float(row[e]) for e in EMOTIONS])
        except (KeyError, ValueError, DatasetError):
            problems.append(Problem("annotation row without a valid genre, track id or emotion values; skipped",
                                    path=f"{path}:{line}"))
    first = {}
    for genre, number in sums:
        first[genre] = min(first.get(genre, number), number)
    return {(genre, number - first[genre] + 1): {**dict(zip(EMOTIONS, np.mean(v, axis=0).round(4).tolist())),
                                                 "n_annotations": len(v)}
            for (genre, number), v in sums.items()}
