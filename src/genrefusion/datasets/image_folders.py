"""Spectrogram-image folders: ``<genre>/<id>.png`` (colour or greyscale; also jpg).

Track ids are file stems, so images join other modalities of the same track by id; a stem seen
twice is reported and the first kept.
"""

from __future__ import annotations

from pathlib import Path

from genrefusion.audio import AUDIO_EXTENSIONS
from genrefusion.datasets.base import Dataset, Problem, Track, unique_tracks
from genrefusion.datasets.folders import has_genre_folders, scan_genre_folders
from genrefusion.datasets.registry import register_dataset
from genrefusion.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def detect(path: Path) -> bool:
    return has_genre_folders(path, IMAGE_EXTENSIONS) and not has_genre_folders(path, AUDIO_EXTENSIONS)


@register_dataset("image-folders", detect=detect, priority=20, description="one folder of spectrogram images per genre")
def load_image_folders(path: Path, *, genres: list[str] | None = None) -> Dataset:
    root = Path(path)
    problems: list[Problem] = []
    files = scan_genre_folders(root, extensions=IMAGE_EXTENSIONS, problems=problems, genres=genres)
    if not files:
        raise DatasetError("no image files found in genre sub-folders", path=root)
    tracks = unique_tracks((Track(f.path.stem, f.genre, image_path=f.path) for f in files), problems)
    return Dataset(root.name, "image-folders", root, tuple(tracks), problems=problems)
