"""Feature extraction over a dataset into the store: parallel, resumable, idempotent.

Worker processes decode each input once and compute every requested feature of it; the parent
process is the store's only writer and commits in small batches, so a kill loses at most the last
batch. A track is skipped when every requested feature is stored with the fingerprint of its
current input; a changed file (new content digest) or a changed parameter (new store key) is
recomputed, nothing else. A bad track is reported with its reason (and written to
``failures.csv`` in the run folder) and the run goes on; a worker that crashes outright is
replaced and the tracks it held are retried one at a time, so the culprit is named.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from genrefusion.datasets.base import Dataset, Track
from genrefusion.errors import AudioError, FeatureError, GenreFusionError, disk_full
from genrefusion.features.dsp import shared_spectra
from genrefusion.features.registry import INPUTS, FeatureSpec, default_features, get_feature
from genrefusion.features.store import FeatureStore, array_digest, file_digest
from genrefusion.workers import CRASHED, engine_pool

COMMIT_SECONDS = 2.0
COMMIT_ITEMS = 64


@dataclass
class ExtractConfig:
    """What to extract and how inputs are read. ``params`` holds per-feature overrides."""

    features: list[str] = field(default_factory=list)  # empty: the defaults for the dataset's inputs
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    sr: int = 22050
    offset: float = 0.0
    duration: float | None = None  # seconds of audio to read; None: the whole file (up to max_duration)
    # Longer files are read only this far (seconds; None: whole, whatever the length). The features of a
    # whole file are computed at once, and their working memory grows with its length (measured: ~200 MB a
    # minute for summary_gtzan, 12.8 GB for an hour); the cap keeps a worker's peak flat in file length.
    max_duration: float | None = 600.0
    min_duration: float = 0.5  # shorter audio is reported as bad
    workers: int | None = 1  # worker processes (Ray actors; None: one per CPU); 0 computes in this process
    engine: str = "local"  # "local" worker processes or "ray" actors (not part of any store key)
    address: str | None = None  # the Ray cluster (None: a local Ray)
    # another process writing the same feature: wait for it and take what it stored (runs that share a store, e.g.
    # benchmark entries on Ray), instead of refusing (``genrefusion extract``: the user's own second command)
    wait_for_writers: bool = False


@dataclass
class Failure:
    track_id: str
    path: str
    feature: str
    reason: str


@dataclass
class ExtractReport:
    dataset: str
    n_tracks: int
    n_computed: int
    n_up_to_date: int
    n_failed: int
    wall_s: float
    workers: int
    features: dict[str, str]  # feature name -> store key
    failures: list[Failure]
    cut: list[str] = field(default_factory=list)  # tracks longer than max_duration, read only that far

    @property
    def tracks_per_s(self) -> float:
        return self.n_computed / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class _Job:
    name: str
    spec: FeatureSpec
    params: dict[str, Any]
    key: str


def plan_features(dataset: Dataset, config: ExtractConfig) -> list[_Job]:
    """Resolve names (or defaults) and parameters into store keys; errors before any work."""
    inputs = {m for t in dataset.tracks for m in t.modalities}
    names = config.features or [n for inp in INPUTS if inp in inputs for n in default_features(inp)]
    if not names:
        raise FeatureError(f"dataset {dataset.name!r} has no input genrefusion extracts features from "
                           f"(it has: {', '.join(sorted(inputs)) or 'nothing'})")
    unknown_params = set(config.params) - set(names)
    if unknown_params:
        raise FeatureError(f"parameters given for feature(s) not being extracted: {sorted(unknown_params)}")
    jobs = []
    for name in dict.fromkeys(names):
        spec = get_feature(name)
        if spec.input not in inputs:
            raise FeatureError(f"feature {name!r} needs {spec.input} input, which dataset {dataset.name!r} has none of")
        params = spec.resolve(config.params.get(name))
        if config.params.get(name) and spec.input == "audio":
            _try_on_noise(spec, params, config.params[name], sr=config.sr)
        jobs.append(_Job(name, spec, params, spec.key(params, _source(spec.input, config, dataset))))
    return jobs


def _try_on_noise(spec: FeatureSpec, params: dict, given: dict, *, sr: int, seconds: float = 4.0) -> None:
    """Run a feature with parameters the user set on seeded noise, so a value it cannot take (``n_mels=-5``)
    fails once, up front, naming the parameters, instead of on every track."""
    y = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * sr))).astype(np.float32)
    what = ", ".join(f"{k}={v!r}" for k, v in given.items())
    try:
        with shared_spectra(y):
            arr = np.asarray(spec.fn(y, sr=sr, **params))
    except Exception as err:  # whatever the feature raises, it is the parameters' fault here
        reason = err.reason if isinstance(err, GenreFusionError) else f"{type(err).__name__}: {err}"
        raise FeatureError(f"feature {spec.name!r} does not run with {what}: {reason}") from None
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise FeatureError(f"feature {spec.name!r} gives NaN or infinite values with {what}")


def _source(kind: str, config: ExtractConfig, dataset: Dataset) -> dict:
    if kind == "audio":
        return {"sr": config.sr, "offset": config.offset, "duration": config.duration, "mono": True,
                **({"max_duration": config.max_duration} if config.max_duration is not None else {})}
    if kind == "table":
        return {"columns": list(dataset.feature_columns)}
    return {}


def _input_of(track: Track, kind: str):
    return {"audio": track.audio_path, "image": track.image_path, "table": track.table,
            "lyrics": track.lyrics}[kind]


#: Inputs held in the index itself rather than in files: their fingerprint is a digest of the value.
IN_MEMORY = {"table": lambda v: array_digest(np.asarray(v)),
             "lyrics": lambda v: array_digest(np.frombuffer(v.encode("utf-8"), np.uint8))}


def _where(task: dict) -> str:
    """How a failure names its input: the file, or the in-memory kind."""
    return f"({task['kind']} of {task['track_id']})" if task["kind"] in IN_MEMORY else str(task["source"])


# ---- worker side -------------------------------------------------------------------------------

def _compute(task: dict) -> dict:
    """Run in a worker: fingerprint the input, load it once, compute the features still needed."""
    from genrefusion import audio as audio_io
    from genrefusion.features.images import load_image

    kind, source = task["kind"], task["source"]
    out = {"track_id": task["track_id"], "arrays": {}, "errors": {}, "stat": None}
    try:
        fp = task["fingerprint"]  # the parent knows it for table rows and for files whose stat is unchanged
        if fp is None:
            st = os.stat(source)
            fp = file_digest(source)
            out["stat"] = (os.path.abspath(source), st.st_size, st.st_mtime_ns, fp)
        out["fingerprint"] = fp
        needed = [j for j in task["jobs"] if j["stored"] != fp]
        if not needed:
            return out
        if kind == "audio":
            cfg = task["audio"]
            cap, want = cfg["max_duration"], cfg["duration"]
            if cap is not None and (want is None or want > cap):
                want = cap + 1.0  # a second more tells a longer file from one of exactly the cap's length
            x, sr = audio_io.load(source, sr=cfg["sr"], offset=cfg["offset"], duration=want, allow_silent=False)
            if cap is not None and x.shape[0] > int(round(cap * sr)):  # longer than the cap: said in the report
                x, out["cut"] = x[: int(round(cap * sr))], True
            if x.shape[0] < cfg["min_duration"] * sr:
                raise AudioError(f"audio is {x.shape[0] / sr:.2f} s, shorter than the minimum "
                                          f"{cfg['min_duration']} s", path=source)
            call = lambda spec, p: spec.fn(x, sr=sr, **p)  # noqa: E731
        else:
            x = {"image": load_image, "table": np.asarray, "lyrics": str}[kind](source)
            call = lambda spec, p: spec.fn(x, **p)  # noqa: E731
    except GenreFusionError as err:
        out["fatal"] = err.reason
        return out
    except Exception as err:  # a decoder's unexpected error is this track's problem, not the run's
        out["fatal"] = f"{type(err).__name__}: {err}"
        return out
    with shared_spectra(x):  # the track's features share their STFTs
        for j in needed:
            try:
                arr = np.asarray(call(get_feature(j["name"]), j["params"]))
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise FeatureError("result has NaN or infinite values")
                out["arrays"][j["key"]] = arr
            except GenreFusionError as err:
                out["errors"][j["name"]] = err.reason
            except Exception as err:
                out["errors"][j["name"]] = f"{type(err).__name__}: {err}"
    return out


# ---- parent side -------------------------------------------------------------------------------

def extract(dataset: Dataset, store: FeatureStore, config: ExtractConfig, *, run_dir: str | Path | None = None,
            on_progress: Callable[[int, int], None] | None = None, jobs: list[_Job] | None = None) -> ExtractReport:
    """Compute ``config``'s features for every track of ``dataset`` that has their input. ``jobs``: the
    :func:`plan_features` of the same dataset and config, where the caller checked it before opening the store."""
    t0 = time.perf_counter()
    jobs = jobs if jobs is not None else plan_features(dataset, config)
    stored = {j.key: store.feature(j.key, {"feature": j.name, "version": j.spec.version, "params": j.params,
                                           "source": _source(j.spec.input, config, dataset), "shape": j.spec.shape})
              for j in jobs}
    # the writers first: planned after, the tasks leave out what a writer we waited for has stored
    writers = {key: f.writer(wait=config.wait_for_writers) for key, f in stored.items()}
    try:
        tasks, n_up_to_date = _plan_tasks(dataset, store, config, jobs, stored)
    except BaseException:
        for w in writers.values():
            w.abandon()
        raise
    total = n_up_to_date + len(tasks)
    failures: list[Failure] = []
    cut: list[str] = []
    log = RunLog(Path(run_dir), config, dataset, store) if run_dir is not None else None
    done = n_up_to_date
    n_computed = 0
    n_bytes = 0
    pending_stats: list[tuple] = []
    last_commit = time.monotonic()

    def fail(f: Failure) -> None:
        failures.append(f)
        if log is not None:
            log.failure(f)

    def commit():
        nonlocal last_commit
        for w in writers.values():
            w.commit()
        if pending_stats:
            store.remember_digests(pending_stats)
            pending_stats.clear()
        last_commit = time.monotonic()

    def accept(result: dict, task: dict) -> None:
        nonlocal done, n_computed, n_up_to_date, n_bytes
        tid, path = result["track_id"], _where(task)
        if "fatal" in result:
            fail(Failure(tid, path, "*", result["fatal"]))
        else:
            for key, arr in result["arrays"].items():
                writers[key].put(tid, result["fingerprint"], arr)
                n_bytes += arr.nbytes
            for name, reason in result["errors"].items():
                fail(Failure(tid, path, name, reason))
            if result["stat"] and not result["errors"]:
                pending_stats.append(result["stat"])
            n_computed += bool(result["arrays"])
            if result.get("cut"):
                cut.append(tid)
            # re-fingerprinted (touched, moved clock) but unchanged: verified current, nothing computed
            n_up_to_date += not result["arrays"] and not result["errors"]
        done += 1
        if on_progress:
            on_progress(done, total)
        if time.monotonic() - last_commit > COMMIT_SECONDS or sum(len(w._pending) for w in writers.values()) >= COMMIT_ITEMS:
            commit()

    def report() -> ExtractReport:
        return ExtractReport(dataset.name, total, n_computed, n_up_to_date, len({f.track_id for f in failures}),
                             time.perf_counter() - t0, config.workers, {j.name: j.key for j in jobs},
                             sorted(failures, key=lambda f: (f.track_id, f.feature)), sorted(cut))

    finished = False
    try:
        if on_progress:
            on_progress(done, total)
        if config.engine == "local" and config.workers is not None and config.workers <= 0:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):  # as in workers, so results do not depend on the worker count
                for task in tasks:
                    accept(_compute(task), task)
        else:
            for task, result in engine_pool(config.engine, config.address)(_compute, tasks, workers=config.workers):
                accept(result if result is not None else {"track_id": task["track_id"], "fatal": CRASHED}, task)
        commit()
        for w in writers.values():
            w.close()
        finished = True
    except (OSError, sqlite3.OperationalError) as err:
        if not disk_full(err):
            raise
        per_track = n_bytes / max(n_computed, 1)
        raise FeatureError(f"no space left on the device: what is committed is kept; the rest needs about "
                           f"{per_track * (total - done + 1) / 1e6:.0f} MB more; free space and re-run",
                           path=store.root) from None
    finally:
        if not finished:  # interrupted or failed: keep what is committed, nothing more
            for w in writers.values():
                w.abandon()
        if log is not None:
            log.finish(report(), complete=finished)
    return report()


def _plan_tasks(dataset, store, config, jobs, stored) -> tuple[list[dict], int]:
    by_input: dict[str, list[_Job]] = {}
    for j in jobs:
        by_input.setdefault(j.spec.input, []).append(j)
    fps = {key: f.fingerprints() for key, f in stored.items()}
    tasks, up_to_date = [], 0
    audio_cfg = {"sr": config.sr, "offset": config.offset, "duration": config.duration, "min_duration": config.min_duration,
                 "max_duration": config.max_duration}
    for track in dataset.tracks:
        for kind, kind_jobs in by_input.items():
            source = _input_of(track, kind)
            if source is None:
                continue
            if kind in IN_MEMORY:
                known = IN_MEMORY[kind](source)
            else:
                try:
                    known = store.cached_digest(source)
                except OSError:
                    known = None  # the worker reports the missing file
            job_state = [{"name": j.name, "key": j.key, "params": j.params, "stored": fps[j.key].get(track.track_id)}
                         for j in kind_jobs]
            if known is not None and all(s["stored"] == known for s in job_state):
                up_to_date += 1
                continue
            tasks.append({"track_id": track.track_id, "kind": kind, "source": source, "fingerprint": known,
                          "jobs": job_state, "audio": audio_cfg})
    return tasks, up_to_date


class RunLog:
    """The run folder, written as the run goes: ``config.json`` at the start, each failure appended to
    ``failures.csv`` as it happens, ``report.json`` at the end (``"complete": false`` after an interrupt or
    a fault), so a killed run still tells what it met."""

    def __init__(self, run_dir: Path, config: ExtractConfig, dataset: Dataset, store: FeatureStore):
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(
            {"dataset": {"name": dataset.name, "kind": dataset.kind, "root": str(dataset.root)},
             "store": str(store.root), "extract": asdict(config)}, indent=2, default=str))
        self._failures = open(run_dir / "failures.csv", "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._failures)
        self._csv.writerow(["track_id", "path", "feature", "reason"])
        self._failures.flush()
        self.skipped = [str(p) for p in dataset.problems]

    def failure(self, f: Failure) -> None:
        self._csv.writerow([f.track_id, f.path, f.feature, f.reason])
        self._failures.flush()

    def finish(self, report: ExtractReport, *, complete: bool) -> None:
        self._failures.close()
        summary = {k: v for k, v in asdict(report).items() if k != "failures"}
        summary.update(complete=complete, tracks_per_s=round(report.tracks_per_s, 3), skipped=self.skipped,
                       python=platform.python_version(), machine=platform.machine(), cpus=os.cpu_count())
        try:
            (self.dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
        except OSError:  # a full disk: the failures written so far stay
            pass
