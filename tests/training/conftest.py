"""A small synthetic GTZAN-layout dataset (audio + feature table) shared by the training tests.

Three genres, ten 3-second clips each: blues = low tones, classical = mid tones, metal = noise
bursts; the table's six columns carry the class too (with noise), so every modality can learn.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from genrefusion.config import config_from_dict
from tests.conftest import SR, write

GENRES = ("blues", "classical", "metal")
N_PER_GENRE = 10


def _clip(genre: str, i: int, rng) -> np.ndarray:
    t = np.arange(int(3.0 * SR)) / SR
    if genre == "metal":
        return (0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    f = (150 if genre == "blues" else 1200) * (1 + 0.1 * rng.standard_normal())
    return (0.4 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="session")
def synth_gtzan(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "gtzan"
    rng = np.random.default_rng(0)
    rows = []
    for g_idx, genre in enumerate(GENRES):
        for i in range(N_PER_GENRE):
            write(root / "audio" / genre / f"{genre}.{i:05d}.wav", _clip(genre, i, rng))
            feats = rng.normal(0, 1, 6)
            feats[g_idx] += 2.5
            rows.append([f"{genre}.{i:05d}.wav", 66150, *np.round(feats, 4), genre])
    with open(root / "features_30_sec.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "length", *[f"f{k}" for k in range(6)], "label"])
        w.writerows(rows)
    return root


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


def make_config(data: Path, store: Path, **sections):
    """A run config over the synthetic dataset; ``sections`` replace the defaults below."""
    base = {
        "name": "synth",
        "data": {"path": str(data), "store": str(store), "workers": 0},
        "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}, "seed": 0},
        "inputs": {"mel": {"feature": "log_mel", "params": {"n_mels": 32}}, "table": {"feature": "table_row"}},
        "branches": {"cnn": {"model": "cnn2d", "inputs": ["mel"], "args": {"channels": [8, 16]}},
                     "mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 32}}},
        "fusion": {"strategy": "feature", "mode": "joint"},
        "train": {"epochs": 4, "window_s": 1.0, "batch_size": 16, "windows_per_track": 2, "lr": 0.003},
    }
    base.update(sections)
    return config_from_dict(base)
