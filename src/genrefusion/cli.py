"""The ``genrefusion`` command line: parsing and printing only; the library does the work.

Exit codes: 0 success; 1 an error stopped the command (one line on stderr names the file and the
reason); 2 the command line itself is wrong; 3 the command finished but some tracks or files
were bad (they are listed, and for ``extract`` written to ``failures.csv`` in the run folder).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from genrefusion import __version__
from genrefusion.errors import FeatureError, GenreFusionError, UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _argument_type(self, ctx) -> str:
    """An argument's type in help: typer 0.29 prints a repeatable one as ``<list[str]>`` (a Python annotation), where
    the usage line already says ``AUDIO...``; its metavar says what one item is."""
    return "" if self.nargs == -1 else _typer_argument_type(self, ctx)


_typer_argument_type = typer.core.TyperArgument.display_type_rich
typer.core.TyperArgument.display_type_rich = _argument_type

app = typer.Typer(help="genrefusion: music genre classification by multi-modal fusion.", no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=False)
datasets_app = typer.Typer(help="Inspect and check datasets.", no_args_is_help=True, rich_markup_mode=None)
features_app = typer.Typer(help="The registered features.", no_args_is_help=True, rich_markup_mode=None)
splits_app = typer.Typer(help="Make leak-checked splits.", no_args_is_help=True, rich_markup_mode=None)
store_app = typer.Typer(help="Inspect a feature store.", no_args_is_help=True, rich_markup_mode=None)
models_app = typer.Typer(help="The registered branch architectures and fusion strategies (what a config can name).", no_args_is_help=True, rich_markup_mode=None)
recipes_app = typer.Typer(help="The shipped run configs (published systems).", no_args_is_help=True, rich_markup_mode=None)
model_app = typer.Typer(help="The model that predict, tag and serve use.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(model_app, name="model")
app.add_typer(models_app, name="architectures")
# names of an earlier release, kept for one more release: hidden from --help, still working
app.add_typer(models_app, name="models", hidden=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(datasets_app, name="datasets")
app.add_typer(features_app, name="features")
app.add_typer(splits_app, name="splits")
app.add_typer(store_app, name="store")

out = Console()
err = Console(stderr=True)

KIND_HELP = "Dataset kind (see `genrefusion datasets kinds`); detected when omitted."
ENGINE_HELP = "local (worker processes on this machine) or ray (actors on a Ray cluster; needs .[ray])."
ADDRESS_HELP = ("With --engine ray: the cluster, 'auto' or ray://HOST:PORT (default: start a local Ray for this "
                "command).")
WORKERS_HELP = "Worker processes (with --engine ray: actors; default one per CPU of the cluster)."


def _workers(workers: int | None, engine: str, address: str | None, local_default: int) -> int | None:
    """The worker count a command runs with: the user's, else its local default, else (Ray) the cluster's CPUs.
    A bad engine or address, or a missing extra, fails here, before any work."""
    from genrefusion.workers import engine_pool

    engine_pool(engine, address)
    if engine == "ray" and workers is None:
        return None
    return local_default if workers is None else workers


@contextmanager
def _progress(label: str):
    """A progress bar with ETA on a terminal; silent otherwise. Yields ``update(done, total)``."""
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err, disable=not err.is_terminal, transient=False)
    task = bar.add_task(label, total=None)
    seen = [0, None]

    def update(done: int, total: int | None) -> None:
        seen[:] = done, total
        bar.update(task, completed=done, total=total)

    try:
        with bar:
            yield update
    except KeyboardInterrupt:
        err.print(f"{label}: stopped at {seen[0]} of {seen[1] if seen[1] is not None else '?'}; what finished is "
                  "kept and a re-run resumes from there", markup=False, highlight=False)
        raise


def _open(path: Path, kind: str | None):
    from genrefusion.datasets import open_dataset

    return open_dataset(path, kind=kind)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        out.print(f"genrefusion {__version__}")
        raise typer.Exit(EXIT_OK)


@datasets_app.command("kinds")
def datasets_kinds():
    """List the dataset kinds genrefusion can read."""
    from genrefusion.datasets import DATASETS

    table = Table("kind", "description")
    for kind in sorted(DATASETS.values(), key=lambda k: k.name):
        table.add_row(kind.name, kind.description)
    out.print(table)


@datasets_app.command("describe")
def datasets_describe(path: Path = typer.Argument(..., help="Dataset folder, manifest or table."),
                      kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
                      as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Counts per genre and per published split, modalities, and problems found while indexing."""
    summary = _open(path, kind).summary().to_dict()
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"[bold]{summary['name']}[/] ({summary['kind']}) at {summary['root']}: {summary['n_tracks']} tracks, "
              f"{len(summary['per_genre'])} genres, {summary['n_artists']} artists known")
    out.print("modalities: " + ", ".join(f"{k} {v}" for k, v in summary["modalities"].items()))
    table = Table("genre", "tracks", title="tracks per genre")
    for genre, n in summary["per_genre"].items():
        table.add_row(genre, str(n))
    out.print(table)
    for name, parts in summary["splits"].items():
        split_table = Table("genre", *parts, title=f"published split {name!r}")
        for genre in summary["per_genre"]:
            split_table.add_row(genre, *[str(parts[p].get(genre, 0)) for p in parts])
        split_table.add_row("all", *[str(sum(parts[p].values())) for p in parts])
        out.print(split_table)
    _print_problems(summary["problems"])


