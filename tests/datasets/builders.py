"""Tiny synthetic datasets in each registered kind's real on-disk format (one builder per kind)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import noise, tone, write


def _table(path: Path, header, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def build_gtzan(root: Path) -> Path:
    for g in ("blues", "rock"):
        for i in range(3):
            write(root / "audio" / g / f"{g}.{i:05d}.wav", tone(200 + 100 * i, 1.0) if g == "blues" else noise(1.0, seed=i))
            Image.fromarray(np.full((8, 9), 40 * i, np.uint8)).save(_mk(root / "melspec" / g) / f"{g}.{i:05d}.png")
    cols = ["filename", "length"] + [f"f{i}" for i in range(6)] + ["label"]
    _table(root / "features_30_sec.csv", cols,
           [[f"{g}.{i:05d}.au", 22050] + list(np.arange(6) + i) + [g] for g in ("blues", "rock") for i in range(3)])
    (s := _mk(root / "splits" / "fault_filtered"))
    (s / "train.txt").write_text("blues.00000\nrock.00000\nblues.00001\nrock.00001\n")
    (s / "test.txt").write_text("blues.00002\nrock.00002\n")
    return root


def build_genre_folders(root: Path) -> Path:
    write(root / "Hip Hop" / "Album ü" / "01 Track one.flac", tone(300, 1.0))
    write(root / "Hip Hop" / "02 two.wav", tone(330, 1.0))
    write(root / "jazz" / "tune.ogg", tone(500, 1.0), format="OGG", subtype="VORBIS")
    return root


def build_image_folders(root: Path) -> Path:
    for g in ("pop", "reggae"):
        for i in range(2):
            rgb = np.random.default_rng(i).integers(0, 255, (10, 12, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(_mk(root / g) / f"{g}.{i}.png")
    return root


def build_manifest(root: Path) -> Path:
    a = write(root / "audio" / "a.wav", tone(440, 1.0))
    b = write(root / "audio" / "b.flac", noise(1.0))
    return _table(root / "manifest.csv", ["path", "genre", "artist", "split"],
                  [[a.relative_to(root), "Rock", "Band A", "train"], [b.relative_to(root), "Jazz", "Trio B", "test"]])


def build_feature_table(root: Path) -> Path:
    cols = ["filename"] + [f"x{i}" for i in range(6)] + ["label"]
    return _table(root / "table.csv", cols, [[f"t{i}.wav"] + list(np.arange(6) * i) + [g]
                                            for i, g in enumerate(["a", "b", "a", "b"])])


def build_emotify(root: Path) -> Path:
    for g in ("classical", "electronic", "pop", "rock"):
        for n in (1, 2):
            write(root / "audio" / g / f"{g}.{n:03d}.ogg", tone(300 * n, 1.0), format="OGG", subtype="VORBIS")
    header = ["track id", " genre", " amazement", " solemnity", " tenderness", " nostalgia", " calmness", " power",
              " joyful_activation", " tension", " sadness", " mood", " liked", " disliked", " age", " gender",
              " mother tongue"]
    # numbered across genres as in the published file: classical 1-100, rock 101-200
    rows = [[n + base, g] + [1, 0, 0, 1, 0, 0, 1, 0, 0, 3, 1, 0, 30, 1, "English"]
            for g, base in (("classical", 0), ("rock", 100)) for n in (1, 2)]
    rows.append([102, "rock"] + [0] * 12 + [30, 1, "Dutch"])
    _table(root / "annotations.csv", header, rows)
    return root


def build_lyrics_br(root: Path) -> Path:
    return _table(root / "lyrics.csv", ["genre", "artist", "title", "lyrics"],
                  [["samba", "art-a", "Um", "la la la"], ["forro", "art-b", "Dois", "oi oi"], ["forro", "art-b", "Tres", ""],
                   ["samba", "art-c", "Quatro", "(Instrumental)"]])


def build_mendeley(root: Path) -> Path:
    header = ["Unnamed: 0", "artist_name", "track_name", "release_date", "genre", "lyrics", "len", "dating",
              "danceability", "loudness", "acousticness", "instrumentalness", "valence", "energy", "topic", "age"]
    return _table(root / "mendeley.csv", header,
                  [[10, "a", "s1", 1990, "hip hop", "word word", 2, 0.1, 0.5, 0.6, 0.1, 0.0, 0.3, 0.9, "world", 0.4],
                   [11, "b", "s2", 1991, "blues", "other words", 2, 0.1, 0.4, 0.5, 0.2, 0.1, 0.2, 0.5, "sadness", 0.5]])


def build_fma(root: Path) -> Path:
    """tracks.csv with FMA's two header rows (+ the 'track_id' row), genres.csv, and fma_small audio."""
    meta = _mk(root / "fma_metadata")
    _table(meta / "genres.csv", ["genre_id", "#tracks", "parent", "title", "top_level"],
           [[12, 0, 0, "Rock", 12], [25, 0, 12, "Punk", 12], [15, 0, 0, "Electronic", 15], [286, 0, 15, "Chiptune", 15],
            [21, 0, 0, "Hip-Hop", 21]])
    top = ["", "album", "artist", "artist", "set", "set", "track", "track", "track", "track"]
    sub = ["", "title", "id", "name", "split", "subset", "genre_top", "genres", "genres_all", "title"]
    rows = [
        [2, "A1", 1, "AC", "training", "small", "Rock", "[12]", "[12]", "t2"],
        [3, "A1", 1, "AC", "training", "small", "Rock", "[25]", "[12, 25]", "t3"],  # sub-genre -> Rock
        [5, "A2", 2, "Chip", "validation", "small", "Electronic", "[286]", "[15, 286]", "t5"],
        [10, "A3", 3, "Mix", "test", "small", "", "[12, 15]", "[12, 15]", "t10"],  # two roots: dropped
        [20, "A4", 4, "Rap", "test", "small", "Hip-Hop", "[21]", "[21]", "t20"],
        [134, "A5", 5, "Big", "training", "medium", "Rock", "[12]", "[12]", "t134"],  # medium only
    ]
    with open(meta / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(top)
        w.writerow(sub)
        w.writerow(["track_id"] + [""] * (len(top) - 1))
        w.writerows(rows)
    for tid in (2, 3, 5, 20, 134):
        write(root / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", tone(200 + tid, 1.0), format="MP3")
    return meta


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


BUILDERS = {
    "gtzan": build_gtzan, "genre-folders": build_genre_folders, "image-folders": build_image_folders,
    "manifest": build_manifest, "feature-table": build_feature_table, "emotify": build_emotify,
    "lyrics-br": build_lyrics_br, "mendeley": build_mendeley, "fma": build_fma,
}
