"""Run benchmark suites and write ``docs/BENCHMARKS.md`` with its plots.

Every number in the file comes from the runs this command makes; a suite entry that fails is
written as failed, with its error, rather than left out. Selection never sees test tracks: each
entry's protocol (published split, repeated splits or artist-grouped folds) decides that.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genrefusion import __version__
from genrefusion.benchmarks.suites import MEASURES, Headline, Suite, entry_config, get_suite
from genrefusion.config import config_from_dict
from genrefusion.errors import ConfigError
from genrefusion.evaluation.metrics import RunMetrics
from genrefusion.evaluation.report import _pyplot, plot_confusion
from genrefusion.file_lock import exclusive


@dataclass
class EntryResult:
    id: str  # the suite entry's id: its key in results.json, for --resume and --rerun
    label: str
    run_dir: str  # the entry's run folder, relative to the command's --runs folder
    ok: bool
    seconds: float
    accuracy: dict | None = None  # {"mean", "std", "values"} of track accuracy
    macro_f1: dict | None = None
    branches: dict = field(default_factory=dict)
    error: str = ""
    extra: dict = field(default_factory=dict)  # suite-specific cells
    stopped: str = ""  # the command was stopped during this entry: what it had finished, e.g. "6 of 10 repeats"
    # the test tracks' confusion matrix over all its evaluations: {"labels": [...], "counts": [[true x predicted]]}
    # (None in results.json files written before it was stored)
    confusion: dict | None = None
    measures: dict = field(default_factory=dict)  # numbers the suite's summary reads (its after_run's MEASURES)
    # each test track's accuracy over the evaluations that tested it (0 or 1 for one; a share over seeds): what the
    # suite's summary compares entries on, track by track (None in results.json files written before)
    tracks: dict[str, float] | None = None


@dataclass
class SuiteResult:
    suite: Suite
    entries: list[EntryResult]
    seconds: float
    partial: bool = False  # written while the suite was still running: only its first entries
    # the earlier commands whose entries --resume kept, newest first: Provenance fields (a line of text in
    # results.json files written before they were stored as fields)
    kept_from: list[dict | str] = field(default_factory=list)
    kept: int = 0  # how many of ``entries`` were kept rather than run by this command


def _quiet(msg: str) -> None:
    pass


def run_entry(suite: Suite, entry, *, data_root: str, out_dir: Path, quick: bool, seeds: int, store: str,
              log: Callable[[str], None] = _quiet) -> EntryResult:
    """Train and test one entry of ``suite`` in its run folder under ``out_dir``: its result, or a failed one
    with the error (a failing entry never stops a suite). Interrupted, the :class:`RunStopped` carries the
    entry's partial result (``stop.entry``: the seeds, repeats or folds it finished, or None)."""
    from genrefusion.training.protocols import RunStopped
    from genrefusion.training.run import summarize, train_run

    run_dir = out_dir / suite.name / entry.id  # by id, not position: --resume keeps earlier entries' folders
    cfg_dict = entry_config(entry, data_root=data_root, quick=quick, seeds=suite.seeds or seeds)
    cfg_dict["name"] = f"{suite.name}/{run_dir.name} {entry.label}"
    cfg_dict["data"]["store"] = store
    t1 = time.perf_counter()
    cells = suite.entry_cells(entry) if suite.entry_cells else {}

    def measured(summary: dict, extra: dict, **more) -> EntryResult:
        r = RunMetrics.from_dict({"summary": summary})
        return EntryResult(entry.id, entry.label, f"{suite.name}/{run_dir.name}", True, time.perf_counter() - t1,
                           r.accuracy.to_dict(), r.macro_f1.to_dict(),
                           {b: v["accuracy"].to_dict() for b, v in r.branches.items()},
                           extra={**cells, **extra, "train s": f"{r.training_seconds:.0f}"}, **more)

    try:
        m = train_run(config_from_dict(cfg_dict, source=f"suite {suite.name}"), run_dir,
                      log=lambda msg: log(f"  {msg}")).metrics
        extra = suite.after_run(entry, run_dir, data_root, lambda msg: log(f"  {msg}")) if suite.after_run else {}
        numbers = extra.pop(MEASURES, {})
        tracks, counts = per_track(run_dir / "predictions.csv", m["labels"])
        return measured(m["summary"], extra, confusion={"labels": m["labels"], "counts": counts}, measures=numbers,
                        tracks=tracks)
    except RunStopped as stop:
        stop.entry = measured(summarize(stop.finished), {}, stopped=stop.progress) if stop.finished else None
        raise
    except Exception as err:
        log(f"  FAILED: {err}")
        (run_dir).mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return failed(suite, entry, time.perf_counter() - t1, f"{type(err).__name__}: {err}", cells)