def _print_problems(problems: list[str], limit: int = 20) -> None:
    if not problems:
        out.print("no problems found")
        return
    out.print(f"[yellow]{len(problems)} problem(s):[/]")
    for p in problems[:limit]:
        out.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
    if len(problems) > limit:
        out.print(f"  ... and {len(problems) - limit} more (use --json for all)")


@datasets_app.command("validate")
def datasets_validate(path: Path = typer.Argument(..., help="Dataset folder, manifest or table."),
                      kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
                      decode: bool = typer.Option(False, "--decode", help="Decode every file in full (slower; "
                                                  "also finds truncated and silent audio)."),
                      workers: int = typer.Option(1, "--workers", min=1, help="Processes checking files."),
                      as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Check every file of a dataset; exit code 3 if any is missing, corrupt or unusable."""
    from genrefusion.datasets.validate import validate_dataset

    ds = _open(path, kind)
    with _progress("validating") as update:
        problems = validate_dataset(ds, decode=decode, workers=workers, on_progress=update)
    texts = [str(p) for p in problems]
    if as_json:
        out.print_json(json.dumps({"dataset": ds.name, "n_tracks": len(ds), "problems": texts}))
    else:
        out.print(f"{ds.name} ({ds.kind}): {len(ds)} tracks checked")
        _print_problems(texts)
    raise typer.Exit(EXIT_PARTIAL if problems else EXIT_OK)


@features_app.command("list")
def features_list():
    """Every registered feature with its input, output shape and parameters."""
    from genrefusion.features import FEATURES

    table = Table("name", "input", "default", "shape", "parameters")
    for spec in sorted(FEATURES.values(), key=lambda s: (s.input, s.name)):
        table.add_row(spec.name, spec.input, "yes" if spec.default else "", spec.shape,
                      ", ".join(f"{k}={v}" for k, v in spec.params.items()))
    out.print(table)


def _parse_sets(sets: list[str]) -> dict[str, dict]:
    params: dict[str, dict] = {}
    for item in sets:
        name, eq, value = item.partition("=")
        feature, dot, param = name.partition(".")
        if not (eq and dot and feature and param):
            raise UsageError(f"--set expects FEATURE.PARAM=VALUE, got {item!r}")
        params.setdefault(feature.strip(), {})[param.strip()] = yaml.safe_load(value)
    return params


@app.command("extract")
def extract_cmd(dataset: Path = typer.Argument(..., help="Dataset folder, manifest or table."),
                kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
                features: Optional[str] = typer.Option(None, "--features", help="Comma-separated names (see "
                                                       "`genrefusion features list`); default: the default set for "
                                                       "the dataset's inputs."),
                sets: list[str] = typer.Option([], "--set", metavar="FEATURE.PARAM=VALUE",
                                               help="Feature parameter; repeatable."),
                store: Path = typer.Option(Path("store"), "--store", help="Feature store folder."),
                workers: Optional[int] = typer.Option(None, "--workers", min=0, help=WORKERS_HELP + " Default 1; 0: "
                                                      "in this process."),
                engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
                address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
                run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run's config, report and "
                                                       "failures.csv go; default runs/extract-<time>."),
                sr: int = typer.Option(22050, "--sr", help="Sample rate audio is resampled to (Hz)."),
                offset: float = typer.Option(0.0, "--offset", help="Seconds skipped at the start of each file."),
                duration: Optional[float] = typer.Option(None, "--duration", help="Seconds read from each file "
                                                         "(default: all, up to --max-duration)."),
                max_duration: float = typer.Option(600.0, "--max-duration", min=0, help="Longer files are read "
                                                   "this far (seconds), so a worker's memory stays flat in file "
                                                   "length; 0 reads whole files whatever their length."),
                min_duration: float = typer.Option(0.5, "--min-duration", help="Shorter audio is reported as bad.")):
    """Compute features for every track into the store: parallel, resumable, a no-op when current."""
    from genrefusion.features.extract import ExtractConfig, extract, plan_features
    from genrefusion.features.store import FeatureStore

    ds = _open(dataset, kind)
    names = [n.strip() for n in features.split(",") if n.strip()] if features else []
    workers = _workers(workers, engine, address, 1)
    config = ExtractConfig(features=names, params=_parse_sets(sets), sr=sr, offset=offset, duration=duration,
                           min_duration=min_duration, workers=workers, max_duration=max_duration or None,
                           engine=engine, address=address)
    try:  # names and parameters checked before a store or run folder exists
        jobs = plan_features(ds, config)
    except FeatureError as e:
        if not (features or sets):
            raise
        raise UsageError(f"--features/--set: {e}") from None  # a bad option value
    run_dir = run_dir or Path("runs") / time.strftime("extract-%Y%m%d-%H%M%S")
    fs = FeatureStore(store)
    try:
        with _progress(f"extracting {ds.name}") as update:
            report = extract(ds, fs, config, run_dir=run_dir, on_progress=update, jobs=jobs)
    finally:
        fs.close()
    out.print(f"{report.n_tracks} inputs: {report.n_computed} computed, {report.n_up_to_date} already current, "
              f"{report.n_failed} failed, in {report.wall_s:.1f} s ({report.tracks_per_s:.2f}/s, "
              f"{workers or 'all CPUs as'} workers{' on Ray' if engine == 'ray' else ''})")
    for name, key in report.features.items():
        out.print(f"  {name} -> {store / 'features' / key}", highlight=False, soft_wrap=True)
    out.print(f"run folder: {run_dir}", highlight=False, soft_wrap=True)
    if report.cut:
        out.print(f"{len(report.cut)} file(s) longer than {max_duration:g} s: their features describe the first "
                  f"{max_duration:g} s (--max-duration 0 reads whole files), e.g. {', '.join(report.cut[:3])}",
                  highlight=False, soft_wrap=True)
    if ds.problems:  # what indexing left out (names outside the dataset's pattern, links, pipes): never silent
        err.print(f"{len(ds.problems)} entr{'y' if len(ds.problems) == 1 else 'ies'} of the dataset not extracted "
                  "(also in report.json):", markup=False)
        for p in ds.problems[:20]:
            err.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
        if len(ds.problems) > 20:
            err.print(f"  ... and {len(ds.problems) - 20} more", markup=False)
    if report.failures:
        _print_problems([f"{f.path}: {f.feature}: {f.reason}" for f in report.failures])
        raise typer.Exit(EXIT_PARTIAL)


@splits_app.command("make")
def splits_make(dataset: Path = typer.Argument(..., help="Dataset folder, manifest or table."),
                out_file: Path = typer.Option(..., "--out", help="CSV file to write (track_id,part,genre,artist)."),
                kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
                fractions: str = typer.Option("train=0.7,valid=0.15,test=0.15", "--fractions",
                                              help="part=fraction,...; e.g. branches=0.4,fusion=0.4,test=0.2"),
                published: Optional[str] = typer.Option(None, "--published", help="Use the dataset's published "
                                                        "split of this name instead (e.g. fault_filtered)."),
                seed: int = typer.Option(0, "--seed"),
                by_artist: Optional[bool] = typer.Option(None, "--by-artist/--no-by-artist",
                                                         help="Group by artist (default: when artists are known).")):
    """Make a stratified (artist-grouped) or published split, check it for leaks, save it as CSV."""
    from genrefusion.splits import published_split, stratified_split

    ds = _open(dataset, kind)
    if published:
        split = published_split(ds, published)
    else:
        try:
            parts = {k.strip(): float(v) for k, v in (p.split("=") for p in fractions.split(","))}
        except ValueError:
            raise UsageError(f"--fractions expects part=fraction,..., got {fractions!r}") from None
        split = stratified_split(ds, fractions=parts, seed=seed, group_by_artist=by_artist)
    split.save(out_file, ds)
    out.print(f"{split.name}: " + ", ".join(f"{p} {n}" for p, n in split.counts().items()) + f" -> {out_file}",
              highlight=False)


@store_app.command("info")
def store_info(store: Path = typer.Argument(Path("store"), help="Feature store folder.")):
    """Entries and sizes of every feature key in a store."""
    from genrefusion.features.store import FeatureStore

    if not (store / "features").is_dir():
        raise GenreFusionError("not a feature store (no features/ folder)", path=store)
    fs = FeatureStore(store)
    table = Table("key", "feature", "entries", "MB live", "MB on disk")
    for key in fs.keys():
        f = fs.feature(key)
        s = f.stats()
        table.add_row(key, str(f.spec.get("feature", "?")), str(s["entries"]), f"{s['live_bytes'] / 1e6:.1f}",
                      f"{s['pack_bytes'] / 1e6:.1f}")
    out.print(table)
    fs.close()


@store_app.command("verify")
def store_verify(store: Path = typer.Argument(Path("store"), help="Feature store folder."),
                 repair: bool = typer.Option(False, "--repair", help="Forget the damaged entries, so the next "
                                             "extract computes them again.")):
    """Check every entry's bytes against its index (length and checksum); exit code 3 if any is damaged."""
    from genrefusion.features.store import FeatureStore

    if not (store / "features").is_dir():
        raise GenreFusionError("not a feature store (no features/ folder)", path=store)
    fs = FeatureStore(store)
    damaged = 0
    try:
        for key in fs.keys():
            f = fs.feature(key)
            found = f.verify(repair=repair)
            damaged += len(found)
            out.print(f"{key}: {len(f) + (len(found) if repair else 0)} entries, "
                      + (f"{len(found)} damaged" + (" (forgotten; extract recomputes them)" if repair else "")
                         if found else "all intact"), highlight=False)
            if found:
                _print_problems([f"{tid}: {reason}" for tid, reason in found])
    finally:
        fs.close()
    raise typer.Exit(EXIT_PARTIAL if damaged and not repair else EXIT_OK)


@models_app.command("list")
def models_list():
    """Every registered branch (its input and hyper-parameters) and fusion strategy."""
    from genrefusion.fusion import FUSIONS
    from genrefusion.models import BRANCHES

    table = Table("branch", "input", "family", "description", "arguments", title="branches")
    table.columns[0].no_wrap = True
    for spec in sorted(BRANCHES.values(), key=lambda s: (s.family, s.name)):
        table.add_row(spec.name, spec.input + (" (several)" if spec.multi_input else ""), spec.family, spec.description,
                      ", ".join(f"{k}={v}" for k, v in spec.params.items()))
    out.print(table)
    table = Table("fusion", "kind", "description", "arguments", title="fusion strategies")
    table.columns[0].no_wrap = True
    for spec in sorted(FUSIONS.values(), key=lambda s: (s.kind, s.name)):
        table.add_row(spec.name, spec.kind, spec.description, ", ".join(f"{k}={v}" for k, v in spec.params.items()))
    out.print(table)


@recipes_app.command("list")
def recipes_list():
    """The shipped recipes: name, what they reproduce, and the file to pass to `genrefusion train`."""
    from genrefusion.recipes import list_recipes

    table = Table("recipe", "description", "file")
    table.columns[0].no_wrap = True
    for r in list_recipes():
        table.add_row(r.name, r.description, str(r.path))
    out.print(table)


def _log(msg: str) -> None:
    err.print(msg, markup=False, highlight=False, soft_wrap=True)


@app.command("train")
def train_cmd(config: str = typer.Argument(..., help="Run config (YAML or TOML), or a shipped recipe's name."),
              sets: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Override, with a dotted key "
                                             "(e.g. train.epochs=3); repeatable."),
              run_dir: Optional[Path] = typer.Option(None, "--out", help="Run folder; default runs/<name>. An "
                                                     "interrupted run in the same folder resumes.")):
    """Train and evaluate what a config describes; write the run folder (config, split, metrics, report, bundle)."""
    from genrefusion.config import load_config
    from genrefusion.recipes import resolve_config
    from genrefusion.training.run import train_run

    from genrefusion.training.trainer import epoch_progress

    cfg = load_config(resolve_config(config), sets)
    run_dir = run_dir or Path("runs") / cfg.name
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=err, disable=not err.is_terminal)
    tasks: dict[str, int] = {}

    def on_extract(done, total):
        tasks.setdefault("extract", bar.add_task("extracting features", total=total))
        bar.update(tasks["extract"], completed=done, total=total)

    def on_epoch(stage, done, total):
        if stage not in tasks or bar.tasks[tasks[stage]].finished:  # a new stage, or the next seed/repeat
            tasks[stage] = bar.add_task(f"training {stage}", total=total)
        bar.update(tasks[stage], completed=done)

    token = epoch_progress.set(on_epoch)
    try:
        with bar:
            summary = train_run(cfg, run_dir, log=_log, on_extract_progress=on_extract)
    finally:
        epoch_progress.reset(token)
    acc, f1 = summary.result.accuracy, summary.result.macro_f1
    out.print(f"{cfg.name}: test accuracy {acc.mean:.4f}"
              + (f" ± {acc.std:.4f} over {len(acc.values)}" if len(acc.values) > 1 else "")
              + f", macro-F1 {f1.mean:.4f} -> {run_dir}", highlight=False)


