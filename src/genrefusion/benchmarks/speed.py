"""The speed suite: what a track costs, stage by stage, on this machine, in one run.

For real 30 s clips: decoding; every registered audio feature; each branch of the default model
on its inputs (torch, and ONNX where exported); full prediction from file to probabilities with
1 and 2 worker processes; peak memory; and, in the same run, a naive baseline (librosa per clip in
one process: ``librosa.load`` and the same features through plain librosa calls, the model on one
clip at a time) so that the ratio to it means the same on another machine.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from unittest.mock import patch

import numpy as np

#: features too slow to time on every clip: measured on the first few only
SLOW_FEATURES = ("summary_rich", "musicnn_embedding", "musicnn_tags", "hpss", "summary_gtzan")


@dataclass
class Timing:
    stage: str
    what: str
    clips: int
    seconds: float
    audio_s: float
    note: str = ""

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("inf")

    @property
    def rtf(self) -> float:
        """Real-time factor: processing seconds per second of audio (lower is faster)."""
        return self.seconds / self.audio_s if self.audio_s > 0 else float("nan")


@dataclass
class SpeedResult:
    timings: list[Timing] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    n_clips: int = 0
    seconds: float = 0.0
    fft_backend: str = "numpy"  # what every row but the per-backend feature rows used (the workers' too)

    def get(self, stage: str, what: str) -> Timing | None:
        return next((t for t in self.timings if t.stage == stage and t.what == what), None)


def _clock(fn: Callable[[], object], repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


FFT_ROUNDS = 5  # the FFT backends take turns: a drift in the machine's speed (seen: +-15 % over minutes) hits both


def _time_fft_backends(fn: Callable[[], object]) -> dict[str, float | Exception]:
    """Seconds ``fn`` takes under each FFT backend (median of interleaved rounds), or why it could not run."""
    from genrefusion.errors import FeatureError
    from genrefusion.features import dsp

    rounds: dict[str, list[float] | Exception] = {name: [] for name in dsp.FFT_BACKENDS}
    for r in range(FFT_ROUNDS):
        for name in sorted(rounds, reverse=bool(r % 2)):
            if isinstance(rounds[name], list):
                try:
                    with dsp.fft_backend(name):
                        rounds[name].append(_clock(fn))
                except FeatureError as err:
                    rounds[name] = err
    return {name: v if isinstance(v, Exception) else float(np.median(v)) for name, v in rounds.items()}


def measure_speed(clips: list[Path], *, bundle: str | Path | None = None, feature_clips: int = 5,
                  log: Callable[[str], None] = print) -> SpeedResult:
    """Time every stage on ``clips`` (30 s audio files). ``feature_clips``: clips per feature timing."""
    from genrefusion import audio
    from genrefusion.errors import FeatureError
    from genrefusion.features import dsp
    from genrefusion.features.registry import FEATURES
    from genrefusion.inference.predictor import Predictor, predict_files, reuse_freed_memory

    reuse_freed_memory()  # as prediction does (and so for every row, the naive baseline's too)
    t_start = time.perf_counter()
    res = SpeedResult(n_clips=len(clips), fft_backend=dsp.default_fft_backend())
    predictor = Predictor(bundle)
    sr = predictor.sr
    signals = [audio.load(c, sr=sr)[0] for c in clips[:2]]  # warm-up: imports, JIT, caches
    predictor.predict_signals(signals[:1])

    t0 = time.perf_counter()
    signals = [audio.load(c, sr=sr)[0] for c in clips]
    decode_s = time.perf_counter() - t0
    durations = [y.size / sr for y in signals]
    total_audio = float(sum(durations))
    res.timings.append(Timing("decode", f"audio.load at {sr} Hz", len(clips), decode_s, total_audio))
    log(f"decode: {len(clips) / decode_s:.1f} clips/s")

    for name, spec in sorted(FEATURES.items()):
        if spec.input != "audio":
            continue
        n = min(len(signals), 2 if name in SLOW_FEATURES else feature_clips)
        try:
            spec.fn(signals[0], sr=sr, **spec.params)  # warm-up
            secs = _clock(lambda: [spec.fn(y, sr=sr, **spec.params) for y in signals[:n]])
            res.timings.append(Timing("feature", name, n, secs, float(sum(durations[:n]))))
        except Exception as err:  # a feature whose weights are not installed, for instance
            res.timings.append(Timing("feature", name, 0, 0.0, 0.0, note=f"not measured: {type(err).__name__}: {err}"))
    n = min(len(signals), feature_clips)
    inputs = ", ".join(sorted({s["feature"] for s in predictor.sources.values()}))
    for fft, secs in _time_fft_backends(lambda: [predictor.features(y) for y in signals[:n]]).items():
        what = f"the model's inputs together ({inputs}; one shared STFT), {fft} FFT"
        if isinstance(secs, FeatureError):  # ducc0 not installed
            res.timings.append(Timing("feature", what, 0, 0.0, 0.0, note=f"not measured: {secs}"))
        else:
            res.timings.append(Timing("feature", what, n, secs, float(sum(durations[:n])),
                                      note=f"with the bundle's parameters; median of {FFT_ROUNDS} interleaved rounds"))
    log("features timed")

    feats = [predictor.features(y) for y in signals]
    _time_branches(res, predictor, feats, total_audio)
    log("branches timed")

    worker_peak = 0.0
    for backend in ("torch", "onnx"):
        folder = predictor.folder
        tmp = None
        if backend == "onnx":
            from genrefusion.inference.onnx import export_onnx

            tmp = Path(tempfile.mkdtemp(prefix="genrefusion-speed-"))
            folder = shutil.copytree(predictor.folder, tmp / "bundle")
            export_onnx(folder)
        settings: list[tuple[int, str | None]] = [(1, None), (2, None)]
        if backend == "onnx" and res.fft_backend != "numpy":
            settings.append((2, "numpy"))  # the best setting without the [fast] extra (workers read GENREFUSION_FFT)
        for workers, fft in settings:
            gc.collect()
            t0 = time.perf_counter()
            stamps = []
            failed = 0
            memory = _WorkerMemory()
            with patch.dict(os.environ, {"GENREFUSION_FFT": fft} if fft else {}):  # restored after the block
                for _, _, error in predict_files(clips, bundle=folder, workers=workers, backend=backend, ordered=False):
                    stamps.append(time.perf_counter())
                    failed += error is not None
                    if len(stamps) % 10 == 1:  # a worker's memory peaks on its first clips; sampling costs ~10 ms
                        memory.sample()
            worker_peak = max(worker_peak, memory.peak_mb)
            wall = time.perf_counter() - t0
            half = len(stamps) // 2  # the second half: every worker has started and warmed up by then
            steady = (stamps[-1] - stamps[half]) / (len(stamps) - 1 - half) * len(clips) if len(stamps) > 2 else wall
            setting = f"{backend}, {workers} worker(s)" + (f", {fft} FFT" if fft else "")
            res.timings.append(Timing("predict", f"{setting}, with start-up", len(clips), wall,
                                      total_audio, note=f"{failed} failed" if failed else ""))
            res.timings.append(Timing("predict", f"{setting}, steady state", len(clips), steady,
                                      total_audio, note="second half of the clips: start-up, imports and warm-up excluded"))
            log(f"predict {setting}: {len(clips) / steady:.1f} clips/s steady, {len(clips) / wall:.1f} with start-up")
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    base = _naive_baseline(clips, predictor)
    res.timings.append(Timing("baseline", "naive: librosa per clip, one process, one clip per forward pass",
                              len(clips), base, total_audio))
    log(f"naive baseline: {len(clips) / base:.1f} clips/s")
    res.peak_rss_mb["this process (features, branches, in-process prediction)"] = _peak_mb(resource.RUSAGE_SELF)
    res.peak_rss_mb["largest worker process"] = worker_peak
    res.seconds = time.perf_counter() - t_start
    return res


class _WorkerMemory:
    """The largest peak resident memory (``VmHWM``) among this process's worker processes, sampled
    while they run. (``getrusage(RUSAGE_CHILDREN)`` would count each spawned worker's parent-sized
    memory from before its ``exec``.)"""

    def __init__(self):
        self.peak_mb = 0.0

    def sample(self) -> None:
        me = str(os.getpid())
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            except OSError:
                continue  # gone meanwhile
            if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
                self.peak_mb = max(self.peak_mb, int(fields["VmHWM"].split()[0]) / 1024)


def _peak_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _time_branches(res: SpeedResult, predictor, feats: list[dict], total_audio: float) -> None:
    """Each branch of the bundle alone, on all clips' inputs in one batch (as ``predict`` batches them)."""
    import torch

    from genrefusion.training.data import make_batch

    fitted = predictor.fitted
    data = predictor.track_data(feats)
    x = make_batch(data, fitted.windowing.eval_windows(data), fitted.windowing.window_s)
    model = fitted.model
    branches = getattr(model, "branches", {})
    for name, b in branches.items():
        if hasattr(b, "prepare"):
            fn = lambda b=b, name=name: b(b.prepare([x[i] for i in model.branch_inputs[name]]))  # noqa: E731
        else:
            fn = lambda b=b: b.eval()(x)  # noqa: E731
        with torch.no_grad():
            fn()
            secs = _clock(fn, repeat=3)
        res.timings.append(Timing("branch", f"{name} ({type(b).__name__})", len(feats), secs, total_audio,
                                  note="one batch of all clips"))
    with torch.no_grad():
        secs = _clock(lambda: model.predict(x), repeat=3)
    res.timings.append(Timing("branch", "whole model (branches + fusion)", len(feats), secs, total_audio,
                              note="one batch of all clips"))


