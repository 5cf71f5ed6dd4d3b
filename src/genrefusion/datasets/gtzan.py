"""GTZAN: ``<genre>/<genre>.NNNNN.{wav,au,flac}`` audio, optional spectrogram images, feature table
and published split files (``splits/<name>/{train,valid,test}.txt``, e.g. the fault-filtered split
of Kereliuk, Sturm & Larsen 2015).

``path`` may be the audio folder itself or a GTZAN root holding ``audio/`` (or ``genres/``,
``genres_original/``), ``melspec/`` (or ``images_original/``), ``features_30_sec.csv`` and
``splits/``. Track ids are GTZAN's (``blues.00012``); a track has every modality found for its id.
"""

from __future__ import annotations

import re
from pathlib import Path

from genrefusion.audio import AUDIO_EXTENSIONS
from genrefusion.datasets.base import Dataset, Problem, Track, normalize_genre
from genrefusion.datasets.feature_table import read_feature_table
from genrefusion.datasets.folders import scan_genre_folders
from genrefusion.datasets.registry import register_dataset

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
ID_PATTERN = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})$")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_AUDIO_DIRS = ("audio", "genres", "genres_original", "Data/genres_original")
_IMAGE_DIRS = ("melspec", "images_original", "Data/images_original")
_TABLES = ("features_30_sec.csv", "Data/features_30_sec.csv")
ARTISTS = "artists.csv"
SPLIT_PARTS = {"train.txt": "train", "valid.txt": "valid", "test.txt": "test"}
#: GTZAN names no artists; Sturm's index (``artists.csv``: ``track_id,artist,title``, 919 of 1000 ids) does, and
#: gives ``Track.artist`` where present. An artist's tracks are mostly a run of consecutive ids (Sturm 2013):
#: each genre's ids in blocks of this many are one fold group (``Track.fold_group``), which keeps inner folds
#: together where the index names no artist. Measured on the fault-filtered split's train and valid parts, never its test:
#: a fusion's out-of-fold accuracy on train was 85 % in random folds and 81 % in blocks of 10, against 66 % in
#: blocks of 25, where it matches what the same fusion scores on valid (68 %).
ARTIST_RUN_BLOCK = 25


def _is_gtzan_tree(folder: Path, extensions) -> bool:
    if not folder.is_dir():
        return False
    names = {p.name for p in folder.iterdir() if p.is_dir()}
    if len(names & set(GENRES)) < 2:
        return False
    genre = sorted(names & set(GENRES))[0]
    return any(ID_PATTERN.match(f.name.rsplit(".", 1)[0]) for f in (folder / genre).iterdir()
               if f.suffix.lower() in extensions)


def _find(root: Path, candidates, test) -> Path | None:
    for rel in candidates:
        if test(root / rel):
            return root / rel
    return None


def detect(path: Path) -> bool:
    return path.is_dir() and (
        _is_gtzan_tree(path, AUDIO_EXTENSIONS)
        or _find(path, _AUDIO_DIRS, lambda p: _is_gtzan_tree(p, AUDIO_EXTENSIONS)) is not None
        or (_find(path, _TABLES, Path.is_file) is not None and (path / "splits").is_dir())
    )


def read_split_dir(folder: Path, problems: list[Problem]) -> dict[str, str]:
    """``{track_id: part}`` from ``train.txt``/``valid.txt``/``test.txt`` (one id per line)."""
    parts: dict[str, str] = {}
    for name, part in SPLIT_PARTS.items():
        f = folder / name
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8").split():
            tid = line.strip().rsplit("/", 1)[-1]
            tid = re.sub(r"\.(wav|au|flac)$", "", tid)
            if tid in parts and parts[tid] != part:
                problems.append(Problem(f"published split lists {tid} in both {parts[tid]} and {part}", path=str(f)))
            parts[tid] = part
    return parts