def per_track(predictions: Path, labels: list[str]) -> tuple[dict[str, float], list[list[float]]]:
    """From a run's ``predictions.csv``: each test track's accuracy over the evaluations that tested it, and the
    confusion matrix (true x predicted) counting each test track once (a track tested under 5 seeds adds 1/5
    from each)."""
    import csv

    with open(predictions, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    times: dict[str, int] = {}
    for r in rows:
        times[r["track_id"]] = times.get(r["track_id"], 0) + 1
    right: dict[str, float] = {}
    counts = [[0.0] * len(labels) for _ in labels]
    for r in rows:
        share = 1 / times[r["track_id"]]
        right[r["track_id"]] = right.get(r["track_id"], 0.0) + share * (r["genre"] == r["predicted"])
        counts[labels.index(r["genre"])][labels.index(r["predicted"])] += share
    return right, [[round(c, 3) for c in row] for row in counts]


def failed(suite: Suite, entry, seconds: float, error: str, cells: dict | None = None) -> EntryResult:
    return EntryResult(entry.id, entry.label, f"{suite.name}/{entry.id}", False, seconds, extra=cells or {},
                       error=error.splitlines()[0][:300])


def run_suite(name: str, *, data_root: str, out_dir: Path, quick: bool, seeds: int = 5, store: str = "store",
              log: Callable[[str], None] = print, on_entry: Callable[[SuiteResult], None] | None = None,
              keep: dict[str, EntryResult] | None = None, kept_from: list[str] | None = None,
              engine: str = "local", address: str | None = None) -> SuiteResult:
    """Train and test every entry; ``on_entry`` gets the partial result after each one. Entries in
    ``keep`` (by id: results of an earlier run, ``kept_from`` naming it) are reported, not re-run.
    Interrupted (Ctrl-C, SIGTERM), the entry in progress is reported with the seeds, repeats or folds
    it finished, ``on_entry`` gets that, and the interrupt goes on. ``engine: ray`` trains the entries
    as Ray tasks at once (one CPU each; run folders and store on a file system every node sees)."""
    from genrefusion.training.protocols import RunStopped
    from genrefusion.workers import CRASHED, engine_pool, map_ordered

    suite = get_suite(name)
    keep = keep or {}
    t0 = time.perf_counter() - sum(k.seconds for k in keep.values())  # the suite's time counts the kept entries' too
    results = []

    def so_far(partial: bool) -> SuiteResult:
        return SuiteResult(suite, list(results), time.perf_counter() - t0, partial, list(kept_from or []),
                           sum(e.id in keep for e in suite.entries[:len(results)]))

    where = dict(data_root=data_root, out_dir=out_dir, quick=quick, seeds=seeds, store=store)
    on_ray = None
    if engine != "local":  # the workers may start elsewhere: every path absolute
        where.update(data_root=str(Path(data_root).resolve()), out_dir=out_dir.resolve(),
                     store=str(Path(store).resolve()))
        todo = [e for e in suite.entries if e.id not in keep]
        on_ray = map_ordered(functools.partial(run_entry, suite, **where), todo,
                             pool=engine_pool(engine, address), workers=None)
    try:
        for entry in suite.entries:
            if entry.id in keep:
                log(f"[{suite.name}] {entry.id}: kept from the earlier run")
                results.append(keep[entry.id])
                continue
            log(f"[{suite.name}] {entry.id}: {entry.label}")
            if on_ray is None:
                results.append(run_entry(suite, entry, log=log, **where))
            else:
                _, result = next(on_ray)
                results.append(result or failed(suite, entry, 0.0, CRASHED))
                log(f"  {'test accuracy %.4f' % result.accuracy['mean'] if result and result.ok else 'FAILED'}, on Ray")
            if on_entry is not None and len(results) < len(suite.entries):
                on_entry(so_far(partial=True))
    except RunStopped as stop:
        if stop.entry is not None:
            log(f"  stopped: reporting the {stop.progress} it finished")
            results.append(stop.entry)
        if on_entry is not None:
            on_entry(so_far(partial=True))
        raise
    except KeyboardInterrupt:  # on Ray: the entries that came back are reported
        if on_entry is not None:
            on_entry(so_far(partial=True))
        raise
    finally:
        if on_ray is not None:
            on_ray.close()
    return so_far(partial=False)


def _pct(d: dict | None) -> str:
    """A mean in %, with its spread where the seeds, repeats or folds differ (a model that gives the same result
    for every seed gets no ± 0.0)."""
    if not d:
        return "—"
    return f"{100 * d['mean']:.1f}" + (f" ± {100 * d['std']:.1f}" if len(d["values"]) > 1 and d["std"] > 0 else "")


def _fuses(suite: Suite, entry_id: str) -> bool:
    """Whether the suite's entry ``entry_id`` fuses several branches (else it is one branch alone)."""
    config = suite.by_id[entry_id].config
    return bool(config.get("fusion")) or len(config.get("branches", {})) > 1


def _cell_of(config: dict) -> tuple[str, str]:
    """An entry's place in its suite's matrix: (its branches, how they are fused)."""
    branches = " + ".join(config.get("branches", {}))
    fusion = config.get("fusion")
    if not fusion:
        return branches, "alone"
    how = fusion["strategy"].replace("_", " ") + (" (joint)" if fusion.get("mode", "joint") == "joint" else "")
    return branches, how + (", cross-fitted" if fusion.get("cross_fit") else "")


def matrix_markdown(res: SuiteResult) -> list[str]:
    """Branch set x fusion strategy, track accuracy (%): how each strategy does on the same branches (shown where
    some branch set is fused by more than one strategy)."""
    known = res.suite.by_id
    cells: dict[tuple[str, str], EntryResult] = {}
    for e in (e for e in res.entries if e.ok and not e.stopped and e.accuracy and e.id in known):
        row, col = _cell_of(known[e.id].config)
        cells[(row if (row, col) not in cells else f"{row} (`{e.id}`)", col)] = e  # same branches, other settings
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    if len([c for c in cols if c != "alone"]) < 2:
        return []
    cols = ["alone", *[c for c in cols if c != "alone"]] if "alone" in cols else cols
    lines = ["Branch set x fusion strategy (track accuracy, %; one cell per entry):", "",
             "| branches | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        lines.append(f"| {r} | " + " | ".join(_pct(cells[r, c].accuracy) if (r, c) in cells else "" for c in cols) + " |")
    return [*lines, ""]


def summary_markdown(res: SuiteResult) -> list[str]:
    """The suite's answer in one table: per group of entries (the suite's :class:`Headline`), its best single
    branch, its best fusion, the gain with a 95 % paired bootstrap interval over the tracks both were tested on,
    and the protocol."""
    h = res.suite.headline
    if h is None:
        return [f"No summary row: {res.suite.no_headline}.", ""]
    known = res.suite.by_id  # an entry since removed from the suite is shown, not compared
    scored = [(e, h.score(e)) for e in res.entries if e.ok and not e.stopped and e.id in known]
    groups: dict[str, list] = {}
    for e, score in scored:
        if score is not None:
            groups.setdefault(h.group(known[e.id]) if h.group else "", []).append((e, score))
    head = ["best single branch", "best fusion", "gain, points (95 % CI)", "tracks", "protocol"]
    head = ["compared on", *head] if h.group else head
    rows = []
    for group, members in groups.items():
        singles = [m for m in members if not _fuses(res.suite, m[0].id)]
        fusions = [m for m in members if _fuses(res.suite, m[0].id)]
        if singles and fusions:
            row = _gain_row(max(singles, key=lambda m: m[1]), max(fusions, key=lambda m: m[1]), h)
            rows.append([group, *row, res.suite.protocol] if h.group else [*row, res.suite.protocol])
    if not rows:
        return []
    compared = [] if h.measure == Headline().measure else [f"Compared on {h.measure}.", ""]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows), "",
            *compared]


