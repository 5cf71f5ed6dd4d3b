"""The speed suite: what a track costs, stage by stage, on this machine, in one run.

For real 30 s clips, as FLAC and as 44.1 kHz stereo MP3: decoding; every registered audio feature; for
each shipped profile of the default model, its inputs, its branches, prediction at each patch count
(the speed side of the cross suite's curve), full prediction from file to probabilities over 300 files
with 2 worker processes, start-up included (the targets), and with 1; peak memory; and, in the same
run, a naive baseline (librosa per clip in one process: ``librosa.load`` and the same features through
plain librosa calls, musicnn on every patch, the model on one clip at a time) so that the ratio to it
means the same on another machine.
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


#: the speed suite's end-to-end runs: this many files, the clips copied over and over (the target counts start-up
FILES = 300
#: patch counts timed for the speed/accuracy curve (0: every patch), as the cross suite scores them
CURVE = (1, 2, 3, 5, 0)


def measure_speed(clips: list[Path], *, bundle: str | Path | None = None, profiles: tuple[str, ...] | None = None,
                  feature_clips: int = 5, files: int = FILES, baseline_clips: int = 20,
                  log: Callable[[str], None] = print) -> SpeedResult:
    """Time every stage on ``clips`` (30 s audio files): decoding, every audio feature, then for each model (the
    shipped profiles, or ``bundle``): its inputs, its branches, prediction at each patch count of :data:`CURVE`
    on one core, end-to-end prediction of ``files`` files as FLAC and as 44.1 kHz stereo MP3 with 2 workers
    including start-up, in one process, and the naive baseline on ``baseline_clips`` clips."""
    from genrefusion.features import dsp
    from genrefusion.inference.predictor import PROFILES, reuse_freed_memory

    reuse_freed_memory()  # as prediction does (and so for every row, the naive baseline's too)
    t_start = time.perf_counter()
    res = SpeedResult(n_clips=len(clips), fft_backend=dsp.default_fft_backend())
    models = [(None, bundle)] if bundle is not None else [(p, None) for p in (profiles or PROFILES)]
    tmp = Path(tempfile.mkdtemp(prefix="genrefusion-speed-"))
    try:
        sets = {"FLAC": _copies(clips, tmp / "flac", files),
                "MP3": _copies(_mp3(clips, tmp / "mp3-encoded"), tmp / "mp3", files)}
        _time_decoding(res, clips, sorted((tmp / "mp3-encoded").iterdir()), log)
        _time_features(res, clips, feature_clips, log)
        worker_peak = 0.0
        for i, (profile, folder) in enumerate(models):
            # the shipped profiles are one model read at different patch counts: its curve is timed once
            worker_peak = max(worker_peak, _time_model(res, profile, folder, clips, sets, feature_clips,
                                                       baseline_clips, log, curve=i == 0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.peak_rss_mb["this process (features, branches, in-process prediction)"] = _peak_mb(resource.RUSAGE_SELF)
    res.peak_rss_mb["largest worker process"] = worker_peak
    res.seconds = time.perf_counter() - t_start
    return res


def _copies(clips: list[Path], folder: Path, n: int) -> list[Path]:
    """``n`` files in ``folder``: the clips copied round and round under new names."""
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        src = clips[i % len(clips)]
        out.append(folder / f"{i:04d}-{src.name}")
        shutil.copyfile(src, out[-1])
    return out


def _mp3(clips: list[Path], folder: Path) -> list[Path]:
    """Each clip as a 44.1 kHz stereo MP3 at 128 kb/s, as a shop or a ripper gives them."""
    from genrefusion import audio

    folder.mkdir(parents=True)
    out = []
    for c in clips:
        y, sr = audio.load(c, sr=44100)
        out.append(audio.encode(folder / f"{c.stem}.mp3", np.stack([y, y], axis=1), sr=sr))
    return out


def _time_decoding(res: SpeedResult, flac: list[Path], mp3: list[Path], log) -> None:
    from genrefusion import audio
    from genrefusion.pretrained.musicnn_spec import PATCH_SECONDS, SR

    for what, files, seconds in (("FLAC 22 050 Hz mono, whole clip", flac, None),
                                 ("MP3 44 100 Hz stereo, whole clip", mp3, None),
                                 ("MP3 44 100 Hz stereo, one 3 s patch from the middle", mp3, PATCH_SECONDS)):
        middle = {f: max(0.0, audio.probe(f).duration - PATCH_SECONDS) / 2 if seconds else 0.0 for f in files}
        audio.load(files[0], sr=SR, offset=middle[files[0]], duration=seconds)  # warm-up
        secs = _clock(lambda: [audio.load(f, sr=SR, offset=middle[f], duration=seconds) for f in files])
        res.timings.append(Timing("decode", f"{what}, to {SR} Hz mono", len(files), secs, 30.0 * len(files)))
        log(f"decode {what}: {len(files) / secs:.1f} clips/s")


def _time_features(res: SpeedResult, clips: list[Path], feature_clips: int, log) -> None:
    """Every registered audio feature on clips decoded at 22 050 Hz."""
    from genrefusion import audio
    from genrefusion.features.registry import FEATURES

    sr = 22050
    signals = [audio.load(c, sr=sr)[0] for c in clips[:feature_clips]]
    durations = [y.size / sr for y in signals]
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
    log("features timed")


def model_name(profile: str | None) -> str:
    return f"{profile} profile" if profile else "the bundle"


def _time_model(res: SpeedResult, profile: str | None, bundle, clips: list[Path], sets: dict[str, list[Path]],
                feature_clips: int, baseline_clips: int, log, curve: bool = True) -> float:
    """One model's rows (with ``curve``, prediction at each patch count of :data:`CURVE` where its inputs read
    patches); returns its workers' peak memory (MB)."""
    from genrefusion import audio
    from genrefusion.errors import FeatureError
    from genrefusion.inference.predictor import Predictor, array_reader, predict_files

    name = model_name(profile)
    predictor = Predictor(bundle, profile=profile)
    sr = predictor.sr
    signals = [audio.load(c, sr=sr)[0] for c in clips]
    durations = [y.size / sr for y in signals]
    total_audio = float(sum(durations))
    predictor.predict_array(signals[0], sr=sr)  # warm-up: imports, caches
    n = min(len(signals), feature_clips)
    inputs = ", ".join(sorted({s.feature for s in predictor.sources.values()}))
    pieces = [np.concatenate([y for *_, y in predictor.pieces(d, array_reader(y, sr))]) for y, d in zip(signals, durations)]
    for fft, secs in _time_fft_backends(lambda: [predictor.features(y) for y in pieces[:n]]).items():
        what = f"{name}: its inputs together ({inputs}), {fft} FFT"
        if isinstance(secs, FeatureError):  # ducc0 not installed
            res.timings.append(Timing("feature", what, 0, 0.0, 0.0, note=f"not measured: {secs}"))
        else:
            res.timings.append(Timing("feature", what, n, secs, float(sum(durations[:n])),
                                      note=f"what prediction reads; median of {FFT_ROUNDS} interleaved rounds"))
    _time_branches(res, name, predictor, [predictor.features(y) for y in pieces], total_audio)
    if curve and any("patches" in s.params for s in predictor.sources.values()):
        for k in CURVE:
            reading = Predictor(bundle, profile=profile, patches=k)
            reading.predict_array(signals[0], sr=sr)
            secs = _clock(lambda: [reading.predict_array(y, sr=sr) for y in signals[:n]])
            patches = "every patch" if k == 0 else f"{k} patch{'es' * (k > 1)}"
            res.timings.append(Timing("model", f"{name}'s model, {patches} per 30 s", n, secs, float(sum(durations[:n])),
                                      note="decoded clips, one core: features and model"))
        log(f"{name}: patch curve timed")
    import importlib.util

    worker_peak = 0.0
    # the Ray engine (a local Ray started for the run, 2 actors) beside 2 local workers, on FLAC, when installed
    runs = [(1, "local"), (2, "local")] + ([(2, "ray")] if importlib.util.find_spec("ray") else [])
    for fmt, files in sets.items():
        for workers, engine in runs:
            if (workers == 1 or engine == "ray") and fmt != "FLAC":
                continue
            gc.collect()
            memory = _WorkerMemory()
            t0 = time.perf_counter()
            failed = 0
            first = t0
            chosen = files if workers == 2 else files[:len(clips)]
            for i, (_, _, error) in enumerate(predict_files(chosen, bundle=bundle, profile=profile, workers=workers,
                                                            ordered=False, engine=engine)):
                failed += error is not None
                if i == 0:
                    first = time.perf_counter()
                if i % 10 == 1:  # a worker's memory peaks on its first clips; sampling costs ~10 ms
                    memory.sample()
            wall = time.perf_counter() - t0
            worker_peak = max(worker_peak, memory.peak_mb)
            who = f"{workers} Ray actors" if engine == "ray" else f"{workers} worker{'s' * (workers > 1)}"
            what = f"{name}, {fmt}, {who}, {len(chosen)} files, with start-up"
            res.timings.append(Timing("predict", what, len(chosen), wall, 30.0 * len(chosen),
                                      note=f"{failed} failed" if failed else ""))
            if workers == 2 and fmt == "FLAC":  # the rate a long run settles at: start-up (Ray's ~4 s) left out
                res.timings.append(Timing("steady", f"{name}, {fmt}, {who}, {len(chosen) - 1} files after the first",
                                          len(chosen) - 1, wall - (first - t0), 30.0 * (len(chosen) - 1),
                                          note=f"first result after {first - t0:.1f} s"))
            log(f"predict {what}: {len(chosen) / wall:.1f} clips/s")
    k = min(len(clips), baseline_clips)
    base = _naive_baseline(clips[:k], predictor)
    res.timings.append(Timing("baseline", f"{name}: {NAIVE}", k, base, float(sum(durations[:k]))))
    log(f"{name} naive baseline: {k / base:.1f} clips/s")
    return worker_peak


