"""The Python API: the five things a notebook or a service does with genrefusion.

    import genrefusion
    model = genrefusion.load_model()                  # the shipped model (or a bundle, a run folder)
    prediction = model.predict("song.mp3")            # or model.predict(y, sr=sr) on a signal in memory
    prediction.top(3), prediction.probabilities, prediction.to_json(timeline=True)
    ds = genrefusion.open_dataset("data/gtzan")       # Track index of a dataset folder
    genrefusion.extract(ds, store="store")            # its features into a feature store
    genrefusion.train("gbm-features", out="runs/gbm") # a config (file, recipe, dict or RunConfig) -> run folder

Arrays follow librosa: mono ``(n,)`` or channels first ``(channels, n)``, float, at ``sr`` Hz. Every
failure is a :class:`genrefusion.GenreFusionError` naming the file and the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from genrefusion.config import RunConfig
    from genrefusion.datasets.base import Dataset
    from genrefusion.features.extract import ExtractReport
    from genrefusion.inference.predictor import Predictor
    from genrefusion.training.run import RunSummary


def load_model(path: str | Path | None = None, *, profile: str | None = None, backend: str = "torch") -> Predictor:
    """A model ready to predict: ``path`` a bundle, a run folder (its ``bundle/``) or None for the shipped model;
    ``profile`` ``"fast"`` (default) or ``"accurate"`` for the shipped one; ``backend`` ``"torch"`` or ``"onnx"``.
    It has ``predict``, ``labels`` and ``card``."""
    from genrefusion.inference.predictor import Predictor

    return Predictor(path, profile=profile, backend=backend)


def open_dataset(path: str | Path, *, kind: str | None = None, **options) -> Dataset:
    """The :class:`~genrefusion.datasets.base.Dataset` (an index of ``Track``s) of a folder or file; ``kind``
    (``genrefusion datasets kinds``) where it is not detected."""
    from genrefusion.datasets.registry import open_dataset as _open

    return _open(path, kind=kind, **options)


def extract(dataset: Dataset | str | Path, *, store: str | Path = "store", features: list[str] | tuple[str, ...] = (),
            params: dict[str, dict[str, Any]] | None = None, workers: int | None = 1, engine: str = "local",
            address: str | None = None, run_dir: str | Path | None = None, **reading) -> ExtractReport:
    """Compute ``features`` (default: those the dataset's inputs call for) of every track into the feature store
    at ``store``, skipping what it holds; ``params``: per-feature overrides (``{"log_mel": {"n_mels": 96}}``),
    checked on noise before any work; ``reading``: ``sr``, ``offset``, ``duration``, ``max_duration``,
    ``min_duration``. Returns the report (computed, reused, failures)."""
    from genrefusion.features.extract import ExtractConfig, extract as _extract, plan_features
    from genrefusion.features.store import FeatureStore

    ds = dataset if not isinstance(dataset, (str, Path)) else open_dataset(dataset)
    config = ExtractConfig(features=list(features), params=dict(params or {}), workers=workers, engine=engine,
                           address=address, **reading)
    jobs = plan_features(ds, config)  # a bad name or parameter fails before the store is opened
    fs = FeatureStore(store)
    try:
        return _extract(ds, fs, config, run_dir=run_dir, jobs=jobs)
    finally:
        fs.close()


def train(config: RunConfig | dict | str | Path, out: str | Path | None = None, *, overrides: list[str] = (),
          log: Callable[[str], None] = print) -> RunSummary:
    """Train and evaluate a run: ``config`` a :class:`~genrefusion.config.RunConfig`, a dict of its sections, a
    YAML/TOML file or a shipped recipe's name; ``overrides`` ``["train.epochs=3", ...]``; ``out`` the run folder
    (default ``runs/<name>``; an interrupted run there resumes). Returns the folder and its metrics."""
    from genrefusion.config import RunConfig, apply_override, config_from_dict, config_to_dict, load_config
    from genrefusion.recipes import resolve_config
    from genrefusion.training.run import train_run

    if isinstance(config, RunConfig):
        config = config_to_dict(config)
    if isinstance(config, dict):
        data = copy.deepcopy(config)
        for item in overrides:
            apply_override(data, item)
        cfg = config_from_dict(data, source="genrefusion.train")
    else:
        cfg = load_config(resolve_config(config), list(overrides))
    return train_run(cfg, Path(out) if out is not None else Path("runs") / cfg.name, log=log)