def _gain_row(single: tuple[EntryResult, float], fusion: tuple[EntryResult, float], h) -> list[str]:
    """Cells: the two entries with their scores, the gain with its interval, and how many tracks it is over."""
    (s, s_score), (f, f_score) = single, fusion
    s_tracks, f_tracks = h.tracks(s), h.tracks(f)
    if s_tracks and f_tracks:
        from genrefusion.evaluation.metrics import paired_bootstrap

        gain, low, high, n = paired_bootstrap(f_tracks, s_tracks)
        gain_cell, n_cell = f"**{100 * gain:+.1f}** [{100 * low:+.1f}, {100 * high:+.1f}]", str(n)
    else:  # a section of results.json written before each track's result was kept
        gain_cell, n_cell = f"{100 * (f_score - s_score):+.1f} (no interval: re-run both)", "—"
    return [f"{s.label} (`{s.id}`, {100 * s_score:.1f} %)", f"{f.label} (`{f.id}`, {100 * f_score:.1f} %)", gain_cell,
            n_cell]


def plot_suite(res: SuiteResult, path: Path) -> Path:
    """Accuracy bars (mean ± std, value at the bar's end) and, below them, the published figures as bars of
    their own with a dotted line across the entries, so that every figure is labelled and none overlap."""
    ok = [e for e in res.entries if e.ok]
    rows = [(e.label + (f" (stopped: {e.stopped})" if e.stopped else ""), 100 * e.accuracy["mean"],
             100 * e.accuracy["std"]) for e in ok]
    return plot_rows(rows, path, title=res.suite.title, references=res.suite.references)


