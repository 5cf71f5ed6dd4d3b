"""Genres of audio files from a trained bundle: decode, compute the inputs, predict, aggregate.

A bundle records, for every input, how to compute it from a signal (``inputs[name]["audio"]``):
the input's own audio feature, or for a model trained on images or a feature table the audio
feature that reproduces them (``mel_image`` for GTZAN's spectrogram PNGs, ``summary_gtzan`` for
its table). A file is read in segments of ``segment_s`` seconds (the training clips' length), so
a long file is never decoded whole; each segment's windows are predicted and all windows are
aggregated to the file, and kept, with their times, as its timeline.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Iterator

import numpy as np

from genrefusion import audio
from genrefusion.errors import GenreFusionError, ModelError
from genrefusion.evaluation.metrics import aggregate
from genrefusion.features.dsp import shared_spectra
from genrefusion.features.registry import get_feature
from genrefusion.training.data import InputData, TrackData
from genrefusion.training.fit import predict_windows

#: The model that ships inside the package (trained by the ``default-model`` recipe).
DEFAULT_BUNDLE = Path(__file__).with_name("default_model")


@dataclass
class WindowPrediction:
    """One window of a file: ``[start_s, end_s)`` and its class probabilities ``(C,)``."""

    start_s: float
    end_s: float
    proba: np.ndarray


@dataclass
class Prediction:
    """A file's genre probabilities ``(C,)`` over ``labels`` and its windows in time order."""

    path: str
    labels: list[str]
    proba: np.ndarray
    duration_s: float
    windows: list[WindowPrediction] = field(default_factory=list)

    def top(self, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.proba, kind="stable")[:k]
        return [(self.labels[i], float(self.proba[i])) for i in order]

    def to_dict(self, *, top_k: int = 3, timeline: bool = False) -> dict:
        """JSON-ready: path, duration, the top-k genres and, with ``timeline``, each window's best genre."""
        out = {"path": self.path, "duration_s": round(self.duration_s, 3), "genre": self.top(1)[0][0],
               "top": [{"genre": g, "probability": round(p, 5)} for g, p in self.top(top_k)]}
        if timeline:
            out["timeline"] = [{"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3),
                                "genre": self.labels[int(np.argmax(w.proba))],
                                "probability": round(float(np.max(w.proba)), 5)} for w in self.windows]
        return out