def _naive_baseline(clips: list[Path], predictor) -> float:
    """The same model's prediction done the plain way: per clip, librosa's loader and feature functions
    (:mod:`genrefusion.features.reference`; a feature without a reference runs as registered), each
    input on its own, a batch of one."""
    import librosa
    import torch

    from genrefusion.evaluation.metrics import aggregate
    from genrefusion.features.reference import REFERENCES
    from genrefusion.features.registry import get_feature
    from genrefusion.training.fit import predict_windows

    def one(path):
        y, sr = librosa.load(str(path), sr=predictor.sr)  # decoding and resampling as librosa does it
        feats = {n: np.asarray(REFERENCES.get(s["feature"], get_feature(s["feature"]).fn)(y, sr=sr, **s["params"]))
                 for n, s in predictor.sources.items()}
        p, idx = predict_windows(predictor.fitted.model, predictor.track_data([feats]), predictor.fitted.windowing)
        return aggregate(p, idx, 1, "mean")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one process, one core: the plain loop
    try:
        one(clips[0])
        return _clock(lambda: [one(c) for c in clips])
    finally:
        torch.set_num_threads(threads)


def plot_speed(res: SpeedResult, path: Path) -> Path:
    """Throughput bars (clips/s, log scale) of every measured stage."""
    from genrefusion.evaluation.report import _pyplot

    plt = _pyplot()
    rows = [t for t in res.timings if t.clips > 0]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 1.2))
    colours = {"decode": "#8172b2", "feature": "#4c72b0", "branch": "#55a868", "predict": "#c44e52", "baseline": "#777777"}
    ax.barh(range(len(rows)), [t.clips_per_s for t in rows], color=[colours[t.stage] for t in rows])
    ax.set_yticks(range(len(rows)), [f"{t.stage}: {t.what}" for t in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(20, color="#c44e52", ls="--", lw=1)
    ax.set_xlabel("clips (30 s) per second, log scale; dashed: the 20 clips/s target")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def speed_markdown(res: SpeedResult, plot_name: str, provenance: str = "") -> list[str]:
    """The speed section of BENCHMARKS.md (``provenance``: the line naming the command that measured it)."""
    lines = ["## Speed (`speed`)", "", *([provenance, ""] if provenance else []),
             f"{res.n_clips} real GTZAN clips of 30 s (FLAC, 22 050 Hz), the packaged default model, measured in one run "
             f"of {res.seconds:.0f} s, with {res.fft_backend}'s FFT (see the features' rows for the other). "
             "Real-time factor = processing seconds per second of audio.", "",
             "| stage | what | clips | clips/s | real-time factor | note |", "|---|---|---|---|---|---|"]
    for t in res.timings:
        if t.clips == 0:
            lines.append(f"| {t.stage} | {t.what} | — | — | — | {t.note} |")
        else:
            lines.append(f"| {t.stage} | {t.what} | {t.clips} | {t.clips_per_s:.1f} | {t.rtf:.4f} | {t.note} |")
    steady = [t for t in res.timings if t.stage == "predict" and "steady" in t.what]
    best = max(steady, key=lambda t: t.clips_per_s)
    base = res.get("baseline", "naive: librosa per clip, one process, one clip per forward pass")
    plain = [t for t in steady if "numpy FFT" in t.what]
    without_fast = (f" Without the `[fast]` extra ({plain[0].what}): {plain[0].clips_per_s:.1f} clips/s, "
                    f"{plain[0].clips_per_s / base.clips_per_s:.1f}x.") if plain else ""
    lines += ["", f"Full prediction, best setting ({best.what}): **{best.clips_per_s:.1f} clips/s** (target: 20+); "
              f"**{best.clips_per_s / base.clips_per_s:.1f}x** the naive baseline's {base.clips_per_s:.1f} clips/s "
              f"(target: 5x).{without_fast}", "",
              "Peak resident memory: " + "; ".join(f"{k} {v:.0f} MB" for k, v in res.peak_rss_mb.items()) + ".", "",
              f"![throughput](benchmarks/{plot_name})", ""]
    return lines
