"""Shared scanning of "one folder per genre" trees, used by several dataset modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from genrefusion.audio import path_problem
from genrefusion.datasets.base import Problem, normalize_genre


@dataclass(frozen=True)
class GenreFile:
    genre: str  # normalised label
    path: Path
    relative_id: str  # path below the root, no extension, '/'-separated


def scan_genre_folders(
    root: Path,
    *,
    extensions: Collection[str],
    problems: list[Problem],
    genres: Collection[str] | None = None,
) -> list[GenreFile]:
    """Files with one of ``extensions`` below ``root/<genre>/`` (recursively), sorted.

    Folders whose normalised name is not in ``genres`` (when given) are reported as unknown genre
    folders and skipped; files with other extensions, broken links, link loops, pipes and folders
    named like files are reported and skipped; hidden entries are ignored.
    """
    extensions = {e.lower() for e in extensions}
    allowed = None if genres is None else {normalize_genre(g) for g in genres}
    found: list[GenreFile] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        genre = normalize_genre(folder.name)
        if allowed is not None and genre not in allowed:
            problems.append(Problem(f"unknown genre folder {folder.name!r} skipped", path=str(folder)))
            continue
        for path in sorted(folder.rglob("*")):
            if path.name.startswith("."):
                continue
            problem = path_problem(path)
            if problem == "a folder, not a file":  # rglob walks into it
                if path.suffix.lower() in extensions:
                    problems.append(Problem("skipped: a folder named like an audio file", path=str(path)))
                continue
            if problem is not None and problem != "empty file (0 bytes)":  # an empty file fails on decode, named
                problems.append(Problem(f"skipped: {problem}", path=str(path)))
                continue
            if path.suffix.lower() not in extensions:
                problems.append(Problem(f"skipped: extension {path.suffix or '(none)'!r} is not one of this dataset's",
                                        path=str(path)))
                continue
            rel = path.relative_to(root).with_suffix("").as_posix()
            found.append(GenreFile(genre, path, rel))
    return found


def has_genre_folders(root: Path, extensions: Collection[str], *, min_folders: int = 1) -> bool:
    """True where ``root`` has at least ``min_folders`` subfolders holding a file of ``extensions``."""
    if not root.is_dir():
        return False
    extensions = {e.lower() for e in extensions}
    hits = 0
    for folder in root.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            if any(p.suffix.lower() in extensions for p in folder.iterdir() if p.is_file()):
                hits += 1
    return hits >= min_folders