class Predictor:
    """A bundle ready to predict on audio. ``bundle``: a bundle folder, a run folder holding
    ``bundle/``, or None for the packaged default model."""

    def __init__(self, bundle: str | Path | None = None, *, backend: str = "torch"):
        from genrefusion.bundle import load_bundle

        folder = resolve_bundle(bundle)
        self.folder = folder
        self.fitted, self.meta = load_bundle(folder)
        self.labels = self.fitted.labels
        cannot = [n for n, i in self.fitted.inputs.items() if not i.get("audio")]
        if cannot:
            raise ModelError(f"the model's input(s) {cannot} cannot be computed from audio (set inputs.<name>."
                             "audio_feature in its run config)", path=folder)
        sources = {n: i["audio"] for n, i in self.fitted.inputs.items()}
        rates = {s["sr"] for s in sources.values()}
        if len(rates) != 1:
            raise ModelError(f"the model's inputs read audio at different rates {sorted(rates)}", path=folder)
        self.sr = rates.pop()
        self.sources = sources
        self.segment_s = float(self.meta.get("config", {}).get("eval", {}).get("segment_s", 30.0))
        self.model = self.fitted.model
        if backend == "onnx":
            from genrefusion.inference.onnx import OnnxModel

            self.model = OnnxModel.for_bundle(folder, self.fitted)
        elif backend != "torch":
            raise ModelError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.backend = backend

    @property
    def card(self) -> dict:
        return model_card(self.folder, self.meta)

    def features(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Every input's array for signal ``y`` (mono float32 at ``self.sr``); shared features computed once."""
        done: dict[str, np.ndarray] = {}
        out = {}
        with shared_spectra(y):  # e.g. mel_image and summary_gtzan: one STFT and one mel spectrogram
            for name, s in self.sources.items():
                key = repr((s["feature"], sorted(s["params"].items())))
                if key not in done:
                    done[key] = np.asarray(get_feature(s["feature"]).fn(y, sr=self.sr, **s["params"]))
                out[name] = done[key]
        return out

    def segments(self, path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
        """``(start_s, signal)`` of each segment; the last one ends at the file's end."""
        duration = audio.probe(path).duration
        if duration <= self.segment_s * 1.05:
            yield 0.0, audio.load(path, sr=self.sr)[0]
            return
        starts = list(np.arange(0.0, duration - self.segment_s, self.segment_s))
        if starts[-1] + self.segment_s < duration - 0.5:  # the tail, read as one more full segment
            starts.append(duration - self.segment_s)
        for start in starts:
            yield float(start), audio.load(path, sr=self.sr, offset=float(start), duration=self.segment_s)[0]

    def track_data(self, feats: list[dict[str, np.ndarray]]) -> TrackData:
        """The model's input data for signals whose inputs are ``feats`` (one :meth:`features` dict each)."""
        inputs = {n: InputData(n, i["feature"], i["layout"], [f[n] for f in feats], i["fps"])
                  for n, i in self.fitted.inputs.items()}
        return TrackData([str(k) for k in range(len(feats))], np.zeros(len(feats), np.int64), self.labels, inputs)

    def predict_signals(self, signals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
        """Window probabilities ``(n_windows, C)``, each window's signal index and start (s) in it."""
        data = self.track_data([self.features(y) for y in signals])
        windows = self.fitted.windowing.eval_windows(data)
        p, idx = predict_windows(self.model, data, self.fitted.windowing, windows=windows)
        return p, idx, windows

    def warm_up(self) -> None:
        """One prediction on quiet noise, so that imports and JIT compilation happen before real work."""
        y = 1e-3 * np.random.default_rng(0).standard_normal(int(self.segment_s * self.sr)).astype(np.float32)
        self.predict_signals([y])

    def predict_file(self, path: str | Path) -> Prediction:
        """A file's prediction; raises AudioError (naming the file) when it cannot be decoded."""
        probs, windows = [], []
        end = 0.0
        timed = any(i["fps"] for i in self.fitted.inputs.values())
        for start, y in self.segments(path):
            seg_s = y.size / self.sr
            p, _, wins = self.predict_signals([y])
            for row, (_, s) in zip(p, wins):
                w_end = min(seg_s, s + self.fitted.windowing.window_s) if timed else seg_s
                windows.append(WindowPrediction(start + s, start + w_end, row))
            probs.append(p)
            end = max(end, start + seg_s)
        p = np.concatenate(probs)
        proba = aggregate(p, np.zeros(len(p), np.int64), 1, self.meta.get("aggregate", "mean"))[0]
        windows.sort(key=lambda w: w.start_s)
        return Prediction(str(path), self.labels, proba, end, windows)


def model_card(folder: Path, meta: dict) -> dict:
    """What ``model info``, ``GET /model`` and the web page show of a bundle (``meta``: its bundle.json)."""
    return {"bundle": str(folder), "name": meta.get("config", {}).get("name"), "labels": meta["labels"],
            **meta.get("card", {}), "created": meta.get("created"),
            "inputs": {n: (i.get("audio") or {}).get("feature") for n, i in meta["inputs"].items()},
            "segment_s": float(meta.get("config", {}).get("eval", {}).get("segment_s", 30.0)),
            "size_mb": round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 2),
            "versions": meta.get("versions")}


def resolve_bundle(bundle: str | Path | None) -> Path:
    """The bundle folder meant by ``bundle`` (None: the packaged default model)."""
    if bundle is None:
        if not (DEFAULT_BUNDLE / "bundle.json").is_file():
            raise ModelError("the packaged default model is missing; reinstall genrefusion or pass --model",
                             path=DEFAULT_BUNDLE)
        return DEFAULT_BUNDLE
    folder = Path(bundle)
    if (folder / "bundle" / "bundle.json").is_file():
        return folder / "bundle"
    if not folder.exists():
        raise ModelError("model bundle not found", path=folder)
    return folder


@contextmanager
def single_threaded():
    """torch and numpy's BLAS on one thread inside the block. These models are small: threads
    inside one prediction cost more than they give (measured: 7.0 vs 3.2 clips/s in one process)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


@cache
def reuse_freed_memory() -> None:
    """Keep freed buffers in this process's heap (glibc's ``mallopt``; elsewhere a no-op); once.

    Each clip's features allocate and free whole-track arrays of a few MB. By default glibc gives
    such blocks back to the system, and each clip then faults in and zeroes fresh pages: measured
    on 20 clips, 47-52 ms of features per clip, 41-43 ms with freed memory kept (up to 256 MB).
    Process-wide, so it is called where genrefusion owns the process: prediction and the service.
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 2**20)  # blocks up to 32 MB (glibc's maximum) come from the heap
    mallopt(m_trim_threshold, 256 * 2**20)  # and up to 256 MB of free heap stays with the process


