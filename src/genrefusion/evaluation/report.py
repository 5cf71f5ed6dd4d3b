"""Run reports: confusion matrices (CSV, PNG), training curves, the markdown report, comparisons."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from genrefusion.errors import GenreFusionError
from genrefusion.evaluation.metrics import RunMetrics


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def write_confusion_csv(cm: Sequence[Sequence[int]], labels: list[str], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *labels])
        for label, row in zip(labels, cm):
            w.writerow([label, *row])
    return path


def plot_confusion(cm, labels: list[str], path: Path, title: str = "") -> Path:
    plt = _pyplot()
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.2 + 0.55 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, f"{cm[i, j]:g}" if cm[i, j] == int(cm[i, j]) else f"{cm[i, j]:.1f}", ha="center",
                        va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    if title:  # wrapped to the figure's width (~11 characters an inch at 9 pt): a long run name is not cut off
        ax.set_title(textwrap.fill(title, int(11 * (size + 1.5))), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(histories: dict[str, list[dict]], path: Path) -> Path | None:
    """Training loss and validation accuracy per epoch, one line per trained stage."""
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        return None
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, rows in histories.items():
        ep = [r["epoch"] for r in rows]
        a.plot(ep, [r["train_loss"] for r in rows], label=name)
        if any("valid_accuracy" in r for r in rows):
            b.plot(ep, [r.get("valid_accuracy", np.nan) for r in rows], label=name)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy (tracks)")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def summary_line(summary: dict, key: str = "accuracy") -> str:
    s = summary.get(key)
    if not s:
        return "—"
    return _pct(s["mean"]) + (f" ± {100 * s['std']:.1f}" if len(s["values"]) > 1 else "")


def _split_text(config: dict) -> str:
    sp, pr = config["split"], config["protocol"]
    if pr["name"] == "repeated":
        tf = pr["test_fraction"]
        return (f"{pr['repeats']} stratified random {round(100 * (1 - tf))}/{round(100 * tf)} train/test splits "
                f"(seeds {sp['seed']}..{sp['seed'] + pr['repeats'] - 1})")
    if pr["name"] == "kfold":
        return (f"{pr['folds']} stratified folds"
                + (", artist-grouped where artists are known" if sp.get("group_by_artist") is not False else "")
                + f" (seed {sp['seed']})")
    if sp.get("published"):
        return f"published `{sp['published']}`"
    if sp.get("file"):
        return f"file `{sp['file']}`"
    return f"stratified {sp['fractions']} seed {sp['seed']}"


def write_report(run_dir: Path, metrics: dict, config: dict, *, problems: list[str], plots: dict[str, str]) -> Path:
    """The run's ``report.md``: what ran on which data under which protocol, and how it scored."""
    t = metrics["summary"]["track"]
    w = metrics["summary"]["window"]
    data = config["data"]
    lines = [f"# {config['name']}", ""]
    if config.get("description"):
        lines += [config["description"], ""]
    lines += [
        f"- data: `{data['path']}`" + (f" (kind {data['kind']})" if data.get("kind") else "")
        + f", {metrics['n_tracks']} tracks, {len(metrics['labels'])} classes",
        f"- protocol: **{config['protocol']['name']}**, split: " + _split_text(config),
        f"- evaluations: {len(metrics['evaluations'])} ({', '.join(e['name'] for e in metrics['evaluations'])})",
        (f"- windows: {metrics['windowing']['window_s']:.2f} s, aggregated to tracks by {config['eval']['aggregate']}"
         if metrics["windowing"].get("timed", True) else "- whole tracks (no time windows)"),
        "- branches: " + ", ".join(f"{n} = {b['model']}({', '.join(b['inputs'])})" for n, b in config["branches"].items()),
        "- fusion: " + (f"{config['fusion']['strategy']} ({config['fusion']['mode']})" if config.get("fusion") else "none"),
        f"- wall time: {metrics['seconds']:.1f} s",
    ]
    if config.get("reference"):
        lines.append(f"- published reference: {config['reference']}")
    lines += ["", "## Test results", "", "| level | accuracy | balanced accuracy | macro-F1 |", "|---|---|---|---|",
              f"| track | {summary_line(t)} | {summary_line(t, 'balanced_accuracy')} | {summary_line(t, 'macro_f1')} |",
              f"| window | {summary_line(w)} | {summary_line(w, 'balanced_accuracy')} | {summary_line(w, 'macro_f1')} |", ""]
    branches = metrics["summary"].get("branches") or {}
    if branches:
        lines += ["Each branch alone on the same test tracks, beside the fusion:", "",
                  "| model | accuracy | balanced accuracy | macro-F1 |", "|---|---|---|---|"]
        for name, b in branches.items():
            model = config["branches"][name]["model"]
            lines.append(f"| {name} ({model}) | {summary_line(b)} | {summary_line(b, 'balanced_accuracy')} | "
                         f"{summary_line(b, 'macro_f1')} |")
        lines += [f"| **fused** | {summary_line(t)} | {summary_line(t, 'balanced_accuracy')} | "
                  f"{summary_line(t, 'macro_f1')} |", ""]
    first = metrics["evaluations"][0]["track"]
    lines += [f"Per class ({metrics['evaluations'][0]['name']}, tracks):", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, pc in first["per_class"].items():
        lines.append(f"| {label} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
    lines.append("")
    for title, file in plots.items():
        lines += [f"![{title}]({file})", ""]
    grid = metrics.get("grid")
    if grid:
        lines += ["## Grid search (cross-validation on training tracks only)", "", "| setting | CV accuracy |", "|---|---|"]
        for row in grid:
            lines.append(f"| `{row['point']}` | {_pct(row['cv_accuracy'])} ± {100 * row['cv_std']:.1f} |")
        lines.append("")
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems[:50]] + [""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def load_metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenreFusionError("not a finished run (no metrics.json)", path=run_dir) from None


def compare_rows(run_dirs: Sequence[Path]) -> list[dict]:
    """One row per run: name, data, protocol, fusion, track-level accuracy/macro-F1 (mean, std, n)."""
    rows = []
    for d in run_dirs:
        m = load_metrics(d)
        r = RunMetrics.from_dict(m)
        rows.append({"run": str(d), "name": m["name"], "data": m["data"], "protocol": m["protocol"],
                     "model": m["model"], "accuracy": r.accuracy.mean, "accuracy_std": r.accuracy.std,
                     "macro_f1": r.macro_f1.mean, "macro_f1_std": r.macro_f1.std,
                     "n_evaluations": len(r.accuracy.values), "seconds": m["seconds"]})
    return rows
