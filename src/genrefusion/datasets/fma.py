"""FMA (Defferrard et al. 2017) from its metadata: ``tracks.csv`` (two header rows) and ``genres.csv``.

Every genre a track carries (``track.genres``) is mapped to its root (``genres.csv`` ``top_level``);
tracks whose genres all share one root are kept ("single-genre"), labelled with that root. The
``top_n`` most frequent roots (within the chosen subset) are kept. FMA's own split
(``set.split``: training/validation/test) is the published split ``"fma"``; ``subset`` follows
FMA's nesting (small within medium within large). Audio is ``<audio_dir>/NNN/NNNNNN.mp3``; by
default the ``fma_<subset>`` folder beside the metadata folder, if there is one.
"""

from __future__ import annotations

import ast
import csv
from collections import Counter
from pathlib import Path

from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre
from genrefusion.datasets.csvtable import read_header, read_rows
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

SUBSETS = ("small", "medium", "large")
SPLIT_NAMES = {"training": "train", "validation": "valid", "test": "test"}


def _tracks_csv(path: Path) -> Path:
    return path / "tracks.csv" if path.is_dir() else path


def detect(path: Path) -> bool:
    rows = read_header(_tracks_csv(path), 2) if _tracks_csv(path).is_file() else []
    return len(rows) == 2 and "track" in rows[0] and "genres" in rows[1] and "subset" in rows[1]


def read_tracks_csv(path: Path) -> list[dict[str, str]]:
    """Rows keyed ``"<top>.<sub>"`` (``"track.genres"``, ``"set.split"``) plus ``"track_id"``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            top, sub = next(reader), next(reader)
        except StopIteration:
            raise DatasetError("FMA tracks.csv needs two header rows", path=path) from None
        keys = ["track_id"] + [f"{t}.{s}" for t, s in zip(top[1:], sub[1:])]
        return [dict(zip(keys, row)) for row in reader if row and row[0] and row[0] != "track_id"]


def _genre_roots(path: Path) -> dict[int, str]:
    rows = read_rows(path)
    if rows and not {"genre_id", "top_level", "title"} <= rows[0].keys():
        raise DatasetError("genres.csv needs columns genre_id, title, top_level", path=path)
    titles = {int(r["genre_id"]): r["title"] for r in rows}
    roots = {}
    for r in rows:
        top = int(r["top_level"])
        if top not in titles:
            raise DatasetError(f"genre {r['genre_id']} has unknown top_level {top}", path=path)
        roots[int(r["genre_id"])] = normalize_genre(titles[top])
    return roots


@register_dataset("fma", detect=detect, priority=40, description="FMA metadata (tracks.csv + genres.csv)")
def load_fma(path: Path, *, subset: str = "small", top_n: int | None = None, audio_dir: Path | None = None) -> Dataset:
    if subset not in SUBSETS:
        raise DatasetError(f"FMA subset must be one of {SUBSETS}, got {subset!r}")
    tracks_csv = _tracks_csv(Path(path))
    genres_csv = tracks_csv.parent / "genres.csv"
    if not genres_csv.is_file():
        raise DatasetError("genres.csv not found beside tracks.csv", path=genres_csv)
    roots = _genre_roots(genres_csv)
    if audio_dir is None:
        guess = tracks_csv.parent.parent / f"fma_{subset}"
        audio_dir = guess if guess.is_dir() else None
    problems: list[Problem] = []
    if audio_dir is None:
        problems.append(Problem(f"no audio folder (fma_{subset}) found; tracks carry metadata only", path=str(tracks_csv)))
    allowed = set(SUBSETS[: SUBSETS.index(subset) + 1])
    kept: list[tuple[str, str, dict]] = []
    n_multi = 0
    for row in read_tracks_csv(tracks_csv):
        if row.get("set.subset") not in allowed:
            continue
        try:
            ids = ast.literal_eval(row.get("track.genres") or "[]")
            track_roots = {roots[int(g)] for g in ids}
        except (ValueError, SyntaxError, KeyError) as err:
            problems.append(Problem(f"unreadable genres {row.get('track.genres')!r} ({err}); skipped",
                                    path=str(tracks_csv), track_id=row["track_id"]))
            continue
        if len(track_roots) != 1:
            n_multi += len(track_roots) > 1
            continue
        kept.append((row["track_id"], track_roots.pop(), row))
    if n_multi:
        problems.append(Problem(f"{n_multi} tracks with genres under several roots left out (not single-genre)",
                                path=str(tracks_csv)))
    counts = Counter(g for _, g, _ in kept)
    top = {g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: top_n or len(counts)]}
    tracks, split = [], {}
    for tid, genre, row in kept:
        if genre not in top:
            continue
        audio = None
        if audio_dir is not None:
            audio = Path(audio_dir) / f"{int(tid):06d}"[:3] / f"{int(tid):06d}.mp3"
            if not audio.is_file():
                problems.append(Problem("audio file not found; track skipped", path=str(audio), track_id=tid))
                continue
        tracks.append(Track(tid, genre, audio_path=audio, artist=(row.get("artist.name") or "").strip() or None,
                            extra={"title": row.get("track.title"), "subset": row.get("set.subset"),
                                   "artist_id": row.get("artist.id")}))
        if row.get("set.split") in SPLIT_NAMES:
            split[tid] = SPLIT_NAMES[row["set.split"]]
    return Dataset(f"fma-{subset}", "fma", tracks_csv.parent, tuple(tracks), published_splits={"fma": split},
                   problems=problems)
