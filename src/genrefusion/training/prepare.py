"""From a run config to tracks in memory: open the dataset, extract the inputs' features into the
store (a no-op where current), and read them back as :class:`~genrefusion.training.data.TrackData`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from genrefusion.config import RunConfig
from genrefusion.datasets import open_dataset
from genrefusion.datasets.base import Dataset
from genrefusion.errors import ConfigError
from genrefusion.features.extract import ExtractConfig, extract
from genrefusion.features.registry import get_feature
from genrefusion.features.store import FeatureStore
from genrefusion.track_data import InputData, TrackData


def open_run_dataset(cfg: RunConfig) -> Dataset:
    """The config's dataset, less excluded tracks and genres not asked for, with the tracks of
    ``data.collections`` joined to it (see :func:`join_collections`)."""
    if not cfg.data.path:
        raise ConfigError("data.path is empty: name a dataset folder, manifest or table")
    ds = _open_filtered(cfg.data.path, cfg.data.kind, cfg.data.exclude, cfg.data.genres, "data")
    if not cfg.data.collections:
        return ds
    others = [(_open_filtered(c.path, c.kind, c.exclude, c.genres, f"data.collections[{i}]"), c.part)
              for i, c in enumerate(cfg.data.collections)]
    return join_collections(ds, others)


def _open_filtered(path: str, kind: str | None, exclude: list[str], genres: list[str], where: str) -> Dataset:
    if not path:
        raise ConfigError(f"{where}.path is empty: name a dataset folder, manifest or table")
    ds = open_dataset(Path(path), kind=kind)
    unknown = sorted(set(genres) - set(ds.genres))
    if unknown:
        raise ConfigError(f"{where}.genres names genres the dataset does not have: {unknown}; it has {ds.genres}")
    keep = [t.track_id for t in ds.tracks if t.track_id not in set(exclude) and (not genres or t.genre in genres)]
    return ds.subset(keep) if len(keep) != len(ds) else ds


def join_collections(first: Dataset, others: list[tuple[Dataset, str]]) -> Dataset:
    """One dataset of several collections' tracks (ids must differ), named after all of them. A published
    split of ``first`` keeps its parts, and each other collection's tracks join it as their ``part``."""
    tracks = list(first.tracks)
    seen = {t.track_id: first.name for t in tracks}
    splits = {name: dict(parts) for name, parts in first.published_splits.items()}
    for ds, part in others:
        clash = [t.track_id for t in ds.tracks if t.track_id in seen]
        if clash:
            raise ConfigError(f"collections {seen[clash[0]]!r} and {ds.name!r} share track ids, e.g. {clash[:3]}: "
                              "a track must be one collection's")
        seen.update({t.track_id: ds.name for t in ds.tracks})
        tracks += ds.tracks
        for parts in splits.values():
            parts.update({t.track_id: part for t in ds.tracks})
    return replace(first, name="+".join([first.name, *(ds.name for ds, _ in others)]), kind="collections",
                   tracks=tuple(tracks), published_splits=splits,
                   problems=[p for ds in [first, *(d for d, _ in others)] for p in ds.problems])


def check_inputs(cfg: RunConfig) -> None:
    """Every input names a known feature with known parameters; every branch reads known inputs."""
    if not cfg.inputs:
        raise ConfigError("the config has no inputs: name at least one stored feature under 'inputs'")
    for name, inp in cfg.inputs.items():
        try:
            get_feature(inp.feature).resolve(inp.params)
            if inp.audio_feature:
                audio = get_feature(inp.audio_feature)
                audio.resolve(inp.audio_params)
                if audio.input != "audio":
                    raise ConfigError(f"audio_feature {audio.name!r} is computed from {audio.input}, not audio")
        except Exception as err:
            raise ConfigError(f"inputs.{name}: {err}") from None
    for name, b in cfg.branches.items():
        unknown = [i for i in b.inputs if i not in cfg.inputs]
        if not b.inputs or unknown:
            raise ConfigError(f"branches.{name}.inputs must name inputs from {sorted(cfg.inputs)}, got {b.inputs}")
    unused = sorted(set(cfg.inputs) - {i for b in cfg.branches.values() for i in b.inputs})
    if unused and cfg.branches:
        raise ConfigError(f"inputs {unused} are read by no branch; remove them or add them to a branch's inputs")