def read_artists(path: Path, problems: list[Problem]) -> dict[str, str]:
    """``{track_id: artist}`` of Sturm's index (rows without an artist left out)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(f"artist index not read ({err}); folds group by runs of ids", path=str(path)))
        return {}
    if rows and not {"track_id", "artist"} <= rows[0].keys():
        problems.append(Problem("artist index needs columns track_id and artist; not used", path=str(path)))
        return {}
    return {r["track_id"].strip(): r["artist"].strip() for r in rows if (r.get("artist") or "").strip()}


def _fold_group(tid: str) -> str | None:
    """``blues.00012`` -> ``blues.0``: its genre and its block of ``ARTIST_RUN_BLOCK`` ids."""
    m = ID_PATTERN.match(tid)
    return f"{m['genre']}.{int(m['num']) // ARTIST_RUN_BLOCK}" if m else None


@register_dataset("gtzan", detect=detect, priority=50,
                  description="GTZAN folder layout (+ images, feature table, published splits)")
def load_gtzan(path: Path, *, audio_dir: Path | None = None, image_dir: Path | None = None,
               table: Path | None = None, split_dir: Path | None = None, artists: Path | None = None) -> Dataset:
    root = Path(path)
    problems: list[Problem] = []
    if _is_gtzan_tree(root, AUDIO_EXTENSIONS) and audio_dir is None:
        # Pointed at the audio tree itself: index the audio only, with the published splits of
        # the GTZAN root above it (images and table join only when the root is given).
        audio_dir = root
        split_root = split_dir or next((r / "splits" for r in (root, root.parent) if (r / "splits").is_dir()), None)
        artists = artists or next((r / ARTISTS for r in (root, root.parent) if (r / ARTISTS).is_file()), None)
    else:
        audio_dir = audio_dir or _find(root, _AUDIO_DIRS, lambda p: _is_gtzan_tree(p, AUDIO_EXTENSIONS))
        image_dir = image_dir or _find(root, _IMAGE_DIRS, Path.is_dir)
        table = table or _find(root, _TABLES, Path.is_file)
        split_root = split_dir or ((root / "splits") if (root / "splits").is_dir() else None)
        artists = artists or ((root / ARTISTS) if (root / ARTISTS).is_file() else None)

    records: dict[str, dict] = {}

    def add(files, field):
        for f in files:
            tid = f.path.name.rsplit(".", 1)[0]
            m = ID_PATTERN.match(tid)
            if not m:
                problems.append(Problem("file name does not follow GTZAN's <genre>.NNNNN pattern; skipped", path=str(f.path)))
                continue
            if normalize_genre(m["genre"]) != f.genre:
                problems.append(Problem(f"file of genre {m['genre']!r} in folder {f.genre!r}; skipped", path=str(f.path)))
                continue
            rec = records.setdefault(tid, {"genre": f.genre})
            if field in rec:
                problems.append(Problem(f"duplicate track id {tid!r} ({rec[field].name} kept)", path=str(f.path), track_id=tid))
                continue
            rec[field] = f.path

    if audio_dir is not None:
        add(scan_genre_folders(audio_dir, extensions=AUDIO_EXTENSIONS, problems=problems, genres=GENRES), "audio_path")
    if image_dir is not None:
        add(scan_genre_folders(image_dir, extensions=IMAGE_EXTENSIONS, problems=problems, genres=GENRES), "image_path")
    columns: tuple[str, ...] = ()
    if table is not None:
        tab = read_feature_table(table, problems=problems)
        columns = tab.columns
        for tid, (genre, vector) in tab.rows.items():
            rec = records.setdefault(tid, {"genre": genre})
            if rec["genre"] != genre:
                problems.append(Problem(f"table says {genre!r}, folders say {rec['genre']!r}; folder label kept",
                                        path=str(table), track_id=tid))
            rec["features"] = vector
    if table is not None:
        unjoined = sorted(t for t, rec in records.items() if "features" not in rec)
        if unjoined:
            problems.append(Problem(f"{len(unjoined)} tracks have no row in the feature table, e.g. {unjoined[:3]}",
                                    path=str(table)))
    if not records:
        from genrefusion.errors import DatasetError

        raise DatasetError("no GTZAN audio, images or feature table found", path=root)
    artist_of = read_artists(artists, problems) if artists is not None else {}
    tracks = [
        Track(tid, rec["genre"], audio_path=rec.get("audio_path"), image_path=rec.get("image_path"),
              artist=artist_of.get(tid), table=rec.get("features"),
              fold_group=_fold_group(tid))
        for tid, rec in sorted(records.items())
    ]
    splits: dict[str, dict[str, str]] = {}
    if split_root is not None:
        for folder in sorted(p for p in split_root.iterdir() if p.is_dir()):
            parts = read_split_dir(folder, problems)
            unknown = sorted(set(parts) - records.keys())
            if unknown:
                problems.append(Problem(f"{len(unknown)} ids of split {folder.name!r} are not in the dataset, e.g. {unknown[:3]}",
                                        path=str(folder)))
            splits[folder.name] = {t: p for t, p in parts.items() if t in records}
    return Dataset("gtzan", "gtzan", root, tuple(tracks), published_splits=splits, problems=problems,
                   feature_columns=columns)
