"""A training run, end to end: config -> data -> protocol -> run folder.

The run folder holds ``config.yaml`` (what ran), ``split.csv`` (per evaluation), ``metrics.json``,
``report.md`` with plots, ``predictions.csv`` (test tracks' probabilities), and ``bundle/`` (the
first evaluation's model, self-describing). Checkpoints under ``checkpoints/`` let a killed run
resume where it stopped.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from genrefusion.bundle import save_bundle
from genrefusion.config import RunConfig, config_to_dict, save_config
from genrefusion.errors import ConfigError
from genrefusion.evaluation.metrics import RunMetrics, mean_std
from genrefusion.evaluation.report import plot_confusion, plot_history, write_confusion_csv, write_report
from genrefusion.track_data import Windowing
from genrefusion.training.fit import validate_config
from genrefusion.training.prepare import check_inputs, load_track_data, open_run_dataset
from genrefusion.training.protocols import Evaluation, get_protocol, refit_all


@dataclass
class RunSummary:
    """A finished run: its folder and its ``metrics.json`` (``result``: the same, typed)."""

    run_dir: Path
    metrics: dict

    @property
    def result(self) -> RunMetrics:
        return RunMetrics.from_dict(self.metrics)


def describe_model(cfg: RunConfig) -> str:
    branches = "+".join(b.model for b in cfg.branches.values())
    return branches + (f" [{cfg.fusion.strategy}/{cfg.fusion.mode}]" if cfg.fusion else "")


def summarize(evaluations: list[Evaluation]) -> dict:
    """Mean, std and values over evaluations (seeds, repeats, folds) of the track and window metrics,
    and of each fused branch alone; with the training seconds of all their networks."""
    return {"track": mean_std([e.track for e in evaluations]), "window": mean_std([e.window for e in evaluations]),
            "branches": {b: mean_std([e.track["branches"][b] for e in evaluations])
                         for b in evaluations[0].track.get("branches", {})},
            "training_seconds": training_seconds(evaluations)}


def training_seconds(evaluations: list[Evaluation]) -> float:
    """Training time of every network over the evaluations (a cached one counts the time it took then)."""
    return sum(r.seconds for e in evaluations for r in e.fitted.training.values())


def train_run(cfg: RunConfig, run_dir: str | Path, *, log: Callable[[str], None] = print,
              on_extract_progress=None) -> RunSummary:
    """Run ``cfg``'s protocol and write everything to ``run_dir``. All checks happen before training."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    validate_config(cfg)
    check_inputs(cfg)
    protocol = get_protocol(cfg.protocol.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    ds = open_run_dataset(cfg)
    data, problems = load_track_data(cfg, ds, on_progress=on_extract_progress)
    ds = ds.subset(data.ids)
    windowing = Windowing.resolve(data, cfg.train.window_s, cfg.train.hop_s)
    log(f"{ds.name}: {len(data)} tracks, {len(data.labels)} classes, inputs "
        + ", ".join(f"{n} {d.example_shape(windowing.window_s)}" for n, d in data.inputs.items())
        + f", windows of {windowing.window_s:.2f} s")
    evaluations = protocol(cfg, ds, data, windowing, run_dir, log)
    cm = np.sum([e.track["confusion"] for e in evaluations], axis=0)
    metrics = {
        "name": cfg.name, "data": cfg.data.path, "protocol": cfg.protocol.name, "model": describe_model(cfg),
        "labels": data.labels, "n_tracks": len(data),
        "windowing": {"window_s": windowing.window_s, "hop_s": windowing.hop_s,
                      "timed": any(d.timed for d in data.inputs.values())},
        "summary": summarize(evaluations),
        "confusion": cm.tolist(),  # test tracks, true x predicted, summed over the evaluations
        "evaluations": [{"name": e.name, "n_test": len(e.test_ids), "track": e.track, "window": e.window,
                         "training": {k: {"best_epoch": r.best_epoch, "best_valid_accuracy": r.best_accuracy,
                                          "epochs_run": len(r.history), "stopped_early": r.stopped_early,
                                          "resumed_from": r.resumed_from, "seconds": r.seconds}
                                      for k, r in e.fitted.training.items()}}
                        for e in evaluations],
        "seconds": time.perf_counter() - t0,
    }
    for key in ("grid", "best"):
        if key in evaluations[0].extra:
            metrics[key] = evaluations[0].extra[key]
    first = evaluations[0]
    shipped = refit_all(cfg, ds, data, windowing, run_dir, log) if cfg.protocol.refit else first.fitted
    write_confusion_csv(metrics["confusion"], data.labels, run_dir / "confusion.csv")
    plots = {"confusion matrix (test tracks, all evaluations)": plot_confusion(
        cm, data.labels, run_dir / "confusion.png", title=f"{cfg.name}: test tracks").name}
    hist = plot_history({k: r.history for k, r in first.fitted.training.items()}, run_dir / "training.png")
    if hist:
        plots["training curves"] = hist.name
    with open(run_dir / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["evaluation", "track_id", "genre", "predicted", *data.labels])
        for e in evaluations:
            for tid, p in zip(e.test_ids, e.test_proba):
                w.writerow([e.name, tid, ds[tid].genre, data.labels[int(np.argmax(p))], *[f"{x:.5f}" for x in p]])
    result = RunMetrics.from_dict(metrics)
    measured = {"evaluation": f"mean of {len(evaluations)} evaluation(s) ({cfg.protocol.name}); the bundle is refitted on "
                              f"all {len(data)} tracks", "n_test_tracks": sum(len(e.test_ids) for e in evaluations),
                "test_accuracy": result.accuracy.mean, "test_macro_f1": result.macro_f1.mean,
                "branches_test_accuracy": {b: v["accuracy"].mean for b, v in result.branches.items()}} \
        if cfg.protocol.refit else \
        {"evaluation": first.name, "n_test_tracks": len(first.test_ids), "test_accuracy": first.track["accuracy"],
         "test_macro_f1": first.track["macro_f1"],
         "branches_test_accuracy": {b: m["accuracy"] for b, m in first.track.get("branches", {}).items()}}
    save_bundle(shipped, run_dir / "bundle", aggregate=cfg.eval.aggregate, config=config_to_dict(cfg),
                card={"description": " ".join(cfg.description.split()),
                      "trained_on": ds.name.replace("+", " + "),  # the collections' names: no machine paths
                      "split": cfg.split.published or cfg.split.file or "random", "protocol": cfg.protocol.name,
                      **measured, "reference": cfg.reference,
                      "tracks_per_genre": {g: int((data.y == i).sum()) for i, g in enumerate(data.labels)}})
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_report(run_dir, metrics, config_to_dict(cfg), problems=problems, plots=plots)
    log(f"done in {metrics['seconds']:.1f} s: test accuracy {result.accuracy.mean:.4f} "
        f"-> {run_dir}")
    return RunSummary(run_dir, metrics)


#: ``evaluate_run(inputs=AUDIO_PATH)``: compute every input as prediction on audio files does (the bundle's
#: recorded audio features and parameters)
AUDIO_PATH = "audio"


def evaluate_run(run_dir: str | Path, *, data: str | Path | None = None, kind: str | None = None,
                 ids: list[str] | None = None, inputs: dict[str, str] | str | None = None, name: str | None = None,
                 shared_labels: bool = False, log: Callable[[str], None] = print) -> dict:
    """Re-evaluate a run's bundle: on the run's own test tracks, or on the tracks of another dataset
    (``ids``: only these).

    ``inputs`` maps an input name to another feature that yields the same array from another
    source, e.g. ``{"image": "mel_image", "table": "summary_gtzan"}`` applies a model trained on
    GTZAN's spectrogram PNGs and feature table to audio files; parameters the two features share (musicnn's
    ``model``, ``pool`` and ``layer``) carry over, the others take the new feature's defaults. ``inputs=AUDIO_PATH``
    computes every input as ``genrefusion predict`` does, with the bundle's own audio features and parameters.
    ``shared_labels``: for another collection, score only the labels it shares with the model (its other tracks
    are left out, and the model's other labels' probabilities are dropped and the rest renormalised).
    Writes ``evaluations/<name>/`` (metrics.json with each track's prediction, confusion matrix); returns the metrics.
    """
    from genrefusion.bundle import load_bundle
    from genrefusion.config import config_from_dict
    from genrefusion.evaluation.metrics import classification_metrics
    from genrefusion.features import get_feature
    from genrefusion.splits import Split
    from genrefusion.training.protocols import evaluate

    run_dir = Path(run_dir)
    fitted, meta = load_bundle(run_dir / "bundle")
    cfg = config_from_dict(meta["config"], source=str(run_dir / "bundle" / "bundle.json"))
    if data is not None:
        cfg.data.path, cfg.data.kind, cfg.data.exclude, cfg.data.genres = str(data), kind, [], []
        cfg.data.collections = []
    if inputs == AUDIO_PATH:
        for input_name, source in ((n, i.audio) for n, i in fitted.inputs.items()):
            if not source:
                raise ConfigError(f"input {input_name!r} cannot be computed from audio")
            cfg.inputs[input_name].feature, cfg.inputs[input_name].params = source.feature, dict(source.params)
            cfg.data.sr = source.sr
    else:
        for input_name, feature in (inputs or {}).items():
            if input_name not in cfg.inputs:
                raise ConfigError(f"the model has no input {input_name!r}; its inputs: {sorted(cfg.inputs)}")
            shared = get_feature(feature).params.keys() & cfg.inputs[input_name].params.keys()
            cfg.inputs[input_name].params = {k: cfg.inputs[input_name].params[k] for k in shared}
            cfg.inputs[input_name].feature = feature
    ds = open_run_dataset(cfg)
    if data is None:
        split = Split.load(run_dir / "split.csv", ds, leaky=cfg.split.leaky)
        ds = ds.subset(split.ids("test"))
    if ids is not None:
        ds = ds.subset([t for t in ids if t in ds])
    td, problems = load_track_data(cfg, ds, labels=fitted.labels)
    for n, d in td.inputs.items():
        want = tuple(fitted.inputs[n].shape)
        if d.example_shape(fitted.windowing.window_s) != want:
            raise ConfigError(f"input {n!r} ({d.feature}) gives examples of shape "
                              f"{d.example_shape(fitted.windowing.window_s)}; the model was trained on {want}")
    track, window, tp = evaluate(fitted, td, meta["aggregate"], cfg.eval.top_k)
    labels = fitted.labels
    if shared_labels:
        keep = sorted({labels[int(c)] for c in td.y}, key=labels.index)
        cols = [labels.index(g) for g in keep]
        tp = tp[:, cols] / np.clip(tp[:, cols].sum(1, keepdims=True), 1e-12, None)
        y = np.array([keep.index(labels[int(c)]) for c in td.y])
        track = {**classification_metrics(y, tp, keep, top_k=cfg.eval.top_k), "model_labels": labels}
        labels = keep
    name = name or ("test" if data is None else (Path(data).stem or "data"))
    out = run_dir / "evaluations" / name
    out.mkdir(parents=True, exist_ok=True)
    result = {"run": str(run_dir), "data": str(data or cfg.data.path), "n_tracks": len(td), "track": track,
              "window": window, "problems": problems,
              "inputs": {n: {"feature": d.feature, "params": dict(cfg.inputs[n].params)} for n, d in td.inputs.items()},
              "predictions": {t: labels[int(i)] for t, i in zip(td.ids, tp.argmax(1))},
              "truth": {t: ds[t].genre for t in td.ids},
              "probability": {t: float(p.max()) for t, p in zip(td.ids, tp)}}
    (out / "metrics.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    write_confusion_csv(track["confusion"], labels, out / "confusion.csv")
    plot_confusion(track["confusion"], labels, out / "confusion.png", title=f"{cfg.name} on {name}")
    log(f"{len(td)} tracks: accuracy {track['accuracy']:.4f}, macro-F1 {track['macro_f1']:.4f} -> {out}")
    return result
