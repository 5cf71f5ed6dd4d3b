"""Any "one folder per genre" tree of audio files (sub-folders allowed, e.g. albums).

Track ids are paths below the root without extension (``rock/Album/01 Song``), unique by
construction; pass ``genres=[...]`` to keep only known genre folders (others are reported).
"""

from __future__ import annotations

from pathlib import Path

from genrefusion.audio import AUDIO_EXTENSIONS
from genrefusion.datasets.base import Dataset, Problem, Track
from genrefusion.datasets.folders import has_genre_folders, scan_genre_folders
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError


@register_dataset("genre-folders", detect=lambda p: has_genre_folders(p, AUDIO_EXTENSIONS), priority=10,
                  description="one folder of audio files per genre")
def load_genre_folders(path: Path, *, genres: list[str] | None = None) -> Dataset:
    root = Path(path)
    problems: list[Problem] = []
    files = scan_genre_folders(root, extensions=AUDIO_EXTENSIONS, problems=problems, genres=genres)
    if not files:
        raise DatasetError("no audio files found in genre sub-folders", path=root)
    tracks = [Track(f.relative_id, f.genre, audio_path=f.path) for f in files]
    return Dataset(root.name, "genre-folders", root, tuple(tracks), problems=problems)
