"""Genres of audio files from a trained bundle: decode, compute the inputs, predict, aggregate.

A bundle records, for every input, how to compute it from a signal (``InputSpec.audio``):
the input's own audio feature, or for a model trained on images or a feature table the audio
feature that reproduces them (``mel_image`` for GTZAN's spectrogram PNGs, ``summary_gtzan`` for
its table). A file is read in segments of ``segment_s`` seconds (the training clips' length), so
a long file is never decoded whole; each segment's windows are predicted and all windows are
aggregated to the file, and kept, with their times, as its timeline.

Before any model runs, measured levels decide what is not music: a file shorter than the model
needs (:data:`MIN_SECONDS`, or the bundle's ``eval.min_seconds``) is ``too_short``; a segment whose
loud parts are below :data:`SILENCE_DB` is ``no_music`` (a file whose every segment is, too). A
genre whose probability is below the bundle's ``eval.sure_probability`` (:data:`SURE_PROBABILITY`)
is given, but as ``not_sure``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from genrefusion import audio
from genrefusion.bundle import AudioSource, InputSpec
from genrefusion.errors import GenreFusionError, ModelError, UsageError
from genrefusion.evaluation.metrics import aggregate
from genrefusion.features.dsp import shared_spectra
from genrefusion.features.registry import get_feature
from genrefusion.pretrained.musicnn_spec import PATCH_SECONDS, patch_indices

# torch (through training.data and training.fit) is imported where a model is loaded or run, not here: a process
# that only hands files to worker processes (predict --workers 2, tag) starts without it

#: The models that ship inside the package, one folder per profile (trained by the ``default-model`` and
#: ``default-model-fast`` recipes, copied in by ``genrefusion model package``).
DEFAULT_ROOT = Path(__file__).with_name("default_model")
PROFILES = ("fast", "accurate")
DEFAULT_PROFILE = "fast"

#: Statuses of a prediction: a genre; a genre given with low confidence; no music at all; too short to tell.
OK, NOT_SURE, NO_MUSIC, TOO_SHORT = "ok", "not_sure", "no_music", "too_short"
STATUS_WORDS = {OK: "", NOT_SURE: "not sure", NO_MUSIC: "no music", TOO_SHORT: "too short"}

#: A stretch of audio is silence when its loud parts, the 95th percentile of its frames' RMS level (2048-sample
#: frames), are below this (dB re full scale). Real music is far above it: over GTZAN's 100 clips and Emotify's 400
#: (measured at 16 kHz) the lowest such level is -28.4 dBFS (a quiet electronic piece; the quietest classical clip
#: -26.5), the median -11.9; digital silence is -inf, and a dither or hiss floor -70 or below.
SILENCE_DB = -55.0
#: Shortest file a model is asked about (s): one 3 s patch of the pretrained taggers; a bundle's
#: ``eval.min_seconds`` overrides it.
MIN_SECONDS = 3.0
#: Below this top probability an answer is ``not_sure`` (a bundle's ``eval.sure_probability`` overrides it).
SURE_PROBABILITY = 0.5


def level_db(y: np.ndarray) -> float:
    """The level of a signal's loud parts, dBFS: the 95th percentile of its frames' RMS (2048-sample frames,
    hop 512); -inf for digital silence."""
    from genrefusion.features.dsp import rms

    if not y.size:
        return float("-inf")
    frames = rms(np.asarray(y, np.float32))
    loud = float(np.percentile(frames, 95))
    return 20.0 * np.log10(loud) if loud > 0 else float("-inf")


@dataclass
class WindowPrediction:
    """One window of a file: ``[start_s, end_s)`` and its class probabilities ``(C,)`` (zeros where the
    window is ``no_music``)."""

    start_s: float
    end_s: float
    proba: np.ndarray
    status: str = OK


@dataclass
class Prediction:
    """A file's genre probabilities ``(C,)`` over ``labels`` and its windows in time order.

    ``status``: :data:`OK`, :data:`NOT_SURE` (a genre, with low confidence), :data:`NO_MUSIC` or
    :data:`TOO_SHORT` (no genre: ``proba`` is all zeros); ``level_db``: the loud parts' level (dBFS)."""

    path: str
    labels: list[str]
    proba: np.ndarray
    duration_s: float
    windows: list[WindowPrediction] = field(default_factory=list)
    status: str = OK
    level_db: float = 0.0
    reason: str = ""  # why there is no genre, or why it is not sure, in words

    @property
    def genre(self) -> str | None:
        """The best genre, or None for no music / too short."""
        return self.top(1)[0][0] if self.has_genre else None

    @property
    def has_genre(self) -> bool:
        return self.status in (OK, NOT_SURE)

    @property
    def probabilities(self) -> dict[str, float]:
        """Every genre's probability, most likely first (empty without a genre)."""
        return dict(self.top(len(self.labels)))

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely genres with their probabilities (none for no music / too short)."""
        if not self.has_genre:
            return []
        order = np.argsort(-self.proba, kind="stable")[:k]
        return [(self.labels[i], float(self.proba[i])) for i in order]

    def to_dict(self, *, top_k: int = 3, timeline: bool = False) -> dict:
        """JSON-ready: path, duration, status (and reason), the genre and the top-k genres and, with ``timeline``,
        each window's best genre (or ``no_music``)."""
        out = {"path": self.path, "duration_s": round(self.duration_s, 3), "status": self.status,
               "genre": self.genre, "top": [{"genre": g, "probability": round(p, 5)} for g, p in self.top(top_k)],
               "level_db": None if not np.isfinite(self.level_db) else round(float(self.level_db), 1)}
        if self.reason:
            out["reason"] = self.reason
        if timeline:
            out["timeline"] = [{"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3), "status": w.status,
                                "genre": self.labels[int(np.argmax(w.proba))] if w.status == OK else None,
                                "probability": round(float(np.max(w.proba)), 5) if w.status == OK else None}
                               for w in self.windows]
        return out

    def to_json(self, *, top_k: int = 3, timeline: bool = False) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(top_k=top_k, timeline=timeline))


