"""Run benchmark suites and write ``docs/BENCHMARKS.md`` with its plots.

Every number in the file comes from the runs this command makes; a suite entry that fails is
written as failed, with its error, rather than left out. Selection never sees test tracks: each
entry's protocol (published split, repeated splits or artist-grouped folds) decides that.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genrefusion import __version__
from genrefusion.benchmarks.suites import Suite, entry_config, get_suite
from genrefusion.config import config_from_dict
from genrefusion.evaluation.report import _pyplot


@dataclass
class EntryResult:
    label: str
    run_dir: str
    ok: bool
    seconds: float
    accuracy: dict | None = None  # {"mean", "std", "values"} of track accuracy
    macro_f1: dict | None = None
    branches: dict = field(default_factory=dict)
    error: str = ""
    extra: dict = field(default_factory=dict)  # suite-specific cells


@dataclass
class SuiteResult:
    suite: Suite
    entries: list[EntryResult]
    seconds: float


def run_suite(name: str, *, data_root: str, out_dir: Path, quick: bool, seeds: int = 5, store: str = "store",
              log: Callable[[str], None] = print) -> SuiteResult:
    from genrefusion.training.run import train_run

    suite = get_suite(name)
    t0 = time.perf_counter()
    results = []
    for i, entry in enumerate(suite.entries):
        run_dir = out_dir / suite.name / f"{i:02d}"
        cfg_dict = entry_config(entry, data_root=data_root, quick=quick, seeds=seeds)
        cfg_dict["name"] = f"{suite.name}/{i:02d} {entry.label}"
        cfg_dict["data"]["store"] = store
        log(f"[{suite.name}] {entry.label}")
        t1 = time.perf_counter()
        try:
            m = train_run(config_from_dict(cfg_dict, source=f"suite {suite.name}"), run_dir,
                          log=lambda msg: log(f"  {msg}")).metrics
            t = m["summary"]["track"]
            extra = suite.after_run(entry, run_dir, data_root, lambda msg: log(f"  {msg}")) if suite.after_run else {}
            results.append(EntryResult(entry.label, str(run_dir), True, time.perf_counter() - t1, t["accuracy"],
                                       t["macro_f1"], {b: v["accuracy"] for b, v in m["summary"].get("branches", {}).items()},
                                       extra=extra))
        except Exception as err:  # one failing entry is reported, the suite goes on
            log(f"  FAILED: {err}")
            results.append(EntryResult(entry.label, str(run_dir), False, time.perf_counter() - t1,
                                       error=f"{type(err).__name__}: {err}".splitlines()[0][:300]))
            (run_dir).mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    return SuiteResult(suite, results, time.perf_counter() - t0)


def _pct(d: dict | None) -> str:
    if not d:
        return "—"
    return f"{100 * d['mean']:.1f}" + (f" ± {100 * d['std']:.1f}" if len(d["values"]) > 1 else "")


def plot_suite(res: SuiteResult, path: Path) -> Path:
    """Accuracy bars (mean ± std) with the published figures as reference lines."""
    plt = _pyplot()
    ok = [e for e in res.entries if e.ok]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(ok), 3) + 1.2))
    ys = range(len(ok))
    ax.barh(list(ys), [100 * e.accuracy["mean"] for e in ok], xerr=[100 * e.accuracy["std"] for e in ok],
            color="#4c72b0", alpha=0.85)
    ax.set_yticks(list(ys), [e.label for e in ok], fontsize=8)
    ax.invert_yaxis()
    for label, value in res.suite.references:
        ax.axvline(value, color="#c44e52", ls="--", lw=1)
        ax.text(value, -0.6, f" {label} {value:.1f}", rotation=90, va="top", fontsize=7, color="#c44e52")
    ax.set_xlabel("test accuracy, tracks (%)")
    ax.set_xlim(0, 100)
    ax.set_title(res.suite.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


SPEED = "speed"  # the speed suite: not a set of training runs, so not in SUITES


def run_speed(*, data_root: str, quick: bool, log: Callable[[str], None] = print):
    """The speed suite on GTZAN's real clips (quick: 10 of them, every genre)."""
    from genrefusion.benchmarks.speed import measure_speed

    clips = sorted((Path(data_root) / "gtzan" / "audio").rglob("*.flac"))
    if quick:
        clips = clips[::10]
    log(f"[speed] {len(clips)} clips")
    return measure_speed(clips, feature_clips=3 if quick else 10, log=lambda m: log(f"  {m}"))