@app.command("evaluate")
def evaluate_cmd(run: Path = typer.Argument(..., help="A run folder (with bundle/)."),
                 data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on every track of this dataset "
                                                     "instead of the run's test tracks."),
                 kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
                 inputs: list[str] = typer.Option([], "--input", metavar="NAME=FEATURE", help="Compute input NAME with another "
                                                  "feature giving the same array (e.g. image=mel_image to apply a model "
                                                  "trained on spectrogram PNGs to audio); repeatable.")):
    """Re-evaluate a trained run's model (test part, or another dataset)."""
    from genrefusion.training.run import evaluate_run

    pairs = {}
    for item in inputs:
        name, eq, feature = item.partition("=")
        if not eq or not name or not feature:
            raise UsageError(f"--input expects NAME=FEATURE, got {item!r}")
        pairs[name.strip()] = feature.strip()
    result = evaluate_run(run, data=data, kind=kind, inputs=pairs or None, log=_log)
    t = result["track"]
    out.print(f"{result['n_tracks']} tracks: accuracy {t['accuracy']:.4f}, balanced accuracy "
              f"{t['balanced_accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f}", highlight=False)
    if result["problems"]:
        _print_problems(result["problems"])


@app.command("compare")
def compare_cmd(runs: list[Path] = typer.Argument(..., metavar="RUN", help="Run folders."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                markdown: bool = typer.Option(False, "--markdown", help="Print a markdown table.")):
    """A table of test results across runs (mean ± std over seeds, repeats or folds)."""
    from genrefusion.evaluation.report import compare_rows

    rows = sorted(compare_rows(runs), key=lambda r: -r["accuracy"])
    if as_json:
        out.print_json(json.dumps(rows))
        return
    cols = ("run", "model", "protocol", "n", "accuracy", "macro-F1", "seconds")
    cells = [(r["name"], r["model"], r["protocol"], str(r["n_evaluations"]),
              f"{100 * r['accuracy']:.1f} ± {100 * r['accuracy_std']:.1f}",
              f"{100 * r['macro_f1']:.1f} ± {100 * r['macro_f1_std']:.1f}", f"{r['seconds']:.0f}") for r in rows]
    if markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for c in cells:
            print("| " + " | ".join(c) + " |")
        return
    table = Table(*cols)
    for c in cells:
        table.add_row(*c)
    out.print(table)


@app.command("benchmark")
def benchmark_cmd(suites: list[str] = typer.Argument(None, metavar="SUITE",
                                                   help="Suites to run (default: all; see --list)."),
                  quick: bool = typer.Option(False, "--quick", help="One seed, two epochs: proves the code runs."),
                  data: Optional[Path] = typer.Option(None, "--data", help="Root of the shared data (default: the "
                                                      "recipes' data_root in recipes/defaults.yaml)."),
                  report: Path = typer.Option(Path("docs/BENCHMARKS.md"), "--out", help="The report to write."),
                  runs: Path = typer.Option(Path("runs/benchmarks"), "--runs", help="Where the suites' run folders go."),
                  store: Path = typer.Option(Path("store"), "--store", help="Feature store shared by all runs."),
                  seeds: int = typer.Option(5, "--seeds", min=1, help="Seeds per model on fixed splits (full mode)."),
                  resume: bool = typer.Option(False, "--resume", help="Keep the entries an earlier run of the same "
                                              "suite, mode and --seeds finished (in the report's results.json); run the rest."),
                  rerun: Optional[list[str]] = typer.Option(None, "--rerun", metavar="ID|TEXT", help="With --resume: run "
                                                            "again the entry with this id, or those whose label contains "
                                                            "this text (repeatable), e.g. after a fix."),
                  engine: str = typer.Option("local", "--engine", help="local (entries one after another) or ray "
                                             "(the training suites' entries as Ray tasks; needs .[ray])."),
                  address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
                  list_only: bool = typer.Option(False, "--list", help="List the suites (with SUITE: its entries' "
                                                 "ids) and exit.")):
    """Run benchmark suites on the shared data and regenerate docs/BENCHMARKS.md."""
    from genrefusion.benchmarks.run import SPEED, benchmark
    from genrefusion.benchmarks.suites import SUITES
    from genrefusion.recipes import data_root

    if list_only and suites:
        from genrefusion.benchmarks.suites import get_suite

        table = Table("suite", "id", "model")
        for s in (get_suite(n) for n in suites if n != SPEED):
            for e in s.entries:
                table.add_row(s.name, e.id, e.label)
        table.columns[1].no_wrap = True
        out.print(table)
        return
    if list_only:
        table = Table("suite", "title", "models", "protocol")
        table.columns[0].no_wrap = True
        for s in SUITES.values():
            table.add_row(s.name, s.title, str(len(s.entries)), s.protocol)
        table.add_row(SPEED, "Speed: decode, features, branches, prediction (1/2 workers, torch/ONNX), naive baseline",
                      "—", "GTZAN's real 30 s clips, the packaged default model")
        out.print(table)
        return
    _workers(None, engine, address, 1)
    path = benchmark(list(suites or [*SUITES, SPEED]), data_root=str(data or data_root()), out=report, runs_dir=runs,
                     quick=quick, seeds=seeds, store=str(store), resume=resume, rerun=tuple(rerun or ()), log=_log,
                     engine=engine, address=address)
    out.print(f"wrote {path}", highlight=False)


@app.command("musicnn-tags")
def tags_cmd(paths: list[Path] = typer.Argument(..., metavar="AUDIO", help="Audio files."),
             tagger: str = typer.Option("msd-musicnn", "--tagger", help="msd-musicnn, mtt-musicnn, msd-vgg or mtt-vgg."),
             top: int = typer.Option(5, "--top", min=1, help="Tags shown per file (text format)."),
             fmt: str = typer.Option("text", "--format", help="text or json (every tag's probability)."),
             old_model: Optional[str] = typer.Option(None, "--model", hidden=True, help="Old name of --tagger.")):
    """musicnn tag probabilities of audio files (50 MSD or MagnaTagATune tags), averaged over 3 s patches (what a
    pretrained tagger hears; for genres, `predict`; for a whole library, `tag`)."""
    from genrefusion.pretrained.musicnn import MODELS, tag_file

    model = old_model or tagger
    if model not in MODELS:
        raise UsageError(f"--tagger must be one of {', '.join(MODELS)}, got {model!r}")
    if fmt not in ("text", "json"):
        raise UsageError(f"--format must be text or json, got {fmt!r}")
    results, failed = [], []
    for path in paths:
        try:
            results.append({"path": str(path), "tags": tag_file(path, model=model)})
        except GenreFusionError as e:
            failed.append(str(e))
    if fmt == "json":
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            best = sorted(r["tags"].items(), key=lambda kv: -kv[1])[:top]
            out.print(f"{r['path']}: " + ", ".join(f"{t} {p:.2f}" for t, p in best), highlight=False, soft_wrap=True)
    for f in failed:
        err.print(f"error: {f}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_PARTIAL if failed else EXIT_OK)


MODEL_HELP = "A model bundle, or a run folder with bundle/ (default: the model shipped with genrefusion)."
PROFILE_HELP = ("The shipped model's profile: fast (the default; fewer 3 s patches through one tagger) or accurate "
                "(two taggers, more patches).")
BACKEND_HELP = "torch, or onnx (needs `genrefusion export --onnx` on the bundle first)."
FORMATS = ("text", "json", "jsonl", "csv")



app.command("tags", hidden=True)(tags_cmd)  # its name in an earlier release, next to `tag`


@model_app.command("info")
def model_info(model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
               profile: Optional[str] = typer.Option(None, "--profile", help=PROFILE_HELP),
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The model card: labels, training data, protocol, measured accuracy, inputs."""
    from genrefusion.bundle import read_meta
    from genrefusion.inference.predictor import model_card, resolve_bundle

    from genrefusion.inference.card import describe

    folder = resolve_bundle(model, profile)
    card = model_card(folder, read_meta(folder))
    if as_json:
        print(json.dumps(card, indent=1))
        return
    for line in describe(card):
        out.print(line, highlight=False, soft_wrap=True, markup=False)


@model_app.command("package")
def model_package(run: Path = typer.Argument(..., help="A run folder of the default-model or default-model-fast recipe."),
                  profile: str = typer.Option(..., "--profile", help="Which of the shipped profiles it becomes."),
                  cross: Optional[Path] = typer.Option(None, "--cross", help="The benchmark results.json whose cross "
                                                       "suite gives the card its cross-collection figures.")):
    """Copy a run's bundle into the installed package as a profile of the default model (for maintainers)."""
    import shutil

    from genrefusion.bundle import FORMAT, read_meta
    from genrefusion.inference.card import add_cross_figures
    from genrefusion.inference.predictor import DEFAULT_ROOT, PROFILES, resolve_bundle

    if profile not in PROFILES:
        raise UsageError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    folder = resolve_bundle(run)
    if read_meta(folder)["format"] != FORMAT:  # the shipped model is in today's format: data only
        raise UsageError(f"an older bundle format: convert it first (genrefusion model convert {folder} --out NEW)",
                         path=folder)
    target = DEFAULT_ROOT / profile
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("onnx", "*.tmp"))
    if cross is not None:
        add_cross_figures(target, cross)
    out.print(f"default model, profile {profile} <- {folder}", highlight=False)


@model_app.command("convert")
def model_convert(model: Path = typer.Argument(..., help="A bundle (or a run folder with bundle/) in an older format."),
                  dest: Path = typer.Option(..., "--out", help="The new bundle's folder (new or empty)."),
                  allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Read the old bundle's objects.pkl, "
                                                    "a Python pickle that runs code when read: only for a bundle you "
                                                    "made or trust.")):
    """Rewrite an older bundle in today's format: JSON and arrays, no pickle."""
    from genrefusion.bundle import convert_bundle
    from genrefusion.inference.predictor import resolve_bundle

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError("--out must be a new or empty folder", path=dest)
    out.print(f"converted {model} -> {convert_bundle(resolve_bundle(model), dest, allow_pickle=allow_pickle)}",
              highlight=False)


def _bar(p: float, width: int = 30) -> str:
    full = int(round(p * width))
    return "█" * full + "░" * (width - full)


@app.command("predict")
def predict_cmd(paths: list[str] = typer.Argument(..., metavar="AUDIO",
                                                 help="Audio files, folders (recursive) or globs."),
                model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
                profile: Optional[str] = typer.Option(None, "--profile", help=PROFILE_HELP),
                top: int = typer.Option(3, "--top", min=1, help="Genres shown per file."),
                fmt: str = typer.Option("text", "--format", help="text (bars), json, jsonl or csv."),
                timeline: bool = typer.Option(False, "--timeline", help="Also the genre of each window in time."),
                workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP + " Default 1."),
                backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
                engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
                address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP)):
    """Genres of audio files ("not sure" below the model's confidence bar; "no music" for silence, "too short"
    for clips shorter than the model needs). Bad files are reported and skipped (exit code 3 if any)."""
    import csv as csv_mod

    from genrefusion.bundle import read_meta
    from genrefusion.inference.predictor import (STATUS_WORDS, Predictor, audio_sources, check_backend, expand_paths,
                                                 predict_files, resolve_bundle)

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    workers = _workers(workers, engine, address, 1)
    files, skipped = expand_paths(paths)
    # a bad --model fails here, once; with worker processes this process never loads the model (nor torch)
    folder = resolve_bundle(model, profile)
    meta = read_meta(folder)
    audio_sources(meta, folder)
    check_backend(backend)
    predictor = Predictor(folder, backend=backend) if workers == 1 and engine == "local" else None
    top = min(top, len(meta["labels"]))
    results = []
    writer = csv_mod.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(["path", "status", "reason", "start_s", "end_s",
                         *[f"{k}{i}" for i in range(1, top + 1) for k in ("genre", "p")]])
    n_failed = 0

    def not_taken(path: str, status: str, reason: str) -> None:
        """A file that gives no prediction, in every format: an error, or skipped for its name."""
        row = {"path": path, "status": status, "reason": reason}
        if fmt == "json":
            results.append(row)
        elif fmt == "jsonl":
            print(json.dumps(row), flush=True)
        elif writer:
            writer.writerow([path, status, reason])
        if status == "error":
            err.print(f"error: {path}: {reason}", markup=False, highlight=False, soft_wrap=True)

    for s in skipped:
        n_failed += s.failed
        not_taken(s.path, "error" if s.failed else "skipped", s.reason)
    if fmt == "text":
        _say_skipped([s for s in skipped if not s.failed])
    for path, pred, error in predict_files(files, bundle=model, workers=workers, backend=backend,
                                            predictor=predictor, profile=profile, engine=engine, address=address):
        if error is not None:
            n_failed += 1
            not_taken(path, "error", error)
            continue
        d = pred.to_dict(top_k=top, timeline=timeline)
        if fmt == "json":
            results.append(d)
        elif fmt == "jsonl":
            print(json.dumps(d), flush=True)
        elif writer:
            def ranked(proba):
                return sorted(zip(pred.labels, proba), key=lambda t: -t[1])[:top]

            rows = [(pred.status, None, None, pred.top(top))] + (
                [(w.status, w.start_s, w.end_s, ranked(w.proba) if w.status == "ok" else []) for w in pred.windows]
                if timeline else [])
            for status, start, end, best in rows:
                writer.writerow([path, status, pred.reason if start is None else "",
                                 "" if start is None else f"{start:.2f}", "" if end is None else f"{end:.2f}",
                                 *[v for g, p in best for v in (g, f"{p:.5f}")]])
        else:
            words = STATUS_WORDS[pred.status]
            out.print(f"[bold]{path}[/] ({d['duration_s']:.1f} s)" + (f": [bold]{words}[/] ({pred.reason})" if words else ""),
                      highlight=False, soft_wrap=True)
            for g, p in pred.top(top):
                out.print(f"  {g:<12} {_bar(p)} {100 * p:5.1f} %", highlight=False)
            for w in d.get("timeline", []):
                what = f"{w['genre']:<12} {100 * w['probability']:5.1f} %" if w["genre"] else STATUS_WORDS[w["status"]]
                out.print(f"    {w['start_s']:7.1f}-{w['end_s']:7.1f} s  {what}", highlight=False)
    if fmt == "json":
        print(json.dumps(results, indent=1))
    if n_failed:
        err.print(f"{n_failed} file(s) failed", markup=False)
    raise typer.Exit(EXIT_PARTIAL if n_failed else EXIT_OK)