class Predictor:
    """A bundle ready to predict on audio. ``bundle``: a bundle folder, a run folder holding ``bundle/``, a
    folder of profiles (``fast/``, ``accurate/``), or None for the packaged default model; ``profile`` picks
    one of a folder's profiles (default :data:`DEFAULT_PROFILE`)."""

    def __init__(self, bundle: str | Path | None = None, *, backend: str = "torch", profile: str | None = None,
                 patches: int | None = None):
        """``patches``: 3 s patches read per segment by every input that reads patches, instead of the bundle's
        ``eval.predict_params`` (0: all of them; more is slower and closer to how the model was trained)."""
        from genrefusion.bundle import load_bundle

        folder = resolve_bundle(bundle, profile)
        self.folder = folder
        self.fitted, self.meta = load_bundle(folder)
        self.labels = self.fitted.labels
        self.sources, self.sr = audio_sources(self.meta, folder)
        if patches is not None:
            for s in self.sources.values():
                if "patches" in get_feature(s.feature).params:
                    s.params = {**s.params, "patches": patches}
        sources = self.sources
        evaluation = self.meta.get("config", {}).get("eval", {})
        self.segment_s = float(evaluation.get("segment_s", 30.0))
        # every input reads only k 3 s patches of a segment: only those are decoded
        counts = {s.params.get("patches") for s in sources.values()}
        self.excerpts = int(counts.pop() or 0) if len(counts) == 1 else 0
        self.min_seconds = float(evaluation.get("min_seconds") or MIN_SECONDS)
        self.sure_probability = float(evaluation.get("sure_probability") or SURE_PROBABILITY)
        self.model = self.fitted.model
        if check_backend(backend) == "onnx":
            from genrefusion.inference.onnx import OnnxModel

            self.model = OnnxModel.for_bundle(folder, self.fitted)
        self.backend = check_backend(backend)

    @property
    def card(self) -> dict:
        """The model card: what the model is, what it was trained on and how well it did (:func:`model_card`)."""
        return model_card(self.folder, self.meta)

    def features(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Every input's array for signal ``y`` (mono float32 at ``self.sr``); shared features computed once."""
        done: dict[str, np.ndarray] = {}
        out = {}
        with shared_spectra(y):  # e.g. mel_image and summary_gtzan: one STFT; musicnn's layers: one pass
            for name, s in self.sources.items():
                key = repr((s.feature, sorted(s.params.items())))
                if key not in done:
                    done[key] = np.asarray(get_feature(s.feature).fn(y, sr=self.sr, **s.params))
                out[name] = done[key]
        return out

    def segment_starts(self, duration: float) -> list[float] | None:
        """Where the segments of a ``duration`` s signal start (s); None: read it whole. The last one ends at the
        signal's end."""
        if duration <= self.segment_s * 1.05:
            return None
        starts = [float(s) for s in np.arange(0.0, duration - self.segment_s, self.segment_s)]
        if starts[-1] + self.segment_s < duration - 0.5:  # the tail, read as one more full segment
            starts.append(duration - self.segment_s)
        return starts

    def pieces(self, duration: float, read: Callable[[float, float | None], np.ndarray]
               ) -> Iterator[tuple[float, float, np.ndarray]]:
        """``(start_s, length_s, signal)`` of each segment of a ``duration`` s signal, read by ``read(offset_s,
        duration_s or None for all)``: the whole segment, or where every input reads only some 3 s patches
        (``eval.predict_params.patches``), just those patches, one after another (a fraction of the decoding)."""
        starts = self.segment_starts(duration)
        spans = [(0.0, duration)] if starts is None else [(s, min(self.segment_s, duration - s)) for s in starts]
        for start, length in spans:
            if self.excerpts:
                chosen = patch_indices(max(1, int(length / PATCH_SECONDS)), self.excerpts)
                y = np.concatenate([read(start + i * PATCH_SECONDS, PATCH_SECONDS) for i in chosen])
            else:
                y = read(start, None if starts is None else length)
            yield start, length, y

    def segments(self, path: str | Path) -> Iterator[tuple[float, float, np.ndarray]]:
        """:meth:`pieces` of a file, decoded one at a time (a long file is never decoded whole)."""
        return self.pieces(audio.probe(path).duration,
                           lambda offset, seconds: audio.load(path, sr=self.sr, offset=offset, duration=seconds)[0])

    def track_data(self, feats: list[dict[str, np.ndarray]]):
        """The model's input data (a ``TrackData``) for signals whose inputs are ``feats`` (one :meth:`features`
        dict each)."""
        from genrefusion.track_data import InputData, TrackData

        inputs = {n: InputData(n, i.feature, i.layout, [f[n] for f in feats], i.fps)
                  for n, i in self.fitted.inputs.items()}
        return TrackData([str(k) for k in range(len(feats))], np.zeros(len(feats), np.int64), self.labels, inputs)

    def predict_signals(self, signals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
        """Window probabilities ``(n_windows, C)``, each window's signal index and start (s) in it."""
        from genrefusion.track_data import predict_windows

        data = self.track_data([self.features(y) for y in signals])
        windows = self.fitted.windowing.eval_windows(data)
        p, idx = predict_windows(self.model, data, self.fitted.windowing, windows=windows)
        return p, idx, windows

    def warm_up(self) -> None:
        """One prediction on quiet noise, so that imports and JIT compilation happen before real work."""
        y = 1e-3 * np.random.default_rng(0).standard_normal(int(self.segment_s * self.sr)).astype(np.float32)
        self.predict_signals([y])

    def predict(self, source: str | Path | np.ndarray, *, sr: int | None = None) -> Prediction:
        """The prediction for an audio file (``source`` a path; ``sr`` not given) or a signal in memory (an array,
        mono ``(n,)`` or channels first ``(channels, n)``, at ``sr`` Hz)."""
        if isinstance(source, (str, Path)):
            if sr is not None:
                raise ModelError("sr is for a signal in memory; a file's own rate is read from it", path=str(source))
            return self.predict_file(source)
        if sr is None:
            raise ModelError("a signal in memory needs its sample rate: predict(y, sr=...)")
        return self.predict_array(source, sr=sr)

    def predict_file(self, path: str | Path) -> Prediction:
        """A file's prediction; raises AudioError (naming the file) when it cannot be decoded."""
        return self.predict_pieces(str(path), self.segments(path))

    def predict_array(self, y: np.ndarray, *, sr: int, name: str = "<array>") -> Prediction:
        """The prediction for a signal in memory: mono ``(n,)`` or channels first ``(channels, n)``, at ``sr`` Hz."""
        y = np.asarray(y, np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0)
        if y.ndim != 1:
            raise ModelError(f"a signal is (n,) or (channels, n), got shape {y.shape}", path=name)
        if not np.all(np.isfinite(y)):
            raise ModelError("the signal has NaN or infinite samples", path=name)
        y = audio.resample(y, orig_sr=sr, target_sr=self.sr) if sr != self.sr else y
        return self.predict_pieces(name, self.pieces(y.size / self.sr, array_reader(y, self.sr)))

    def predict_pieces(self, name: str, pieces) -> Prediction:
        """The prediction for a file read as ``(start_s, length_s, signal)`` segments (:meth:`pieces`): silent
        segments (what was read of them) are ``no_music`` windows, the others' windows are predicted and
        aggregated to the file."""
        probs, windows, levels = [], [], []
        end = 0.0
        timed = any(i.fps for i in self.fitted.inputs.values())
        for start, length, y in pieces:
            seg_s = y.size / self.sr
            span = length if self.excerpts else seg_s  # excerpts: the patches read stand for the whole segment
            end = max(end, start + span)
            levels.append(level_db(y))
            if levels[-1] < SILENCE_DB:
                windows.append(WindowPrediction(start, start + span, np.zeros(len(self.labels)), NO_MUSIC))
                continue
            if span < self.min_seconds:  # a short file (a long file's tail is read as a full segment)
                continue
            p, _, wins = self.predict_signals([y])
            for row, (_, s) in zip(p, wins):
                w_end = min(seg_s, s + self.fitted.windowing.window_s) if timed else span
                windows.append(WindowPrediction(start + s, start + w_end, row))
            probs.append(p)
        windows.sort(key=lambda w: w.start_s)
        level = max(levels) if levels else float("-inf")
        zeros = np.zeros(len(self.labels))
        if end < self.min_seconds:
            return Prediction(name, self.labels, zeros, end, [], TOO_SHORT, level,
                              f"{end:.2f} s of audio; the model needs at least {self.min_seconds:g} s")
        if not probs:
            return Prediction(name, self.labels, zeros, end, windows, NO_MUSIC, level,
                              f"silence: its loudest parts are at {_db(level)}; music is above {SILENCE_DB:g} dBFS")
        p = np.concatenate(probs)
        proba = aggregate(p, np.zeros(len(p), np.int64), 1, self.meta.get("aggregate", "mean"))[0]
        if proba.max() < self.sure_probability:
            return Prediction(name, self.labels, proba, end, windows, NOT_SURE, level,
                              f"the best genre has {100 * proba.max():.0f} %, below {100 * self.sure_probability:.0f} %")
        return Prediction(name, self.labels, proba, end, windows, OK, level)


def array_reader(y: np.ndarray, sr: int) -> Callable[[float, float | None], np.ndarray]:
    """``read(offset_s, duration_s or None)`` over a signal in memory, as :meth:`Predictor.pieces` reads a file."""
    def read(offset: float, seconds: float | None) -> np.ndarray:
        first = int(round(offset * sr))
        return y[first:] if seconds is None else y[first:first + int(round(seconds * sr))]

    return read


#: audio features that reproduce arrays of the data in ../shared (for the advice of :func:`audio_sources`)
AUDIO_EXAMPLES = {"image_pixels": "mel_image, for GTZAN's spectrogram images",
                  "table_row": "summary_gtzan, for GTZAN's features_30_sec.csv"}


def audio_sources(meta: dict, folder: Path) -> tuple[dict[str, AudioSource], int]:
    """Each input's audio source (copies) and the one rate they read, from a bundle's metadata (read before, or
    without, loading the model); ModelError for a model that cannot predict on audio."""
    specs = {n: InputSpec.from_json(i) for n, i in meta["inputs"].items()}
    cannot = {n: s.feature for n, s in specs.items() if s.audio is None}
    if cannot:
        how = "; ".join(f"inputs.{n}.audio_feature: the audio feature giving {f}'s array" + (
            f" (e.g. {AUDIO_EXAMPLES[f]})" if f in AUDIO_EXAMPLES else "") for n, f in cannot.items())
        raise ModelError(f"trained on inputs that are not audio ({', '.join(f'{n}: {f}' for n, f in cannot.items())})"
                         f" and not told how to compute them from audio; set {how}; and train again (`genrefusion "
                         f"evaluate RUN --input NAME=FEATURE` scores such a run on audio without retraining)", path=folder)
    sources = {n: AudioSource(s.audio.feature, dict(s.audio.params), s.audio.sr) for n, s in specs.items()}
    rates = {s.sr for s in sources.values()}
    if len(rates) != 1:
        raise ModelError(f"the model's inputs read audio at different rates {sorted(rates)}", path=folder)
    return sources, rates.pop()


def check_backend(backend: str) -> str:
    if backend not in ("torch", "onnx"):
        raise UsageError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    return backend


def _db(level: float) -> str:
    return f"{level:.1f} dBFS" if np.isfinite(level) else "-inf dBFS, digital silence"


def model_card(folder: Path, meta: dict) -> dict:
    """What ``model info``, ``GET /model`` and the web page show of a bundle (``meta``: its bundle.json): no
    server paths, only what the model is and how well it did."""
    card = dict(meta.get("card", {}))
    if "/" in card.get("trained_on", ""):  # bundles made before cards named collections: their folders' names
        card["trained_on"] = " + ".join(Path(p.strip()).name for p in card["trained_on"].split(" + "))
    return {"name": meta.get("config", {}).get("name"), "profile": folder.name if folder.name in PROFILES else None,
            "labels": meta["labels"], **card, "created": meta.get("created"),
            "inputs": {n: (i.get("audio") or {}).get("feature") for n, i in meta["inputs"].items()},
            "segment_s": float(meta.get("config", {}).get("eval", {}).get("segment_s", 30.0)),
            "size_mb": round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 2),
            "versions": meta.get("versions")}


def resolve_bundle(bundle: str | Path | None, profile: str | None = None) -> Path:
    """The bundle folder meant by ``bundle`` (None: the packaged default model) and ``profile`` (for a folder
    of profiles; None: :data:`DEFAULT_PROFILE`)."""
    if profile is not None and profile not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    folder = DEFAULT_ROOT if bundle is None else Path(bundle)
    if (folder / "bundle" / "bundle.json").is_file():
        folder = folder / "bundle"
    if (folder / (profile or DEFAULT_PROFILE) / "bundle.json").is_file():
        return folder / (profile or DEFAULT_PROFILE)
    if bundle is None:
        raise ModelError("the packaged default model is missing; reinstall genrefusion or pass --model",
                         path=folder / (profile or DEFAULT_PROFILE))
    if not folder.exists():
        raise ModelError("model bundle not found", path=folder)
    if profile is not None and (folder / "bundle.json").is_file():
        raise ModelError(f"this bundle has no profiles; --profile {profile} picks one of the shipped model's "
                         f"(or of a folder holding {' and '.join(f'{p}/' for p in PROFILES)})", path=folder)
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


# One predictor per worker process, made by the pool's setup.
_WORKER: Predictor | None = None


def _init_worker(bundle, backend, profile) -> None:
    import torch

    global _WORKER
    reuse_freed_memory()
    torch.set_num_threads(1)  # the pool gives the parallelism; threads inside each would fight for cores
    _WORKER = Predictor(bundle, backend=backend, profile=profile)
    _WORKER.warm_up()


def _predict_one(path: str) -> tuple[str, Prediction | None, str | None]:
    return _predict_with(_WORKER, path)


def _predict_with(predictor: Predictor, path: str) -> tuple[str, Prediction | None, str | None]:
    try:
        return path, predictor.predict_file(path), None
    except GenreFusionError as err:
        return path, None, err.reason if err.path == path else str(err)


def predict_files(paths: list[str | Path], *, bundle: str | Path | None = None, workers: int | None = 1,
                  backend: str = "torch", ordered: bool = True, predictor: Predictor | None = None,
                  profile: str | None = None, engine: str = "local",
                  address: str | None = None) -> Iterator[tuple[str, Prediction | None, str | None]]:
    """``(path, prediction, None)`` or ``(path, None, reason)`` per file (the reason in words, without the
    path); ``workers`` processes, or with ``engine="ray"`` Ray actors on the cluster at ``address`` (``workers``
    None: one per CPU of the cluster).

    A bad file gives its reason and the others go on. ``ordered=False`` yields as files finish.
    ``predictor``: an already loaded one for the in-process case (``workers`` 1). That case makes
    this process keep its freed memory (:func:`reuse_freed_memory`), as the workers do.
    """
    paths = [str(p) for p in paths]
    if engine == "local" and (workers is None or workers <= 1 or len(paths) <= 1):
        reuse_freed_memory()
        if predictor is None:
            with single_threaded():  # an ONNX session fixes its thread count when it is made
                predictor = Predictor(bundle, backend=backend, profile=profile)
        for p in paths:
            with single_threaded():
                result = _predict_with(predictor, p)
            yield result
        return
    from genrefusion.workers import CRASHED, engine_pool, map_ordered

    pool = engine_pool(engine, address)
    kwargs = dict(workers=workers, setup=_init_worker, setup_args=(bundle, backend, profile))
    results = map_ordered(_predict_one, paths, pool=pool, **kwargs) if ordered else pool(_predict_one, paths, **kwargs)
    for path, result in results:
        yield result if result is not None else (path, None, CRASHED)


def expand_paths(items: list[str | Path]) -> tuple[list[Path], list[audio.Skipped]]:
    """Audio files named by ``items``: files, folders (recursive) and globs (``**`` recurses).

    Returns the files in order without repeats, and every item or folder entry not taken, with
    its reason (:func:`genrefusion.audio.scan_audio`); an item that names no audio at all is one.
    """
    import glob

    files: list[Path] = []
    skipped: list[audio.Skipped] = []
    for item in map(str, items):
        p = Path(item)
        if p.is_dir():
            found, passed = audio.scan_audio(p)
            skipped += passed
            if not found:
                skipped.append(audio.Skipped(item, "no audio files in this folder", True))
            files += found
            continue
        problem = audio.path_problem(p)
        if problem is None or problem == "empty file (0 bytes)":
            files.append(p)  # named explicitly: tried whatever its extension, so its error is shown
        elif glob.has_magic(item) and problem == "file not found":
            found = sorted(Path(f) for f in glob.glob(item, recursive=True))
            taken = [f for f in found if audio.path_problem(f) is None]
            skipped += [audio.Skipped(str(f), audio.path_problem(f), True) for f in found if f not in taken]
            if not found:
                skipped.append(audio.Skipped(item, "no file matches this pattern", True))
            files += taken
        else:
            skipped.append(audio.Skipped(item, problem, True))
    seen: set[Path] = set()
    return [f for f in files if not (f in seen or seen.add(f))], skipped
