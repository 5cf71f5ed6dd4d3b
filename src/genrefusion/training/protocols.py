"""Training protocols: how tracks are split, what each stage trains on, and what is reported.

Each protocol is registered by name and returns :class:`Evaluation`\\ s (one per split, seed or
repeat) made on tracks no model or selection step has seen:

- ``holdout``: the split's train / valid / test (valid carved from train when absent);
  ``protocol.seeds`` repeats training with other seeds on the same split (mean +- std).
- ``two_stage``: branches on part A, fusion on part B, test on part C (40/40/20 by default; a
  published train/valid/test split maps to A/B/C); early stopping inside A and B only.
- ``repeated``: ``repeats`` seeded stratified train/test splits, validation carved from train.
- ``kfold``: k stratified folds (artist-grouped where artists are known), each tested once.
- ``cv_grid``: k-fold cross-validated grid search over ``protocol.grid`` on the training tracks
  only, then the best setting refitted and tested once.
Every split is saved and leak-checked (tracks, artists, and each evaluated window) before training.
"""

from __future__ import annotations

import copy
import itertools
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from genrefusion.config import RunConfig, config_to_dict, config_from_dict, set_dotted
from genrefusion.datasets.base import Dataset
from genrefusion.errors import ConfigError, DatasetError
from genrefusion.registries import lookup, register
from genrefusion.evaluation.metrics import aggregate, classification_metrics
from genrefusion.splits import TWO_STAGE, Split, check_split, kfold_splits, published_split, stratified_split
from genrefusion.track_data import TrackData, Windowing
from genrefusion.fusion.model import Fitted
from genrefusion.track_data import predict_windows
from genrefusion.training.fit import BranchBusy, defer_busy_branches, fit_model, validate_config

Log = Callable[[str], None]


@dataclass
class Evaluation:
    """One trained model's results on its test tracks."""

    name: str  # "seed0", "repeat03", ...
    split: Split
    fitted: Fitted
    track: dict  # track-level metrics (windows aggregated)
    window: dict  # window-level metrics
    test_ids: list[str]
    test_proba: np.ndarray
    extra: dict = field(default_factory=dict)  # e.g. the grid search table


class RunStopped(KeyboardInterrupt):
    """A protocol interrupted part-way (Ctrl-C; SIGTERM in ``genrefusion benchmark``): ``finished``
    holds the evaluations it had completed, in protocol order, of ``total``."""

    def __init__(self, finished: list[Evaluation], total: int):
        super().__init__(f"stopped after {len(finished)} of {total} evaluations")
        self.finished, self.total = finished, total
        self.entry = None  # a benchmark entry's partial result, set by genrefusion.benchmarks.run.run_entry

    @property
    def progress(self) -> str:
        """``"6 of 10 repeats"`` (or seeds, folds: read from the evaluations' names)."""
        kind = self.finished[0].name.rstrip("0123456789") + "s" if self.finished else "evaluations"
        return f"{len(self.finished)} of {self.total} {kind}"


PROTOCOLS: dict[str, Callable] = {}


def register_protocol(name: str):
    def wrap(fn):
        return register(PROTOCOLS, name, fn, "protocol", ConfigError)

    return wrap


def get_protocol(name: str):
    return lookup(PROTOCOLS, name, "protocol", ConfigError)


def base_split(cfg: RunConfig, ds: Dataset, *, fractions=None) -> Split:
    """The config's split: a split file, a published split, or a seeded stratified one."""
    if cfg.split.file:
        return Split.load(cfg.split.file, ds, leaky=cfg.split.leaky)
    if cfg.split.published:
        return published_split(ds, cfg.split.published, leaky=cfg.split.leaky)
    return stratified_split(ds, fractions=fractions or cfg.split.fractions, seed=cfg.split.seed,
                            group_by_artist=cfg.split.group_by_artist,
                            leaky=cfg.split.leaky)