def plot_rows(rows: list[tuple[str, float, float]], path: Path, *, title: str, xlabel: str = "test accuracy, tracks (%)",
              references: tuple[tuple[str, float], ...] = ()) -> Path:
    """Horizontal bars of ``(label, value %, std)`` rows, top to bottom, and published figures below them."""
    plt = _pyplot()
    refs = list(references)
    n_entries = len(rows)
    rows = list(rows) + [(f"published: {label}", value, 0.0) for label, value in refs]
    fig, ax = plt.subplots(figsize=(10, 0.42 * max(len(rows), 3) + 1.2))
    ys = list(range(len(rows)))
    colours = ["#4c72b0"] * n_entries + ["#c44e52"] * len(refs)
    ax.barh(ys, [r[1] for r in rows], xerr=[r[2] for r in rows], color=colours, alpha=0.85,
            error_kw={"lw": 1})
    for y, (_, mean, std) in zip(ys, rows):
        ax.text(min(mean + std, 100) + 1, y, f"{mean:.1f}", va="center", fontsize=7)
    ax.set_yticks(ys, [textwrap.fill(r[0], 70) for r in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # top to bottom, in the table's order
    for _, value in refs:
        ax.axvline(value, color="#c44e52", ls=":", lw=0.8, alpha=0.6)
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, 108)
    ax.set_xticks(range(0, 101, 20))
    ax.set_title(title, fontsize=10)
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
    from genrefusion.benchmarks.speed import FILES, measure_speed

    clips = sorted((Path(data_root) / "gtzan" / "audio").rglob("*.flac"))
    if quick:
        clips = clips[::10]
    log(f"[speed] {len(clips)} clips")
    return measure_speed(clips, feature_clips=3 if quick else 10, files=30 if quick else FILES,
                         baseline_clips=3 if quick else 20, log=lambda m: log(f"  {m}"))


#: The results behind the report, beside its PNGs: each section's entries and the command that made them.
RESULTS_FILE = "results.json"
LOCK_FILE = ".results.lock"


@dataclass
class Provenance:
    """Which command produced a section, when, in which mode, on what."""

    command: str
    date: str
    quick: bool
    versions: str
    machine: str
    seconds: float
    seeds: int = 5  # seeds per model on fixed splits; sections written before it was recorded used the CLI's 5

    @classmethod
    def now(cls, argv: list[str], quick: bool, seconds: float, seeds: int) -> "Provenance":
        import torch

        return cls(portable(" ".join(shlex.quote(a) for a in argv)), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), quick,
                   f"genrefusion {__version__}, torch {torch.__version__}", _machine(), seconds, seeds)

    def line(self, *, seeded: bool = False) -> str:
        """The line under a section's title; ``seeded``: the section's models train once per seed."""
        mode = "**quick mode** (one seed, two epochs: shows that the code runs, not the models' accuracy)" if self.quick \
            else f"full mode, {self.seeds} seed{'s' * (self.seeds != 1)} per model" if seeded else "full mode"
        return (f"Results of `{self.command}` ({mode}) on {self.date}; {self.versions}; {self.machine}; "
                f"wall time {self.seconds / 60:.1f} min.")

    @classmethod
    def from_line(cls, line: str) -> "Provenance | None":
        """The provenance that :meth:`line` wrote (as earlier results.json files kept it), or None."""
        m = _LINE.fullmatch(line)
        if m is None:
            return None
        seeds = re.search(r"(\d+) seeds? per model", m["mode"])
        return cls(m["command"], m["date"], "quick mode" in m["mode"], m["versions"], m["machine"],
                   60 * float(m["minutes"]), int(seeds[1]) if seeds else 5)


