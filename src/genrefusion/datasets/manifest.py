"""A CSV manifest: ``path,genre[,artist,lyrics,split,track_id,image_path]`` one row per track.

Relative paths are resolved against the manifest's folder. The track id is ``track_id`` where
given, else the path without extension. A ``split`` column becomes the published split
``"manifest"``. Rows whose file is missing are reported and left out.
"""

from __future__ import annotations

from pathlib import Path

from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre, unique_tracks
from genrefusion.datasets.csvtable import is_csv, read_header, read_rows
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

KNOWN = ("path", "genre", "artist", "lyrics", "split", "track_id", "image_path")


def detect(path: Path) -> bool:
    header = (read_header(path) or [[]])[0] if is_csv(path) else []
    return "path" in header and "genre" in header


@register_dataset("manifest", detect=detect, priority=30, description="CSV manifest: path,genre[,artist,lyrics,split]")
def load_manifest(path: Path) -> Dataset:
    path = Path(path)
    rows = read_rows(path)
    if rows and not {"path", "genre"} <= rows[0].keys():
        raise DatasetError(f"a manifest needs columns 'path' and 'genre'; found {list(rows[0])[:8]}", path=path)
    problems: list[Problem] = []
    tracks, split = [], {}
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        rel = (row.get("path") or "").strip()
        if not rel:
            problems.append(Problem("empty path; row skipped", path=where))
            continue
        audio = (path.parent / rel).resolve() if not Path(rel).is_absolute() else Path(rel)
        if not audio.is_file():
            problems.append(Problem(f"file not found: {audio}; row skipped", path=where))
            continue
        try:
            genre = normalize_genre(row.get("genre") or "")
        except DatasetError:
            problems.append(Problem("empty genre; row skipped", path=where))
            continue
        tid = (row.get("track_id") or "").strip() or Path(rel).with_suffix("").as_posix()
        image = (row.get("image_path") or "").strip()
        extra = {k: v for k, v in row.items() if k not in KNOWN and k}
        tracks.append(Track(tid, genre, audio_path=audio, artist=(row.get("artist") or "").strip() or None,
                            lyrics=(row.get("lyrics") or None), image_path=(path.parent / image) if image else None,
                            extra=extra))
        if (row.get("split") or "").strip() and tid not in split:
            split[tid] = row["split"].strip()
    tracks = unique_tracks(tracks, problems)
    kept = {t.track_id for t in tracks}
    splits = {"manifest": {t: p for t, p in split.items() if t in kept}} if split else {}
    return Dataset(path.stem, "manifest", path, tuple(tracks), published_splits=splits, problems=problems)