def carve(ds: Dataset, ids: list[str], fraction: float, seed: int, group_by_artist,
          leaky: bool = False) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (fit, held-out) stratified by genre (artist-grouped where known); the held-out
    share is rounded to one of ``n`` equal folds (0.15 -> 1/7) so that few artist groups still fit."""
    sub = ds.subset(ids)
    n = max(2, round(1 / fraction))
    s = stratified_split(sub, fractions={"fit": 1 - 1 / n, "held": 1 / n}, seed=seed, group_by_artist=group_by_artist,
                         leaky=leaky)
    return s.ids("fit"), s.ids("held")


def evaluate(fitted: Fitted, data: TrackData, how: str, top_k: int) -> tuple[dict, dict, np.ndarray]:
    """Track-level and window-level metrics on ``data``, and the track probabilities.

    Where several branches are fused, the track metrics also hold each branch alone
    (``track["branches"][name]``), measured on the same windows and tracks.
    """
    p, idx, alone = predict_windows(fitted.model, data, fitted.windowing, branches=True)
    tp = aggregate(p, idx, len(data), how)
    track = classification_metrics(data.y, tp, data.labels, top_k=top_k)
    if len(alone) > 1:
        track["branches"] = {}
        for name, bp in alone.items():
            m = classification_metrics(data.y, aggregate(bp, idx, len(data), how), data.labels, top_k=top_k)
            track["branches"][name] = {k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    return track, classification_metrics(data.y[idx], p, data.labels, top_k=top_k), tp


def uses_validation(cfg: RunConfig) -> bool:
    """Whether a model needs validation tracks: neural branches stop early on them, and frozen fusion
    without a fusion part is fitted on them. A lone classical branch does not, nor a fusion of classical
    branches that is cross-fitted (it learns from out-of-fold outputs of the training tracks) or learns
    nothing (mean, product, vote): their branches train on the validation tracks too."""
    from genrefusion.fusion.registry import get_fusion
    from genrefusion.models.registry import get_branch

    neural = any(get_branch(b.model).family == "neural" for b in cfg.branches.values())
    return neural or (cfg.fusion is not None and not cfg.fusion.cross_fit and get_fusion(cfg.fusion.strategy).learns)


def _check_windows(split: Split, ds: Dataset, parts: dict[str, TrackData], windowing: Windowing) -> None:
    windows = [(d.ids[i], part) for part, d in parts.items() for i, _ in windowing.eval_windows(d)]
    check_split(split, ds, windows=windows)


def _train_and_test(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, split: Split, *,
                    fit_part: str, valid_ids: list[str] | None, fusion_ids: list[str] | None, name: str,
                    run_dir: Path, log: Log) -> Evaluation:
    fit_ids = split.ids(fit_part)
    if not uses_validation(cfg):  # nothing to stop early or to fuse: validation tracks train too
        fit_ids, valid_ids = fit_ids + list(valid_ids or []), []
    elif valid_ids is None:
        fit_ids, valid_ids = carve(ds, fit_ids, cfg.split.valid_fraction, cfg.split.seed,
                                   cfg.split.group_by_artist, cfg.split.leaky)
    parts = {"train": data.subset(fit_ids), "valid": data.subset(valid_ids), "test": data.subset(split.ids("test"))}
    if fusion_ids is not None:
        parts["fusion"] = data.subset(fusion_ids)
    saved = Split(split.name, {**{t: p for p, d in parts.items() for t in d.ids}}, split.leaky)
    saved.save(run_dir / "split.csv", ds)
    _check_windows(saved, ds, parts, windowing)
    fusion_part = parts.get("fusion")
    for p in ("valid", "test") if uses_validation(cfg) else ("test",):
        if not len(parts[p]):
            raise DatasetError(f"split {split.name!r}: part {p!r} is empty")
    overlap = set(parts["train"].ids) & set(fusion_part.ids if fusion_part is not None else [])
    assert not overlap, "the fusion stage must never see a track the branches trained on"
    log(f"{name}: train {len(parts['train'])}, valid {len(parts['valid'])}"
        + (f", fusion {len(fusion_part)}" if fusion_part is not None else "") + f", test {len(parts['test'])} tracks")
    fitted = fit_model(cfg, parts["train"], parts["valid"], fusion_part=fusion_part, windowing=windowing,
                       checkpoint_dir=run_dir / "checkpoints", log=lambda m: log(f"{name} {m}"))
    track, window, tp = evaluate(fitted, parts["test"], cfg.eval.aggregate, cfg.eval.top_k)
    log(f"{name}: test accuracy {track['accuracy']:.4f} (tracks), {window['accuracy']:.4f} (windows)")
    return Evaluation(name, saved, fitted, track, window, parts["test"].ids, tp)


def _call(job: partial):
    return job()


def _on_engine(cfg: RunConfig, jobs: list[partial]) -> Iterator[tuple[partial, object]]:
    """``(job, job())`` in job order, computed as tasks of ``protocol.engine`` (Ray): each job is independent
    (its own seed, split, grid point and run folder; shared branches are locked)."""
    from genrefusion.workers import CRASHED, engine_pool, map_ordered

    for job, result in map_ordered(_call, jobs, pool=engine_pool(cfg.protocol.engine, cfg.protocol.address),
                                   workers=None):
        if result is None:
            raise ConfigError(f"{job.keywords['name']}: {CRASHED}")
        yield job, result


def _run_jobs(cfg: RunConfig, jobs: list[partial], log: Log) -> list[Evaluation]:
    """The evaluations of ``jobs`` in job order: here (:func:`_busy_ones_last`) or, with ``protocol.engine: ray``,
    as Ray tasks."""
    if cfg.protocol.engine == "local":
        return _busy_ones_last(jobs, log)
    done = []
    for _, ev in _on_engine(cfg, jobs):
        log(f"{ev.name}: test accuracy {ev.track['accuracy']:.4f} (tracks), on Ray")
        done.append(ev)
    return done


def _busy_ones_last(jobs: list[partial], log: Log) -> list[Evaluation]:
    """Run ``jobs`` (:func:`_train_and_test` of each seed, repeat or fold) in order, except that a job
    whose cached branch another process is training right now goes to the back, and is run (waiting
    for that branch if it must) after the others. Two commands that share branches, such as the same
    benchmark started twice, so train different ones at once instead of one waiting on the other.
    Results in job order; interrupted, :class:`RunStopped` carries the finished ones."""
    done: dict[int, Evaluation] = {}
    later: list[int] = []
    try:
        with defer_busy_branches():
            for i, job in enumerate(jobs):
                try:
                    done[i] = job()
                except BranchBusy as busy:
                    log(f"{job.keywords['name']} {busy}: doing the others first")
                    later.append(i)
        for i in later:
            done[i] = jobs[i]()
    except KeyboardInterrupt as stop:
        raise RunStopped([done[i] for i in sorted(done)], len(jobs)) from stop
    return [done[i] for i in range(len(jobs))]


def _seeded(cfg: RunConfig, seed: int) -> RunConfig:
    c = copy.deepcopy(cfg)
    c.train.seed = seed
    return c


@register_protocol("holdout")
def holdout(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log):
    split = base_split(cfg, ds)
    if "train" not in split.parts or "test" not in split.parts:
        raise ConfigError(f"holdout needs parts train and test (valid optional); split has {split.parts}")
    valid = split.ids("valid") if "valid" in split.parts else None
    seeds = cfg.protocol.seeds or [cfg.train.seed]
    return _run_jobs(cfg, [partial(_train_and_test, _seeded(cfg, seed), ds, data, windowing, split, fit_part="train",
                                    valid_ids=valid, fusion_ids=None, name=f"seed{seed}",
                                    run_dir=run_dir / f"seed{seed}" if len(seeds) > 1 else run_dir, log=log)
                            for seed in seeds], log)


@register_protocol("two_stage")
def two_stage(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log):
    if cfg.fusion is None or cfg.fusion.mode != "frozen" or cfg.fusion.cross_fit:
        raise ConfigError("the two_stage protocol trains branches and fusion on different tracks: "
                          "it needs a fusion section with mode: frozen (and no cross_fit, which fits both on the same tracks)")
    default = not cfg.split.published and not cfg.split.file and set(cfg.split.fractions) == {"train", "valid", "test"}
    split = base_split(cfg, ds, fractions=TWO_STAGE if default else None)
    names = {"branches": "branches", "fusion": "fusion"} if "branches" in split.parts else {"branches": "train", "fusion": "valid"}
    if not {names["branches"], names["fusion"], "test"} <= set(split.parts):
        raise ConfigError(f"two_stage needs parts branches/fusion/test (or train/valid/test); split has {split.parts}")
    seeds = cfg.protocol.seeds or [cfg.train.seed]
    return _run_jobs(cfg, [partial(_train_and_test, _seeded(cfg, seed), ds, data, windowing, split,
                                    fit_part=names["branches"], valid_ids=None, fusion_ids=split.ids(names["fusion"]),
                                    name=f"seed{seed}", run_dir=run_dir / f"seed{seed}" if len(seeds) > 1 else run_dir,
                                    log=log)
                            for seed in seeds], log)


@register_protocol("repeated")
def repeated(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log):
    tf = cfg.protocol.test_fraction

    jobs = []
    for r in range(cfg.protocol.repeats):
        seed = cfg.split.seed + r
        split = stratified_split(ds, fractions={"train": 1 - tf, "test": tf}, seed=seed,
                                 group_by_artist=cfg.split.group_by_artist, name=f"repeat{r:02d}", leaky=cfg.split.leaky)
        c = _seeded(cfg, cfg.train.seed + r)
        c.split.seed = seed
        jobs.append(partial(_train_and_test, c, ds, data, windowing, split, fit_part="train", valid_ids=None,
                            fusion_ids=None, name=f"repeat{r:02d}", run_dir=run_dir / f"repeat{r:02d}", log=log))
    return _run_jobs(cfg, jobs, log)


@register_protocol("kfold")
def kfold(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log):
    """``protocol.folds`` stratified folds, artist-grouped where artists are known; each fold is the
    test part once, validation carved from the other folds."""
    folds = kfold_splits(ds, k=cfg.protocol.folds, seed=cfg.split.seed, group_by_artist=cfg.split.group_by_artist,
                            leaky=cfg.split.leaky)
    return _run_jobs(cfg, [partial(_train_and_test, cfg, ds, data, windowing, fold, fit_part="train", valid_ids=None,
                                    fusion_ids=None, name=f"fold{i + 1}", run_dir=run_dir / f"fold{i + 1}", log=log)
                            for i, fold in enumerate(folds)], log)


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Cartesian product of ``{dotted key: values}``."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def with_values(cfg: RunConfig, point: dict) -> RunConfig:
    """A copy of ``cfg`` with dotted keys set; unknown keys fail like a typo in the file."""
    data = config_to_dict(cfg)
    for k, v in point.items():
        set_dotted(data, k, v)
    return config_from_dict(data, source=f"grid point {point}")


def _grid_score(c: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, fold: Split, *, name: str) -> float:
    """Track accuracy on ``fold``'s test part of ``c`` fitted on its other folds (one cell of the grid search)."""
    inner_fit, inner_valid = carve(ds, fold.ids("train"), c.split.valid_fraction, c.split.seed,
                                   c.split.group_by_artist, c.split.leaky) if uses_validation(c) else (fold.ids("train"), [])
    fitted = fit_model(c, data.subset(inner_fit), data.subset(inner_valid), fusion_part=None, windowing=windowing,
                       log=lambda m: None)
    track, _, _ = evaluate(fitted, data.subset(fold.ids("test")), c.eval.aggregate, c.eval.top_k)
    return float(track["accuracy"])


