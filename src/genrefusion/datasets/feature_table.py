"""Tabular feature tables (like GTZAN's ``features_30_sec.csv``): one row of numbers per track id.

The id column is the first of ``filename``, ``track_id``, ``id``; an audio extension on it is
dropped (``blues.00000.au`` -> ``blues.00000``). The label column is ``label`` or ``genre``. Rows
with a missing or non-numeric value and duplicate ids are reported and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrefusion.audio import AUDIO_EXTENSIONS
from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre
from genrefusion.datasets.csvtable import is_csv, read_header, read_rows
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

ID_COLUMNS = ("filename", "track_id", "id")
LABEL_COLUMNS = ("label", "genre")
#: Numeric columns that describe the file rather than the music.
NON_FEATURE_COLUMNS = ("length",)


@dataclass(frozen=True)
class FeatureTable:
    columns: tuple[str, ...]
    rows: dict[str, tuple[str, np.ndarray]]  # track_id -> (genre, float32 vector)


def strip_audio_extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in AUDIO_EXTENSIONS else name


def _pick(header, options):
    return next((c for c in options if c in header), None)


def read_feature_table(path: Path, *, problems: list[Problem], exclude=NON_FEATURE_COLUMNS) -> FeatureTable:
    rows = read_rows(path)
    header = list(rows[0]) if rows else [c for c in (read_header(path) or [[]])[0]]
    id_col, label_col = _pick(header, ID_COLUMNS), _pick(header, LABEL_COLUMNS)
    if id_col is None or label_col is None:
        raise DatasetError(f"a feature table needs an id column ({'/'.join(ID_COLUMNS)}) and a label column "
                           f"({'/'.join(LABEL_COLUMNS)}); header is {header[:8]}", path=path)
    columns = tuple(c for c in header if c not in (id_col, label_col) and c not in exclude and c)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for line, row in enumerate(rows, start=2):
        tid = strip_audio_extension(row[id_col].strip())
        where = f"{path}:{line}"
        if not tid:
            problems.append(Problem("row without an id; skipped", path=where))
            continue
        if tid in out:
            problems.append(Problem(f"duplicate id {tid!r}; first row kept", path=where, track_id=tid))
            continue
        try:
            vector = np.array([float(row[c]) for c in columns], dtype=np.float64)
        except (ValueError, TypeError, KeyError):
            bad = [c for c in columns if not _is_number(row.get(c))]
            problems.append(Problem(f"non-numeric or missing value in {bad[:3]}; row skipped", path=where, track_id=tid))
            continue
        if not np.all(np.isfinite(vector)):
            bad = [c for c, v in zip(columns, vector) if not math.isfinite(v)]
            problems.append(Problem(f"NaN or infinite value in {bad[:3]}; row skipped", path=where, track_id=tid))
            continue
        try:
            genre = normalize_genre(row[label_col])
        except DatasetError:
            problems.append(Problem("empty label; row skipped", path=where, track_id=tid))
            continue
        out[tid] = (genre, vector.astype(np.float32))
    return FeatureTable(columns, out)


def _is_number(text) -> bool:
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False


def detect(path: Path) -> bool:
    if not is_csv(path):
        return False
    rows = read_header(path, 2)
    if len(rows) < 2:
        return False
    header, first = rows
    if _pick(header, ID_COLUMNS) is None or _pick(header, LABEL_COLUMNS) is None:
        return False
    return sum(_is_number(v) for v in first) >= 5


@register_dataset("feature-table", detect=detect, priority=25,
                  description="CSV of per-track numeric features with an id and a label column")
def load_feature_table(path: Path) -> Dataset:
    problems: list[Problem] = []
    table = read_feature_table(Path(path), problems=problems)
    tracks = [Track(tid, genre, table=vec) for tid, (genre, vec) in table.rows.items()]
    return Dataset(Path(path).stem, "feature-table", Path(path), tuple(tracks), problems=problems,
                   feature_columns=table.columns)