#: The optional extras a command needs (as in ``pip install 'genrefusion[serve]'``) and the modules they bring.
EXTRAS = {"serve": ("fastapi", "uvicorn", "multipart"), "onnx": ("onnx",), "tags": ("mutagen",)}


def _needs(extra: str, what: str) -> None:
    """One line naming the install that fixes a missing extra, before any work is done."""
    import importlib.util

    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise GenreFusionError(f"{what} needs the optional '{extra}' extra ({', '.join(missing)} not installed): "
                               f"pip install 'genrefusion[{extra}]'")


def _say_skipped(skipped: list, limit: int = 5) -> None:
    """Entries of the named folders left out for their names: counted by kind, the first few named."""
    if not skipped:
        return
    kinds: dict[str, int] = {}
    for s in skipped:
        kinds[s.reason] = kinds.get(s.reason, 0) + 1
    err.print(f"skipped {len(skipped)} entries that are not audio: " + "; ".join(f"{n} {r}" for r, n in kinds.items())
              + " (--format json lists them all)", markup=False, highlight=False, soft_wrap=True)
    for s in skipped[:limit]:
        err.print(f"  skipped: {s}", markup=False, highlight=False, soft_wrap=True)


@app.command("tag")
def tag_cmd(library: Path = typer.Argument(..., help="A music folder (scanned recursively)."),
            db: Path = typer.Option(Path("genrefusion-tags.sqlite"), "--db", help="SQLite file of results; a re-run "
                                    "resumes and only processes new or changed files."),
            shards: Optional[Path] = typer.Option(None, "--shards", help="Keep the results in this folder of "
                                                  "Parquet shards instead of --db (one shard per batch; for very "
                                                  "large libraries; read with genrefusion.read_tags)."),
            model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
            profile: Optional[str] = typer.Option(None, "--profile", help=PROFILE_HELP),
            workers: Optional[int] = typer.Option(None, "--workers", min=1, help=WORKERS_HELP + " Default 2."),
            backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
            engine: str = typer.Option("local", "--engine", help=ENGINE_HELP),
            address: Optional[str] = typer.Option(None, "--address", help=ADDRESS_HELP),
            export_to: Optional[Path] = typer.Option(None, "--export", help="Also write every result to this "
                                                     ".csv or .json file."),
            write_tags: bool = typer.Option(False, "--write-tags", help="Write the predicted genre into each "
                                            "file's genre tag (mutagen)."),
            overwrite: bool = typer.Option(False, "--overwrite", help="With --write-tags: replace existing genres."),
            dry_run: bool = typer.Option(False, "--dry-run", help="With --write-tags: only show what would change."),
            prune: bool = typer.Option(False, "--prune", help="Delete the rows of files no longer in the library "
                                       "(default: keep them, marked missing).")):
    """Tag a whole library: predictions go to an SQLite file that mirrors it (new, changed and failed files are
    (re)done, gone files marked missing); files' own tags only with --write-tags. Exit code 3 while any file fails."""
    from genrefusion.audio import path_problem
    from genrefusion.inference.library import LibraryDB, ShardStore, check_export, export, tag_library, write_genre_tags

    # everything that can be wrong with the command is found before the pass and before a database exists
    if shards is not None and db != Path("genrefusion-tags.sqlite"):
        raise UsageError("--db and --shards are two places for the same results; pass one")
    if (overwrite or dry_run) and not write_tags:
        raise UsageError("--overwrite and --dry-run apply to --write-tags; add it")
    if export_to is not None:
        check_export(export_to)
    if write_tags:
        _needs("tags", "--write-tags")
    workers = _workers(workers, engine, address, 2)
    if not library.is_dir() and path_problem(library):
        raise GenreFusionError(f"library {path_problem(library)}", path=library)
    with (LibraryDB(db) if shards is None else ShardStore(shards)) as database, _progress("tagging") as update:
        report = tag_library(library, database, bundle=model, profile=profile, workers=workers, backend=backend,
                             prune=prune, engine=engine, address=address, on_progress=update,
                             on_error=lambda p, e: err.print(f"error: {p}: {e}", markup=False, highlight=False,
                                                             soft_wrap=True))
        _say_skipped([s for s in report.not_taken if not s.failed])
        gone = f", {report.missing} gone ({'rows deleted' if prune else 'marked missing; --prune deletes them'})" \
            if report.missing else ""
        out.print(f"{report.found} audio files: {report.skipped} unchanged, {report.tagged} tagged, "
                  f"{report.failed} failed{gone} in {report.seconds:.1f} s -> {database.path}", highlight=False)
        if export_to:
            out.print(f"wrote {export(database, export_to)} rows to {export_to}", highlight=False)
        if write_tags:
            changes = write_genre_tags(database, dry_run=dry_run, overwrite=overwrite)
            for c in changes:
                if c.action == "write":
                    before = f"genre {c.old!r}" if c.old else "no genre"
                    out.print(f"{c.path}: {'would set' if dry_run else 'set'} genre {c.new!r} (was {before})",
                              highlight=False, soft_wrap=True)
                elif c.action != "same":
                    verb = "kept existing genre" if c.action == "keep" else c.action
                    out.print(f"{c.path}: {verb} {c.old!r} (predicted {c.new!r})", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_PARTIAL if report.failed else EXIT_OK)


