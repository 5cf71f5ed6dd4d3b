"""Datasets: the Track/Dataset contract, one module per dataset kind, and their registry.

Importing this package registers every kind; ``open_dataset(path)`` detects which one fits.
"""

from genrefusion.datasets import (  # noqa: F401  (registration)
    emotify, feature_table, fma, genre_folders, gtzan, image_folders, lyrics, manifest,
)
from genrefusion.datasets.base import Dataset, DatasetSummary, Problem, Track, normalize_genre
from genrefusion.datasets.registry import DATASETS, detect_kind, open_dataset, register_dataset

__all__ = ["DATASETS", "Dataset", "DatasetSummary", "Problem", "Track", "detect_kind", "normalize_genre",
           "open_dataset", "register_dataset"]
