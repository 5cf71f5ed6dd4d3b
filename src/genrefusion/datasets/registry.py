"""The registry of dataset kinds: one entry per loader module, each with a detector.

``open_dataset(path)`` asks each kind, most specific first, whether it recognises ``path``; no
string ladders. A new loader module registers itself with :func:`register_dataset` and is imported
by ``genrefusion.datasets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genrefusion.datasets.base import Dataset
from genrefusion.errors import DatasetError
from genrefusion.registries import lookup, register


@dataclass(frozen=True)
class DatasetKind:
    name: str
    load: Callable[..., Dataset]
    detect: Callable[[Path], bool]
    description: str
    priority: int  # higher is tried first by detection: specific layouts before generic ones


DATASETS: dict[str, DatasetKind] = {}


def register_dataset(name: str, *, detect: Callable[[Path], bool], description: str, priority: int = 0):
    """Decorator registering ``load(path, **options) -> Dataset`` under ``name``."""

    def wrap(load: Callable[..., Dataset]) -> Callable[..., Dataset]:
        register(DATASETS, name, DatasetKind(name, load, detect, description, priority), "dataset kind", DatasetError)
        return load

    return wrap


def detect_kind(path: str | Path) -> str:
    """The name of the first registered kind (by priority) that recognises ``path``."""
    path = Path(path)
    if not path.exists():
        raise DatasetError("no such file or folder", path=path)
    for kind in sorted(DATASETS.values(), key=lambda k: -k.priority):
        try:
            if kind.detect(path):
                return kind.name
        except (OSError, UnicodeDecodeError):
            continue
    raise DatasetError(
        f"cannot tell what kind of dataset this is; pass --kind, one of: {', '.join(sorted(DATASETS))}", path=path
    )


def open_dataset(path: str | Path, *, kind: str | None = None, **options) -> Dataset:
    """Index the dataset at ``path`` (a folder, manifest or table); ``kind`` skips detection."""
    path = Path(path)
    if not path.exists():
        raise DatasetError("no such file or folder", path=path)
    return lookup(DATASETS, kind or detect_kind(path), "dataset kind", DatasetError).load(path, **options)