def write_benchmarks(results: list[SuiteResult], *, out: Path, quick: bool, wall_s: float, argv: list[str],
                     speed=None) -> Path:
    """``BENCHMARKS.md`` (and its PNGs in ``benchmarks/`` beside it) from the suites' results."""
    import shutil

    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    assets = out.parent / "benchmarks"
    assets.mkdir(exist_ok=True)
    lines = ["# Benchmarks", "",
             f"Generated by `{' '.join(shlex.quote(a) for a in argv)}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f" — genrefusion {__version__}, torch {torch.__version__}, {_machine()}; wall time {wall_s / 60:.1f} min. "
             "Do not edit by hand.", ""]
    if quick:
        lines += ["> **Quick mode**: one seed, two epochs, one repeat, at most two folds per model. These numbers show "
                  "that the benchmark code runs; they are not the models' accuracy.", ""]
    from genrefusion.benchmarks.suites import SUITES

    not_run = [n for n in [*SUITES, SPEED] if n not in {r.suite.name for r in results} and (n != SPEED or speed is None)]
    if not_run:
        lines += [f"Suites not run in this invocation (no results here): {', '.join(f'`{n}`' for n in not_run)}.", ""]
    for res in results:
        s = res.suite
        lines += [f"## {s.title} (`{s.name}`)", "", f"Protocol: {s.protocol}. Track-level test accuracy and macro-F1 "
                  "(%, mean ± std over seeds, repeats or folds)." + (f" Target: {s.target}." if s.target else ""), ""]
        extra = list(dict.fromkeys(k for e in res.entries for k in e.extra))
        head = ["model", "accuracy", "macro-F1", "each branch alone (accuracy)", *extra, "wall s"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for e in res.entries:
            cells = [e.extra.get(k, "—") for k in extra]
            if e.ok:
                alone = ", ".join(f"{b} {_pct(v)}" for b, v in e.branches.items()) or ""
                row = [e.label, _pct(e.accuracy), _pct(e.macro_f1), alone, *cells, f"{e.seconds:.0f}"]
            else:
                row = [e.label, "**failed**", "—", f"`{e.error}`", *cells, f"{e.seconds:.0f}"]
            lines.append("| " + " | ".join(row) + " |")
        for label, value in s.references:
            lines.append("| " + " | ".join([f"*published: {label}*", f"*{value:.1f}*", *[""] * (len(head) - 2)]) + " |")
        lines.append("")
        ok = [e for e in res.entries if e.ok]
        if ok:
            plot = plot_suite(res, assets / f"{s.name}-accuracy.png")
            best = max(ok, key=lambda e: e.accuracy["mean"])
            lines += [f"![{s.title}: accuracy](benchmarks/{plot.name})", ""]
            cm = Path(best.run_dir) / "confusion.png"
            if cm.exists():
                shutil.copy(cm, assets / f"{s.name}-best-confusion.png")
                lines += [f"Best: **{best.label}** ({_pct(best.accuracy)} %); its confusion matrix over all test tracks:", "",
                          f"![confusion]({'benchmarks/' + s.name + '-best-confusion.png'})", ""]
        lines += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
        lines += [f"Suite wall time: {res.seconds / 60:.1f} min.", ""]
    if speed is not None:
        from genrefusion.benchmarks.speed import plot_speed, speed_markdown

        lines += speed_markdown(speed, plot_speed(speed, assets / "speed-throughput.png").name)
    out.write_text("\n".join(lines), encoding="utf-8")
    (out.parent / "benchmarks" / "results.json").write_text(json.dumps(
        [{"suite": r.suite.name, "seconds": r.seconds, "entries": [e.__dict__ for e in r.entries]} for r in results],
        indent=1), encoding="utf-8")
    return out


def benchmark(suites: list[str], *, data_root: str, out: Path, runs_dir: Path, quick: bool, seeds: int = 5,
              store: str = "store", log: Callable[[str], None] = print) -> Path:
    training = [n for n in suites if n != SPEED]
    for name in training:
        get_suite(name)  # every name valid before anything runs
    t0 = time.perf_counter()
    results = [run_suite(n, data_root=data_root, out_dir=runs_dir, quick=quick, seeds=seeds, store=store, log=log)
               for n in training]
    speed = run_speed(data_root=data_root, quick=quick, log=log) if SPEED in suites else None
    return write_benchmarks(results, out=out, quick=quick, wall_s=time.perf_counter() - t0, speed=speed,
                            argv=["genrefusion", *sys.argv[1:]])