@register_protocol("cv_grid")
def cv_grid(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log):
    split = base_split(cfg, ds)
    if "test" not in split.parts:
        raise ConfigError(f"cv_grid needs a test part; split has {split.parts}")
    pool = [t for t, p in split.assignment.items() if p != "test"]
    pool_ds = ds.subset(pool)
    folds = kfold_splits(pool_ds, k=cfg.protocol.folds, seed=cfg.split.seed, group_by_artist=cfg.split.group_by_artist,
                            leaky=cfg.split.leaky)
    points = grid_points(cfg.protocol.grid)
    for p in points:
        validate_config(with_values(cfg, p))  # every grid point is a valid config before anything trains
    jobs = [partial(_grid_score, with_values(cfg, point), ds, data, windowing, fold, name=f"grid{gi + 1} fold{fi + 1}")
            for gi, point in enumerate(points) for fi, fold in enumerate(folds)]
    if cfg.protocol.engine == "local":
        scores = [job() for job in jobs]
    else:  # every (grid point, fold) is a Ray task
        scores = [score for _, score in _on_engine(cfg, jobs)]
    table = []
    for gi, point in enumerate(points):
        mine = scores[gi * len(folds):(gi + 1) * len(folds)]
        table.append({"point": point, "cv_accuracy": float(np.mean(mine)), "cv_std": float(np.std(mine)),
                      "folds": mine})
        log(f"grid {gi + 1}/{len(points)} {point}: CV accuracy {np.mean(mine):.4f} +- {np.std(mine):.4f}")
    best = max(table, key=lambda r: r["cv_accuracy"])
    log(f"best grid point {best['point']} (CV accuracy {best['cv_accuracy']:.4f}); refitting on all training tracks")
    c = with_values(cfg, best["point"])
    valid = split.ids("valid") if "valid" in split.parts else None
    ev = _train_and_test(c, ds, data, windowing, split, fit_part="train", valid_ids=valid, fusion_ids=None,
                         name="refit", run_dir=run_dir, log=log)
    ev.extra["grid"] = table
    ev.extra["best"] = best["point"]
    return [ev]


def refit_all(cfg: RunConfig, ds: Dataset, data: TrackData, windowing: Windowing, run_dir: Path, log: Log) -> Fitted:
    """The run's model trained on every track (``protocol.refit``): no test part; a validation part is carved
    as the protocols carve one where the model needs it (early stopping, a fusion that learns)."""
    fit_ids, valid_ids = list(data.ids), []
    if uses_validation(cfg):
        fit_ids, valid_ids = carve(ds, fit_ids, cfg.split.valid_fraction, cfg.split.seed,
                                   cfg.split.group_by_artist, cfg.split.leaky)
    log(f"refit: train {len(fit_ids)}, valid {len(valid_ids)} tracks (every track; nothing held out for a test)")
    return fit_model(cfg, data.subset(fit_ids), data.subset(valid_ids), windowing=windowing,
                     checkpoint_dir=run_dir / "checkpoints" / "refit", log=lambda m: log(f"refit {m}"))