# One predictor per worker process, made by the pool's initializer.
_WORKER: Predictor | None = None


def _init_worker(bundle, backend) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    global _WORKER
    reuse_freed_memory()
    torch.set_num_threads(1)  # the pool gives the parallelism; threads inside each would fight for cores
    threadpool_limits(1)  # numpy's BLAS too
    _WORKER = Predictor(bundle, backend=backend)
    _WORKER.warm_up()


def _predict_one(path: str) -> tuple[str, Prediction | None, str | None]:
    return _predict_with(_WORKER, path)


def _predict_with(predictor: Predictor, path: str) -> tuple[str, Prediction | None, str | None]:
    try:
        return path, predictor.predict_file(path), None
    except GenreFusionError as err:
        return path, None, str(err)


def predict_files(paths: list[str | Path], *, bundle: str | Path | None = None, workers: int = 1,
                  backend: str = "torch", ordered: bool = True, predictor: Predictor | None = None
                  ) -> Iterator[tuple[str, Prediction | None, str | None]]:
    """``(path, prediction, None)`` or ``(path, None, reason)`` per file; ``workers`` processes.

    A bad file gives its reason and the others go on. ``ordered=False`` yields as files finish.
    ``predictor``: an already loaded one for the in-process case (``workers`` 1). That case makes
    this process keep its freed memory (:func:`reuse_freed_memory`), as the workers do.
    """
    paths = [str(p) for p in paths]
    if workers <= 1 or len(paths) <= 1:
        reuse_freed_memory()
        if predictor is None:
            with single_threaded():  # an ONNX session fixes its thread count when it is made
                predictor = Predictor(bundle, backend=backend)
        for p in paths:
            with single_threaded():
                result = _predict_with(predictor, p)
            yield result
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(bundle, backend)) as pool:
        if ordered:
            yield from pool.map(_predict_one, paths, chunksize=4)
        else:
            futures = [pool.submit(_predict_one, p) for p in paths]
            for f in as_completed(futures):
                yield f.result()


def expand_paths(items: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Audio files named by ``items``: files, folders (recursive) and globs (``**`` recurses).

    Returns the files in order without repeats, and one problem per item that named none.
    """
    import glob

    files: list[Path] = []
    problems = []
    for item in map(str, items):
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and audio.is_audio_path(f))
        elif p.exists():
            found = [p]  # named explicitly: tried whatever its extension, so its error is shown
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
        else:
            problems.append(f"{item}: file not found")
            continue
        if not found:
            problems.append(f"{item}: no audio files")
        files += found
    seen: set[Path] = set()
    return [f for f in files if not (f in seen or seen.add(f))], problems