_LINE = re.compile(r"Results of `(?P<command>.*)` \((?P<mode>.*)\) on (?P<date>\d{4}-\d\d-\d\d \d\d:\d\d UTC); "
                   r"(?P<versions>[^;]*); (?P<machine>[^;]*); wall time (?P<minutes>[\d.]+) min\.")


def _kept_from_markdown(res: SuiteResult) -> list[str]:
    """One line on the entries ``--resume`` kept: the commands that made them are provenance, kept in
    results.json (``suites.<name>.kept_from``), not in the report."""
    if not res.kept_from:
        return []
    n = len(res.kept_from)
    return [f"{res.kept} of these entries were kept by `--resume` from {n} earlier command{'s' * (n != 1)}, named "
            f"in [results.json](benchmarks/results.json).", ""]


#: options whose value is a place on the machine that ran the command, and what a report says instead of it
_MACHINE_PATHS = re.compile(r"(--(store|runs|data|out)[ =])(/[^\s`'\"]+)")


def portable(command: str) -> str:
    """A command line as the report keeps it: an absolute path given to ``--store``, ``--runs``, ``--data`` or
    ``--out`` is that machine's, so it becomes ``<store>``, ``<runs>``, ...; relative paths stay."""
    return _MACHINE_PATHS.sub(lambda m: f"{m[1]}<{m[2]}>", command)


def _portable_results(stored: dict) -> None:
    """Every command line in ``stored`` (results.json) through :func:`portable`, and every entry's run folder
    relative to its ``--runs`` folder (``suite/entry``), also in sections earlier versions wrote."""
    sections = [*stored["suites"].values(), *([stored["speed"]] if stored.get("speed") else [])]
    for section in sections:
        section["provenance"]["command"] = portable(section["provenance"]["command"])
        section["kept_from"] = [{**k, "command": portable(k["command"])} if isinstance(k, dict) else portable(k)
                                for k in section.get("kept_from", [])]
        for e in section.get("entries", []):
            e["run_dir"] = "/".join(Path(e["run_dir"]).parts[-2:])


def load_results(path: Path) -> dict:
    """``{"suites": {name: {...}}, "speed": {...} | None}`` from an earlier run; empty if none (or an
    older layout, which is not merged: its sections carry no provenance)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"suites": {}, "speed": None}
    if not isinstance(data, dict) or "suites" not in data:
        return {"suites": {}, "speed": None}
    return with_ids(data)


def with_ids(stored: dict) -> dict:
    """``stored`` (results.json) with every entry's id: files written before entries had ids keyed them by label,
    which the suite's entries map to their ids (a label no entry has any more gets ``old-`` and its hash)."""
    from genrefusion.benchmarks.suites import SUITES

    for name, section in stored["suites"].items():
        ids = {e.label: e.id for e in SUITES[name].entries} if name in SUITES else {}
        for e in section.get("entries", []):
            if "id" not in e:
                e["id"] = ids.get(e["label"]) or f"old-{hashlib.sha1(e['label'].encode()).hexdigest()[:8]}"
    return stored


def _suite_from_json(name: str, stored: dict) -> SuiteResult:
    return SuiteResult(get_suite(name), [EntryResult(**e) for e in stored["entries"]], stored["seconds"],
                       stored.get("partial", False), stored.get("kept_from", []), stored.get("kept", 0))