#: what the naive baseline does
NAIVE = "naive: librosa per clip, every patch in one batch, one process"


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


def _time_branches(res: SpeedResult, name: str, predictor, feats: list[dict], total_audio: float) -> None:
    """Each branch of the model alone, then the whole model, on all clips' inputs in one batch (as ``predict``
    batches them)."""
    import torch

    from genrefusion.track_data import make_batch

    fitted = predictor.fitted
    data = predictor.track_data(feats)
    x = make_batch(data, fitted.windowing.eval_windows(data), fitted.windowing.window_s)
    model = fitted.model
    for branch in model.branches:
        fn = lambda branch=branch: model.run_branch(branch, x)  # noqa: E731
        with torch.no_grad():
            fn()
            secs = _clock(fn, repeat=3)
        res.timings.append(Timing("branch", f"{name}: {branch}", len(feats), secs, total_audio,
                                  note="one batch of all clips"))
    with torch.no_grad():
        secs = _clock(lambda: model.predict(x), repeat=3)
    res.timings.append(Timing("branch", f"{name}: whole model (branches + fusion)", len(feats), secs, total_audio,
                              note="one batch of all clips"))


def _naive_baseline(clips: list[Path], predictor) -> float:
    """The same model's prediction done the plain way: per clip, librosa's loader and feature functions
    (:mod:`genrefusion.features.reference`; a feature without a reference runs as registered), each
    input on its own (musicnn: every patch, in one batch), a batch of one."""
    import librosa
    import torch

    from genrefusion.evaluation.metrics import aggregate
    from genrefusion.features.reference import REFERENCES
    from genrefusion.features.registry import get_feature
    from genrefusion.track_data import predict_windows

    def one(path):
        y, sr = librosa.load(str(path), sr=predictor.sr)  # decoding and resampling as librosa does it
        feats = {n: np.asarray(REFERENCES.get(s.feature, get_feature(s.feature).fn)(y, sr=sr, **s.params))
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
    colours = {"decode": "#8172b2", "feature": "#4c72b0", "branch": "#55a868", "model": "#64b5cd", "predict": "#c44e52", "steady": "#dd8452",
               "baseline": "#777777"}
    ax.barh(range(len(rows)), [t.clips_per_s for t in rows], color=[colours[t.stage] for t in rows])
    ax.set_yticks(range(len(rows)), [f"{t.stage}: {t.what}" for t in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    for target in TARGETS.values():
        ax.axvline(target, color="#c44e52", ls="--", lw=1)
    ax.set_xlabel("clips (30 s) per second, log scale; dashed: the profiles' targets (" +
                  ", ".join(f"{p} {v:g}" for p, v in TARGETS.items()) + " clips/s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


#: clips/s with 2 workers, start-up included, that each shipped profile is meant to reach; and the least ratio to
#: the naive baseline
TARGETS = {"fast": 20.0, "accurate": 5.0}
TARGET_RATIO = 5.0


def speed_summary(res: SpeedResult) -> list[tuple[str, dict]]:
    """Per model: clips/s end to end (2 workers, start-up included) on FLAC and on MP3, the naive baseline's, and
    the worse of the two ratios to it."""
    out = []
    for base in (t for t in res.timings if t.stage == "baseline"):
        name = base.what.split(": ")[0]
        e2e = {t.what.split(", ")[1]: t.clips_per_s for t in res.timings
               if t.stage == "predict" and t.what.startswith(name + ",") and ", 2 workers" in t.what}
        if e2e:
            out.append((name, {"e2e": e2e, "baseline": base.clips_per_s,
                               "ratio": min(e2e.values()) / base.clips_per_s}))
    return out


def speed_markdown(res: SpeedResult, plot_name: str, provenance: str = "") -> list[str]:
    """The speed section of BENCHMARKS.md (``provenance``: the line naming the command that measured it)."""
    lines = ["## Speed (`speed`)", "", *([provenance, ""] if provenance else []),
             f"{res.n_clips} real GTZAN clips of 30 s (FLAC, 22 050 Hz mono), and the same clips as MP3 (44 100 Hz stereo, "
             f"128 kb/s), measured in one run of {res.seconds:.0f} s with {res.fft_backend}'s FFT. End to end: "
             "`predict_files` over the files (the clips copied round to that number), worker processes started, "
             "imports and model loading included. The naive baseline runs the same model the plain way in one process: "
             "librosa's loader and mel spectrogram, musicnn on every patch in one batch, one clip at a time.", ""]
    summary = speed_summary(res)
    if summary:
        lines += ["| model | FLAC, 2 workers | MP3, 2 workers | target | naive baseline | worse ratio to it (target "
                  f"{TARGET_RATIO:g}x) |", "|---|---|---|---|---|---|"]
        for name, m in summary:
            target = TARGETS.get(name.split(" ")[0])
            lines.append(f"| {name} | {m['e2e'].get('FLAC', 0):.1f} | {m['e2e'].get('MP3', 0):.1f} | "
                         f"{f'{target:g}' if target else '—'} | {m['baseline']:.2f} | **{m['ratio']:.1f}x** |")
        lines += ["", "clips/s; every file a 30 s clip.", ""]
    ray = {t.what.split(",")[0]: t.clips_per_s for t in res.timings if t.stage == "predict" and "Ray actors" in t.what}
    steady = {(t.what.split(",")[0], "Ray" in t.what): t.clips_per_s for t in res.timings if t.stage == "steady"}
    if ray:
        lines += ["The Ray engine (`--engine ray`: 2 actors on a local Ray started for the run) against 2 local worker "
                  "processes on the same FLAC files, in this run (target ≥ 0.8x; [SCALING.md](SCALING.md)), with "
                  "start-up and after the first result (the rate a long run settles at): " + "; ".join(
                      f"{name} {clips:.1f} clips/s, **{clips / m['e2e']['FLAC']:.2f}x** with start-up, "
                      f"**{steady[n, True] / steady[n, False]:.2f}x** after it" for name, m in summary
                      for n, clips in ray.items()
                      if n == name and m["e2e"].get("FLAC") and (n, True) in steady and (n, False) in steady) + ".", ""]
    curve = [t for t in res.timings if t.stage == "model"]
    if curve:
        lines += ["Prediction by 3 s patches read per 30 s segment (decoded clips, one core; the cross suite scores the "
                  "same settings):", "", "| model, patches | clips/s on one core |", "|---|---|"]
        lines += [f"| {t.what} | {t.clips_per_s:.1f} |" for t in curve]
        lines.append("")
    lines += ["Every stage:", "", "| stage | what | clips | clips/s | real-time factor | note |", "|---|---|---|---|---|---|"]
    for t in res.timings:
        if t.clips == 0:
            lines.append(f"| {t.stage} | {t.what} | — | — | — | {t.note} |")
        else:
            lines.append(f"| {t.stage} | {t.what} | {t.clips} | {t.clips_per_s:.1f} | {t.rtf:.4f} | {t.note} |")
    lines += ["", "Real-time factor = processing seconds per second of audio.", "",
              "Peak resident memory: " + "; ".join(f"{k} {v:.0f} MB" for k, v in res.peak_rss_mb.items()) + ".", "",
              f"![throughput](benchmarks/{plot_name})", ""]
    return lines