def load_track_data(cfg: RunConfig, dataset: Dataset, *, store: FeatureStore | None = None,
                    labels: list[str] | None = None, on_progress=None) -> tuple[TrackData, list[str]]:
    """Extract and read every input for the dataset's tracks.

    Returns the data (tracks that have every input) and a list of problems: tracks dropped because
    an input is missing or failed to extract, each with its reason. ``labels`` fixes the class
    list (a trained model's); tracks of other genres are then left out and reported.
    """
    check_inputs(cfg)
    if labels is not None:
        other = [t.track_id for t in dataset.tracks if t.genre not in labels]
        if len(other) == len(dataset):
            raise ConfigError(f"no track of dataset {dataset.name!r} has a genre the model knows ({', '.join(labels)})")
        if other:
            dataset = dataset.subset([t.track_id for t in dataset.tracks if t.genre in labels])
    problems: list[str] = [f"{len(other)} track(s) of genres the model does not know are left out, e.g. {other[:3]}"] \
        if labels is not None and other else []
    own_store = store is None
    store = store or FeatureStore(cfg.data.store)
    try:
        groups: dict[tuple, list[str]] = defaultdict(list)  # inputs of one feature parameter set
        for name, inp in cfg.inputs.items():
            groups[(inp.feature, repr(sorted(get_feature(inp.feature).resolve(inp.params).items())))].append(name)
        keys: dict[str, str] = {}
        for round_ in _extract_rounds(groups):
            # one pass over the tracks per round: each track is decoded once and its features share their work
            # (spectrograms; a pretrained network's pass, whose tags and embeddings are different features)
            params = {cfg.inputs[names[0]].feature: dict(cfg.inputs[names[0]].params) for names in round_}
            report = extract(dataset, store, ExtractConfig(features=list(params), params=params, sr=cfg.data.sr,
                                                           duration=cfg.data.duration, workers=cfg.data.workers,
                                                           wait_for_writers=True),
                             on_progress=on_progress)
            problems += [f"{f.track_id}: {f.feature}: {f.reason}" for f in report.failures]
            for names in round_:
                for n in names:
                    keys[n] = report.features[cfg.inputs[n].feature]
        stored = {n: store.feature(k) for n, k in keys.items()}
        have = set.intersection(*(set(s.ids()) for s in stored.values()))
        ids = [t.track_id for t in dataset.tracks if t.track_id in have]
        dropped = [t.track_id for t in dataset.tracks if t.track_id not in have]
        if dropped:
            problems.append(f"{len(dropped)} track(s) lack an input and are left out, e.g. {dropped[:5]}")
        if not ids:
            raise ConfigError(f"no track of dataset {dataset.name!r} has every input {sorted(cfg.inputs)}")
        labels = list(labels) if labels is not None else dataset.genres
        y = np.array([labels.index(dataset[t].genre) for t in ids], np.int64)
        inputs = {}
        for n, s in stored.items():
            spec = get_feature(cfg.inputs[n].feature)
            arrays = [np.array(a) for a in s.read(ids)]  # copies: the store's memory maps close with it
            inputs[n] = InputData(n, spec.name, spec.layout, arrays, _fps(cfg, n, spec, s.spec, arrays), dict(s.spec))
        # inner folds group as the run's splits do: a run that lets artists cross (split.group_by_artist: false)
        # folds track by track
        keys = [dataset[t].fold_key for t in ids] if cfg.split.group_by_artist is not False else None
        return TrackData(ids, y, labels, inputs, keys), problems
    finally:
        if own_store:
            store.close()


def _extract_rounds(groups: dict[tuple, list[str]]) -> list[list[list[str]]]:
    """The input groups (one per feature and parameter set) in as few extraction passes as can hold them: a pass
    computes each feature name once, so two parameter sets of one feature go to different passes."""
    rounds: list[list[list[str]]] = []
    for (feature, _), names in groups.items():
        free = next((r for r in rounds if all(g[1] != feature for g in r)), None)
        if free is None:
            rounds.append(free := [])
        free.append((names, feature))
    return [[names for names, _ in r] for r in rounds]


def _fps(cfg: RunConfig, name: str, spec, stored_spec: dict, arrays: list[np.ndarray]) -> float | None:
    """Steps per second along an input's last axis; None where it has no time axis."""
    if spec.layout == "image":
        seconds = cfg.inputs[name].seconds
        if seconds is None:
            if cfg.train.window_s is not None:
                raise ConfigError(f"inputs.{name}: an image cut into {cfg.train.window_s} s windows needs "
                                  f"'seconds' (the duration its width covers, e.g. 30 for GTZAN)")
            return None  # used whole
        return arrays[0].shape[-1] / seconds
    return spec.steps_per_second(stored_spec.get("params", {}), cfg.data.sr)