@app.command("serve")
def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (localhost by default)."),
              port: int = typer.Option(8000, "--port"),
              model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
              profile: Optional[str] = typer.Option(None, "--profile", help=PROFILE_HELP),
              backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
              max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="Largest upload accepted."),
              timeout: float = typer.Option(60.0, "--timeout", help="Seconds a request may wait and run."),
              concurrency: int = typer.Option(2, "--concurrency", min=1, help="Predictions run at once.")):
    """The HTTP service: POST /predict, GET /health, GET /model, and a web page at /."""
    _needs("serve", "serve")
    from genrefusion.inference.predictor import Predictor
    from genrefusion.inference.service import ServiceConfig, serve

    serve(Predictor(model, backend=backend, profile=profile), host=host, port=port,
          config=ServiceConfig(max_upload_mb=max_upload_mb, timeout_s=timeout, concurrency=concurrency))


@app.command("export")
def export_cmd(model: Optional[Path] = typer.Argument(None, help=MODEL_HELP),
               onnx: bool = typer.Option(False, "--onnx", help="Export the networks to ONNX (<bundle>/onnx/)."),
               out_dir: Optional[Path] = typer.Option(None, "--out", help="Export into a copy of the bundle here "
                                                      "(needed for a bundle inside the installed package)."),
               atol: float = typer.Option(1e-4, "--atol", help="Largest difference from torch accepted.")):
    """Export a bundle's networks to ONNX, checked against torch, for --backend onnx."""
    import shutil

    import genrefusion
    from genrefusion.inference.predictor import resolve_bundle

    if not onnx:
        raise UsageError("name a format: --onnx")
    _needs("onnx", "export --onnx")
    from genrefusion.inference.onnx import export_onnx

    folder = resolve_bundle(model)
    if out_dir is not None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise UsageError("--out must be a new or empty folder", path=out_dir)
        shutil.copytree(folder, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("onnx", "*.tmp"))
        folder = out_dir
    elif folder.resolve().is_relative_to(Path(genrefusion.__file__).resolve().parent):
        raise UsageError("this bundle is part of the installed genrefusion package, which export does not write "
                         "into; pass --out FOLDER to export a copy", path=folder)
    for path in export_onnx(folder, atol=atol):
        out.print(f"wrote {path}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: GenreFusionError becomes one line on stderr and exit code 1."""
    from genrefusion.workers import stop_on_signals

    # SIGTERM (kill, a batch system's stop) unwinds like Ctrl-C: workers stopped, finished work committed
    with stop_on_signals() as stop:
        try:
            code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
        except GenreFusionError as e:
            err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            return e.exit_code
        except typer.Exit as e:
            code = e.exit_code
        except KeyboardInterrupt:
            code = 130
        except Exception as e:
            if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's usage errors (typer vendors click)
                e.show()
                return EXIT_USAGE
            if type(e).__name__ != "Abort":
                raise
            code = 130
    if stop.signum is not None:  # typer turns the interrupt into exit code 130 whatever the signal
        err.print("interrupted; completed work is kept and a re-run resumes", markup=False)
        return stop.exit_code
    return code if isinstance(code, int) else EXIT_OK

if __name__ == "__main__":
    sys.exit(main())