def resumable(stored: dict, name: str, *, quick: bool, seeds: int) -> tuple[dict[str, EntryResult], list[dict | str]]:
    """The entries of suite ``name`` that an earlier run in the same mode and with the same ``seeds``
    finished without failing or being stopped (by id), and the provenances of the runs they came from: what
    ``--resume`` keeps."""
    section = stored["suites"].get(name)
    if section is None:
        return {}, []
    prov = Provenance(**section["provenance"])
    seeded = get_suite(name).seeded
    if prov.quick != quick or (seeded and not quick and prov.seeds != seeds):  # quick mode always runs one seed
        return {}, []
    kept = {e["id"]: EntryResult(**e) for e in section["entries"] if e["ok"] and not e.get("stopped")}
    if not kept:
        return {}, []
    return kept, [section["provenance"], *section.get("kept_from", [])]


def _speed_from_json(stored: dict):
    from genrefusion.benchmarks.speed import SpeedResult, Timing

    r = stored["result"]
    return SpeedResult([Timing(**t) for t in r["timings"]], r["peak_rss_mb"], r["n_clips"], r["seconds"],
                       r.get("fft_backend", "numpy"))  # results from before the choice of FFT were numpy's


def write_benchmarks(results: list[SuiteResult], *, out: Path, quick: bool, wall_s: float, argv: list[str],
                     speed=None, seeds: int = 5) -> Path:
    """``BENCHMARKS.md`` (and its PNGs in ``benchmarks/`` beside it): the suites run now, and every
    other section an earlier command left in ``results.json``, each under the line saying which
    command, mode and machine produced it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    assets = out.parent / "benchmarks"
    assets.mkdir(exist_ok=True)
    # two benchmark commands at once each read, merge and rewrite results.json: one at a time, or
    # one could drop the other's section
    with exclusive(assets / LOCK_FILE):
        return _merge_and_write(results, out=out, assets=assets, quick=quick, wall_s=wall_s, argv=argv, speed=speed,
                                seeds=seeds)


#: what each column and figure of the report means, said once at its top
READING_GUIDE = [
    "How to read it: each suite opens with its answer, its best fusion against its best single branch. *Gain* is the "
    "fusion's track accuracy minus the branch's, in points, on the test tracks both were tested on (each track's "
    "score averaged over seeds, repeats or folds), with a 95 % paired-bootstrap interval over those tracks (2 000 "
    "resamples): an interval that holds 0 is no evidence that fusion helps. In the tables, *accuracy* and *macro-F1* "
    "are track-level, on the entry's own test tracks (%, mean ± std over seeds, repeats or folds; no ± where every one "
    "gave the same). *Each branch alone* is a fused entry's own branches, each tested alone on the same tracks: they "
    "train as that fusion trains them (without the part a fusion learns from, or jointly), so a branch's figure "
    "there may differ from its own entry's. *id* is the entry's key (`genrefusion benchmark SUITE --resume --rerun "
    "ID` runs it again); *train s* the training time of all its networks over every seed, repeat or fold; *wall s* "
    "the whole entry, features and tests included.", ""]


def _merge_and_write(results: list[SuiteResult], *, out: Path, assets: Path, quick: bool, wall_s: float,
                     argv: list[str], speed, seeds: int) -> Path:
    from genrefusion.benchmarks.suites import SUITES

    stored = load_results(assets / RESULTS_FILE)
    here = Provenance.now(argv, quick, wall_s, seeds)
    ran = []
    for res in results:
        if _ran_nothing_new(res, stored["suites"].get(res.suite.name)):
            continue  # the section stays as the commands that ran its entries left it, under their names
        ran.append(res.suite.name)
        stored["suites"][res.suite.name] = {"provenance": here.__dict__, "seconds": res.seconds, "partial": res.partial,
                                            "kept_from": res.kept_from, "kept": res.kept,
                                            "entries": [e.__dict__ for e in res.entries]}
    if speed is not None:
        stored["speed"] = {"provenance": here.__dict__, "result": dataclasses.asdict(speed)}
    _portable_results(stored)
    (assets / RESULTS_FILE).write_text(results_json(stored), encoding="utf-8")

    ran += [SPEED] if speed is not None else []
    none = "no entry (`--resume` kept them all)" if results else "no suite"
    lines = ["# Benchmarks", "",
             f"Written by `{here.command}` on {here.date}, which ran {', '.join(f'`{n}`' for n in ran) or none}; "
             "every other section keeps the results of the command named under its title. Do not edit by hand: "
             "`genrefusion benchmark SUITE...` re-runs suites and rewrites this file.", "", *READING_GUIDE]
    order = [n for n in SUITES if n in stored["suites"]] + [n for n in stored["suites"] if n not in SUITES]
    missing = [n for n in [*SUITES, SPEED] if n not in stored["suites"] and (n != SPEED or stored["speed"] is None)]
    if missing:
        lines += [f"Suites with no results yet: {', '.join(f'`{n}`' for n in missing)}.", ""]
    for name in order:
        if name not in SUITES:
            continue  # a suite since removed from the code
        res = _suite_from_json(name, stored["suites"][name])
        lines += _suite_markdown(res, Provenance(**stored["suites"][name]["provenance"]), assets)
    if stored["speed"] is not None:
        from genrefusion.benchmarks.speed import plot_speed, speed_markdown

        result = _speed_from_json(stored["speed"])
        lines += speed_markdown(result, plot_speed(result, assets / "speed-throughput.png").name,
                                Provenance(**stored["speed"]["provenance"]).line())
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def results_json(stored: dict) -> str:
    """results.json's text: indented, but each entry's per-track results (hundreds to thousands of tracks) on one
    line, so that the file stays readable and its diffs small."""
    compact: dict[str, str] = {}

    def one_line(tracks):
        if not tracks:
            return tracks
        key = f"\0tracks{len(compact)}"
        compact[key] = json.dumps(tracks, separators=(",", ":"))
        return key

    def placeholder(entry: dict) -> dict:  # its tracks, and those of the suite's measures (cross: held-out tracks)
        measures = entry.get("measures") or {}
        return {**entry, "tracks": one_line(entry.get("tracks")),
                **({"measures": {**measures, "tracks": one_line(measures["tracks"])}} if "tracks" in measures else {})}

    def entries_of(section: dict) -> dict:
        return {**section, "entries": [placeholder(e) for e in section.get("entries", [])]}

    text = json.dumps({**stored, "suites": {n: entries_of(s) for n, s in stored["suites"].items()}}, indent=1)
    for key, value in compact.items():
        text = text.replace(json.dumps(key), value, 1)
    return text


def _ran_nothing_new(res: SuiteResult, section: dict | None) -> bool:
    """Every entry of ``res`` was kept from ``section`` (the stored results), which holds no other entry."""
    return (section is not None and bool(res.entries) and res.kept == len(res.entries)
            and [e["id"] for e in section["entries"]] == [e.id for e in res.entries])


def _best(res: SuiteResult) -> EntryResult | None:
    """The most accurate entry that finished (an entry stopped part-way is not compared)."""
    done = [e for e in res.entries if e.ok and not e.stopped]
    return max(done, key=lambda e: e.accuracy["mean"]) if done else None


def _suite_markdown(res: SuiteResult, prov: Provenance, assets: Path) -> list[str]:
    s = res.suite
    lines = [f"## {s.title} (`{s.name}`)", ""]
    lines += summary_markdown(res)
    lines += [prov.line(seeded=s.seeded), ""]
    lines += _kept_from_markdown(res)
    if res.partial:
        done = sum(not e.stopped for e in res.entries)
        lines += [f"> **Partial**: {done} of {len(s.entries)} entries had finished when this was written "
                  "(the command was still running, or was stopped); an entry stopped part-way shows the seeds, "
                  "repeats or folds it had finished, the others have no result yet.", ""]
    lines += [f"Protocol: {s.protocol}." + (f" Target: {s.target}." if s.target else ""), ""]
    extra = list(dict.fromkeys(k for e in res.entries for k in e.extra))
    head = ["id", "model", "accuracy", "macro-F1", "each branch alone (accuracy)", *extra, "wall s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in res.entries:
        cells = [e.extra.get(k, "—") for k in extra]
        if e.ok:
            alone = ", ".join(f"{b} {_pct(v)}" for b, v in e.branches.items()) or ""
            row = [f"`{e.id}`", e.label + (f" (**stopped**: {e.stopped} finished)" if e.stopped else ""), _pct(e.accuracy),
                   _pct(e.macro_f1), alone, *cells, f"{e.seconds:.0f}"]
        else:
            row = [f"`{e.id}`", e.label, "**failed**", "—", f"`{e.error}`", *cells, f"{e.seconds:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    for label, value in s.references:
        lines.append("| " + " | ".join(["", f"*published: {label}*", f"*{value:.1f}*", *[""] * (len(head) - 3)]) + " |")
    lines.append("")
    lines += matrix_markdown(res)
    if any(e.ok for e in res.entries):
        plot = plot_suite(res, assets / f"{s.name}-accuracy.png")
        lines += [f"![{s.title}: accuracy](benchmarks/{plot.name})", ""]
    best = _best(res)
    if s.summary is not None:
        lines += s.summary(res, assets)
    elif best is not None and best.confusion is not None:
        cm = plot_confusion(best.confusion["counts"], best.confusion["labels"], assets / f"{s.name}-best-confusion.png",
                            title=f"{best.label}: test tracks")
        lines += [f"Best: **{best.label}** ({_pct(best.accuracy)} %); its confusion matrix, each test track counted "
                  "once (a track tested under several seeds adds its share from each):", "",
                  f"![confusion](benchmarks/{cm.name})", ""]
    elif best is not None:  # results.json written before confusion matrices were stored in it
        lines += [f"Best: **{best.label}** ({_pct(best.accuracy)} %); its confusion matrix is drawn once it runs again "
                  "(`--resume --rerun`).", ""]
    notes = [*([f"Fusion strategies not run here: {'; '.join(f'**{k}**: {v}' for k, v in s.not_fused.items())}."]
               if s.not_fused else []), *s.notes]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += [f"Suite wall time: {res.seconds / 60:.1f} min.", ""]
    return lines


def _picks(text: str, entry) -> bool:
    """Whether ``--rerun text`` names the suite entry: its id, or a text in its label."""
    return text == entry.id or text in entry.label


def benchmark(suites: list[str], *, data_root: str, out: Path, runs_dir: Path, quick: bool, seeds: int = 5,
              store: str = "store", resume: bool = False, rerun: tuple[str, ...] = (),
              log: Callable[[str], None] = print, engine: str = "local", address: str | None = None) -> Path:
    """Run ``suites`` and rewrite ``out``. ``resume``: keep the entries that an earlier run of the same
    suite in the same mode, with the same ``seeds``, finished (read from the report's ``results.json``)
    and run only the rest, and those ``rerun`` picks (after a fix: an entry id, or a text in entries' labels).
    ``engine``: where the entries of the training suites train (``ray``: as Ray tasks, :func:`run_suite`)."""
    training = [n for n in suites if n != SPEED]
    entries = [e for name in training for e in get_suite(name).entries]  # every name valid before anything runs
    if rerun and not resume:
        raise ConfigError("--rerun picks entries not to keep from an earlier run: it needs --resume")
    for text in rerun:
        if not any(_picks(text, e) for e in entries):
            raise ConfigError(f"--rerun {text!r} is no entry's id, nor in any entry's label, of suite(s) "
                              f"{', '.join(training)}")
    stored = load_results(out.parent / "benchmarks" / RESULTS_FILE) if resume else {"suites": {}}
    t0 = time.perf_counter()
    argv = ["genrefusion", *sys.argv[1:]]
    results: list[SuiteResult] = []

    def checkpoint(partial: SuiteResult) -> None:  # a suite of hours shows its finished entries as it goes
        write_benchmarks([*results, partial], out=out, quick=quick, wall_s=time.perf_counter() - t0, argv=argv,
                         seeds=seeds)

    for n in training:
        keep, kept_from = resumable(stored, n, quick=quick, seeds=seeds)
        suite = get_suite(n)
        again = {e.id for e in suite.entries if any(_picks(text, e) for text in rerun)}
        keep = {i: e for i, e in keep.items() if i not in again}
        results.append(run_suite(n, data_root=data_root, out_dir=runs_dir, quick=quick, seeds=seeds, store=store,
                                 log=log, on_entry=checkpoint, keep=keep, kept_from=kept_from, engine=engine,
                                 address=address))
    speed = run_speed(data_root=data_root, quick=quick, log=log) if SPEED in suites else None
    return write_benchmarks(results, out=out, quick=quick, wall_s=time.perf_counter() - t0, speed=speed, argv=argv,
                            seeds=seeds)
