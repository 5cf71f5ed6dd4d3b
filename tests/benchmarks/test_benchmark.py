"""The benchmark machinery on the synthetic dataset: runs, a failing entry reported, the report written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrefusion.benchmarks import run as run_mod
from genrefusion.benchmarks import suites as suites_mod
from genrefusion.benchmarks.run import benchmark
from genrefusion.benchmarks.suites import SUITES, Entry, Suite, entry_config
from genrefusion.errors import ConfigError
from tests.conftest import SHARED, needs_shared
from tests.training.conftest import synth_gtzan, synth_store  # noqa: F401  (fixtures)


def test_a_suite_runs_reports_failures_and_writes_the_file(synth_gtzan, synth_store, tmp_path, monkeypatch):  # noqa: F811
    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}},
            "inputs": {"table": {"feature": "table_row"}}}
    suite = Suite("synth", "Synthetic", "holdout", (
        Entry("logistic-regression", "logistic regression", {**base, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}),
        Entry("broken", "broken", {**base, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}},
                         "split": {"published": "no_such_split"}}),
    ), references=(("someone 2020", 50.0),))
    monkeypatch.setitem(SUITES, "synth", suite)
    written = []
    real_write = run_mod.write_benchmarks
    monkeypatch.setattr(run_mod, "write_benchmarks",
                        lambda *a, **k: written.append(real_write(*a, **k).read_text()) or k["out"])
    out = benchmark(["synth"], data_root=str(synth_gtzan.parent), out=tmp_path / "docs" / "BENCHMARKS.md",
                    runs_dir=tmp_path / "runs", quick=False, seeds=2, store=str(synth_store), log=lambda m: None)
    text = out.read_text()
    assert len(written) == 2 and "**Partial**: 1 of 2 entries" in written[0]  # written after the first entry too
    assert "| logistic regression |" in written[0] and "Partial" not in text
    assert "| logistic regression |" in text and "| broken | **failed** |" in text and "no_such_split" in text
    assert "*published: someone 2020*" in text and "Do not edit by hand" in text
    assert (tmp_path / "docs" / "benchmarks" / "synth-accuracy.png").is_file()
    results = json.loads((tmp_path / "docs" / "benchmarks" / "results.json").read_text())
    acc = results["suites"]["synth"]["entries"][0]["accuracy"]
    assert len(acc["values"]) == 2  # two seeds on the fixed split
    assert "| train s |" in text.replace(" | wall s", "")  # the recorded training time of each entry
    entry = results["suites"]["synth"]["entries"][0]  # its confusion matrix: each test track once (2 seeds, 1 split)
    assert entry["run_dir"] == f"synth/{Path(entry['run_dir']).name}"  # relative to --runs: no machine path
    metrics = json.loads((tmp_path / "runs" / entry["run_dir"] / "metrics.json").read_text())
    assert entry["confusion"]["labels"] == metrics["labels"]
    assert sum(map(sum, entry["confusion"]["counts"])) == metrics["evaluations"][0]["n_test"] > 0
    assert "±" not in text.split("| logistic regression |")[1].split("|")[1]  # the same for both seeds: no ± 0.0
    assert "![confusion](benchmarks/synth-best-confusion.png)" in text

    # Another suite run later joins the file; the first keeps its results and the line naming its command, and its
    # plots are drawn again from results.json alone (its run folders may be gone).
    first_line = next(line for line in text.splitlines() if line.startswith("Results of `"))
    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "docs" / "benchmarks" / "synth-best-confusion.png").unlink()
    monkeypatch.setitem(SUITES, "synth2", Suite("synth2", "Synthetic again", "holdout", suite.entries[:1]))
    text = benchmark(["synth2"], data_root=str(synth_gtzan.parent), out=tmp_path / "docs" / "BENCHMARKS.md",
                     runs_dir=tmp_path / "runs2", quick=True, store=str(synth_store), log=lambda m: None).read_text()
    assert "## Synthetic (`synth`)" in text and "## Synthetic again (`synth2`)" in text
    assert first_line in text and "| broken | **failed** |" in text
    sections = text.split("## ")
    assert "quick mode" in next(s for s in sections if s.startswith("Synthetic again")).lower()
    assert "quick mode" not in next(s for s in sections if s.startswith("Synthetic (")).lower()
    assert "which ran `synth2`" in text
    assert text.count("How to read it:") == 1 and text.count("mean ± std over seeds") == 1  # each meaning said once
    assert (tmp_path / "docs" / "benchmarks" / "synth-best-confusion.png").is_file()


def test_resume_keeps_finished_entries_and_runs_the_rest(synth_gtzan, synth_store, tmp_path, monkeypatch):  # noqa: F811
    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}},
            "inputs": {"table": {"feature": "table_row"}}, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}
    entries = (Entry("first", "first", base), Entry("second", "second", {**base, "split": {"published": "no_such_split"}}))
    monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", entries))
    report = tmp_path / "docs" / "BENCHMARKS.md"

    def run(resume: bool, quick: bool = False, seeds: int = 1, rerun: tuple[str, ...] = ()) -> list[str]:
        logged: list[str] = []
        benchmark(["synth"], data_root=str(synth_gtzan.parent), out=report, runs_dir=tmp_path / "runs", quick=quick,
                  seeds=seeds, store=str(synth_store), resume=resume, rerun=rerun, log=logged.append)
        return logged

    run(resume=False)
    first = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]["entries"][0]
    monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", (entries[0], Entry("second", "second", base))))
    logged = run(resume=True)
    assert "[synth] first: kept from the earlier run" in logged  # not trained again
    assert not any(m.startswith("[synth] second: kept") for m in logged)  # it failed before: run again
    section = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]
    assert section["entries"][0] == first and section["entries"][1]["ok"] and len(section["kept_from"]) == 1
    text = report.read_text()
    # provenance lives in results.json: the report says how many entries were kept, from how many commands
    assert "1 of these entries were kept by `--resume` from 1 earlier command, named in" in text
    assert "\n- `genrefusion " not in text
    assert "| second | **failed** |" not in text
    assert "full mode, 1 seed per model)" in text
    before = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]
    logged = run(resume=True)  # nothing left to run: the section stays under the commands that ran its entries
    assert "[synth] second: kept from the earlier run" in logged
    assert json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"] == before
    assert "which ran no entry (`--resume` kept them all)" in report.read_text()
    logged = run(resume=True, rerun=("seco",))  # after a fix: run one entry again, keep the others
    assert "[synth] first: kept from the earlier run" in logged and "[synth] second: second" in logged
    logged = run(resume=True, rerun=("first",))  # or name it by its id
    assert "[synth] first: first" in logged and "[synth] second: kept from the earlier run" in logged
    for bad, why in (({"rerun": ("third",)}, "no entry's id, nor in any entry's label"), ({"resume": False, "rerun": ("first",)}, "needs --resume")):
        with pytest.raises(ConfigError, match=why):
            run(**{"resume": True, **bad})
    assert not any("kept from" in m for m in run(resume=True, seeds=2))  # one seed's results are not two seeds'
    assert not any("kept from" in m for m in run(resume=True, quick=True))  # a quick run never keeps full-mode results


def test_an_entry_added_before_kept_ones_leaves_their_run_folders_alone(synth_gtzan, synth_store, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}},
            "inputs": {"table": {"feature": "table_row"}}, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}
    report = tmp_path / "docs" / "BENCHMARKS.md"
    for entries in ((Entry("first", "first", base),), (Entry("added", "added", base), Entry("first", "first", base))):
        monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", entries))
        benchmark(["synth"], data_root=str(synth_gtzan.parent), out=report, runs_dir=tmp_path / "runs", quick=False, seeds=1,
                  store=str(synth_store), resume=True, log=lambda m: None)
    added, first = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]["entries"]
    assert (added["run_dir"], first["run_dir"]) == ("synth/added", "synth/first")  # by id, not position
    assert " first\n" in (tmp_path / "runs" / "synth" / "first" / "config.yaml").read_text()


def test_entry_ids_are_short_slugs_unique_in_their_suite():
    for suite in SUITES.values():
        assert len({e.id for e in suite.entries}) == len(suite.entries)
        assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", e.id) and len(e.id) <= 48 for e in suite.entries)
    for bad in ("Logistic regression", "lr_", "-lr", "x" * 49):
        with pytest.raises(ConfigError, match="entry id"):
            Entry(bad, "a label", {})
    with pytest.raises(ConfigError, match="two entries have the id 'lr'"):
        Suite("s", "S", "holdout", (Entry("lr", "one", {}), Entry("lr", "two", {})))
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        Suite("s", "S", "holdout", (Entry("lr", "one", {}),)).entry("lrr")


def test_results_files_keyed_by_label_are_read_back_by_id(tmp_path):
    """results.json written before entries had ids: its entries get their suite entry's id by label."""
    suite = SUITES["lyrics-br"]
    old = {"suites": {"lyrics-br": {"entries": [{"label": e.label} for e in suite.entries] + [{"label": "gone"}]}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old))
    ids = [e["id"] for e in run_mod.load_results(path)["suites"]["lyrics-br"]["entries"]]
    assert ids[:-1] == [e.id for e in suite.entries] and re.fullmatch(r"old-[0-9a-f]{8}", ids[-1])


def test_provenance_lines_of_earlier_results_files_are_read_back():
    """results.json files written before provenances were kept as fields hold the rendered line instead."""
    prov = run_mod.Provenance("genrefusion benchmark x --resume", "2026-11-22 04:56 UTC", False,
                              "genrefusion 0.1.0, torch 2.13.0+cpu", "AMD EPYC, 2 cores, Python 3.11.7", 4932.0, 3)
    back = run_mod.Provenance.from_line(prov.line(seeded=True))
    assert back == run_mod.Provenance(**{**prov.__dict__, "seconds": 60 * 82.2})  # the line rounds to 0.1 min
    older = prov.line().replace("(full mode)", "(full mode, 5 seeds per model on fixed splits)")
    assert run_mod.Provenance.from_line(older).seeds == 5
    assert run_mod.Provenance.from_line("made by hand") is None
    res = run_mod.SuiteResult(SUITES["gtzan-ff"], [], 1.0, kept_from=[prov.__dict__, prov.line()], kept=3)
    assert run_mod._kept_from_markdown(res)[0] == ("3 of these entries were kept by `--resume` from 2 earlier commands, "
                                                    "named in [results.json](benchmarks/results.json).")


def test_concurrent_reports_keep_each_others_sections(tmp_path, monkeypatch):
    """Two benchmark commands writing at once: each merges into what the other wrote."""
    import threading
    import time

    real_load = run_mod.load_results

    def slow_load(path):  # widen the window between reading results.json and rewriting it
        data = real_load(path)
        time.sleep(0.3)
        return data

    monkeypatch.setattr(run_mod, "load_results", slow_load)
    names = ("synth-a", "synth-b")
    for n in names:
        monkeypatch.setitem(SUITES, n, Suite(n, n, "holdout", ()))
    out = tmp_path / "docs" / "BENCHMARKS.md"
    threads = [threading.Thread(target=run_mod.write_benchmarks, args=([run_mod.SuiteResult(SUITES[n], [], 1.0)],),
                                kwargs={"out": out, "quick": True, "wall_s": 1.0, "argv": ["genrefusion", n]})
               for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = json.loads((tmp_path / "docs" / "benchmarks" / "results.json").read_text())
    assert sorted(stored["suites"]) == list(names)


def test_quick_mode_shrinks_every_protocol():
    for suite in SUITES.values():
        for e in suite.entries:
            cfg = entry_config(e, data_root="/data", quick=True, seeds=5)
            assert cfg["data"]["path"].startswith("/data/")
            assert cfg["train"]["epochs"] <= 2 and cfg["protocol"]["seeds"] == [0] and cfg["protocol"]["repeats"] == 1
            full = entry_config(e, data_root="/data", quick=False, seeds=3)["protocol"]
            assert (full.get("seeds") == [0, 1, 2]) == (full.get("name", "holdout") in ("holdout", "two_stage"))
    # --seeds shapes (and a resumed run compares it for) the suites with a fixed split only
    assert SUITES["gtzan-ff"].seeded and SUITES["recipes"].seeded and not SUITES["emotify"].seeded
    assert not SUITES["lyrics-br"].seeded


def test_every_suite_entry_is_a_valid_config():
    from genrefusion.config import config_from_dict
    from genrefusion.training.fit import validate_config
    from genrefusion.training.prepare import check_inputs

    for suite in suites_mod.SUITES.values():
        for e in suite.entries:
            cfg = config_from_dict(entry_config(e, data_root="../shared/data", quick=False, seeds=5))
            validate_config(cfg)
            check_inputs(cfg)


@needs_shared
@pytest.mark.slow
def test_quick_benchmark_on_real_data(tmp_path):
    out = benchmark(["mendeley"], data_root=str(SHARED), out=tmp_path / "B.md", runs_dir=tmp_path / "runs", quick=True,
                    store=str(tmp_path / "store"), log=lambda m: None)
    assert "**failed**" not in out.read_text()


def test_a_stopped_command_reports_what_the_entry_in_progress_finished(synth_gtzan, synth_store, tmp_path,  # noqa: F811
                                                                        monkeypatch):
    from genrefusion.training import protocols

    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}},
            "inputs": {"table": {"feature": "table_row"}}, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}
    entries = (Entry("first", "first", base),
               Entry("repeated", "repeated", {**base, "protocol": {"name": "repeated", "repeats": 3}}))
    monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", entries,
                                               entry_cells=lambda e: {"reference": f"paper of {e.label}"}))
    report = tmp_path / "docs" / "BENCHMARKS.md"
    real = protocols._train_and_test

    def stopped_at_the_third_repeat(*args, **kw):
        if kw["name"] == "repeat02":
            raise KeyboardInterrupt  # as the SIGTERM handler of `genrefusion benchmark` raises it
        return real(*args, **kw)

    def run(**kw) -> list[str]:
        logged: list[str] = []
        benchmark(["synth"], data_root=str(synth_gtzan.parent), out=report, runs_dir=tmp_path / "runs", quick=False,
                  seeds=1, store=str(synth_store), log=logged.append, **kw)
        return logged

    monkeypatch.setattr(protocols, "_train_and_test", stopped_at_the_third_repeat)
    with pytest.raises(KeyboardInterrupt):
        run()
    text = report.read_text()
    section = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]
    stopped = section["entries"][1]
    assert stopped["stopped"] == "2 of 3 repeats" and len(stopped["accuracy"]["values"]) == 2
    assert "| repeated (**stopped**: 2 of 3 repeats finished) |" in text and "**Partial**: 1 of 2 entries" in text
    assert "| paper of repeated |" in text  # the entry's own cells, though its run did not finish
    assert "Best: **first**" in text  # an entry stopped part-way is not compared

    monkeypatch.setattr(protocols, "_train_and_test", real)
    logged = run(resume=True)
    assert "[synth] first: kept from the earlier run" in logged and "[synth] repeated: repeated" in logged  # again, whole
    finished = json.loads((report.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]["entries"][1]
    assert finished["stopped"] == "" and len(finished["accuracy"]["values"]) == 3
    assert "**stopped**" not in report.read_text()


@pytest.mark.parametrize("name", [n for n, s in SUITES.items() if s.not_fused is not None])
def test_a_suite_that_names_the_strategies_it_cannot_run_runs_every_other(name, tmp_path):
    """Each registered fusion strategy is an entry of the suite or in its ``not_fused``, which its report prints."""
    from genrefusion.fusion.registry import FUSIONS

    suite = SUITES[name]
    run = {(e.config.get("fusion") or {}).get("strategy") for e in suite.entries} - {None}
    assert run | set(suite.not_fused) == set(FUSIONS) and not run & set(suite.not_fused)
    prov = run_mod.Provenance("genrefusion benchmark", "2026-01-01 00:00 UTC", False, "v", "m", 0.0)
    lines = run_mod._suite_markdown(run_mod.SuiteResult(suite, [], 0.0), prov, tmp_path)
    said = [line for line in lines if line.startswith("- Fusion strategies not run here: ")]
    assert len(said) == bool(suite.not_fused) and all(f"**{k}**: " in said[0] for k in suite.not_fused)


def test_the_fusion_comparing_suites_claim_completeness():
    assert {n for n, s in SUITES.items() if s.not_fused is not None} >= {"gtzan-ff", "gtzan-leaky", "emotify", "mendeley"}


def test_the_gtzan_suites_reason_for_not_running_coattention_holds():
    from genrefusion.errors import ModelError
    from genrefusion.fusion.registry import build_fusion

    assert SUITES["gtzan-ff"].not_fused == SUITES["gtzan-leaky"].not_fused == suites_mod.GTZAN_NOT_FUSED
    # co-attention needs a time sequence from both branches; a table branch gives none (sequence length 0)
    with pytest.raises(ModelError, match="sequences"):
        build_fusion("coattention", branches={"cnn": (128, 10, 64), "mlp": (128, 10, 0)}, n_classes=10)


def test_the_report_keeps_no_machine_paths():
    from genrefusion.benchmarks.run import _portable_results, portable

    assert portable("genrefusion benchmark cross --store /tmp/rr/store --runs /tmp/x/runs --seeds 1") == \
        "genrefusion benchmark cross --store <store> --runs <runs> --seeds 1"
    assert portable("genrefusion benchmark speed --store store --runs runs/benchmarks") == \
        "genrefusion benchmark speed --store store --runs runs/benchmarks"  # relative paths read the same anywhere
    stored = {"suites": {"s": {"provenance": {"command": "x --runs /tmp/r"}, "kept_from": ["`x --store /root/s`", {
        "command": "y --data=/home/d"}], "entries": [{"run_dir": "/tmp/r/s/entry-1"}]}}, "speed": None}
    _portable_results(stored)
    section = stored["suites"]["s"]
    assert section["provenance"]["command"] == "x --runs <runs>" and section["entries"][0]["run_dir"] == "s/entry-1"
    assert section["kept_from"] == ["`x --store <store>`", {"command": "y --data=<data>"}]


def test_a_suite_opens_with_its_answer_the_gain_of_fusion_with_a_paired_interval(synth_gtzan, synth_store, tmp_path,  # noqa: F811
                                                                                monkeypatch):
    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "inputs": {"table": {"feature": "table_row"}},
            "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}}}
    lr = {"model": "logreg", "inputs": ["table"], "args": {"C": 0.01}}
    mlp = {"model": "mlp", "inputs": ["table"], "args": {"width": 8}}
    monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", (
        Entry("weak-lr", "weak logistic regression", {**base, "branches": {"lr": lr}}),
        Entry("mlp", "mlp", {**base, "branches": {"mlp": mlp}, "train": {"epochs": 3}}),
        Entry("fusion-mean", "fusion: mean", {**base, "branches": {"lr": lr, "mlp": mlp}, "fusion": {"strategy": "mean", "mode": "frozen"},
                               "train": {"epochs": 3}}))))
    text = benchmark(["synth"], data_root=str(synth_gtzan.parent), out=tmp_path / "BENCHMARKS.md", runs_dir=tmp_path / "r",
                     quick=False, seeds=2, store=str(synth_store), log=lambda m: None).read_text()
    entries = json.loads((tmp_path / "benchmarks" / "results.json").read_text())["suites"]["synth"]["entries"]
    by = {e["label"]: e for e in entries}
    n_test = len(by["mlp"]["tracks"])
    assert n_test == len(by["fusion: mean"]["tracks"]) > 0 and set(by["mlp"]["tracks"]) == set(by["fusion: mean"]["tracks"])
    section = text.split("## Synthetic (`synth`)")[1]
    head, row = section.strip().splitlines()[0], section.strip().splitlines()[2]  # the section opens with its answer
    assert head.startswith("| best single branch | best fusion | gain, points (95 % CI) | tracks |")
    best_single = max(("weak logistic regression", "mlp"), key=lambda k: by[k]["accuracy"]["mean"])
    assert row.startswith(f"| {best_single} (") and "| fusion: mean (" in row and f"| {n_test} |" in row
    gain, low, high = (float(x) for x in re.findall(r"[+-]\d+\.\d", row.split("|")[3]))
    assert "Branch set x fusion strategy" not in section  # one strategy only: no matrix
    expected = 100 * (np.mean(list(by["fusion: mean"]["tracks"].values())) - np.mean(list(by[best_single]["tracks"].values())))
    assert gain == pytest.approx(expected, abs=0.051) and low <= gain <= high


def test_paired_bootstrap_interval():
    from genrefusion.evaluation.metrics import paired_bootstrap

    a = {f"t{i}": float(i % 4 != 0) for i in range(200)}  # right on 75 %
    b = {f"t{i}": float(i % 2 == 0) for i in range(200)}  # right on 50 %, on other tracks in part
    gain, low, high, n = paired_bootstrap(a, b)
    assert n == 200 and gain == pytest.approx(0.25) and 0.1 < low < 0.25 < high < 0.4
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)  # seeded
    assert paired_bootstrap(a, a)[:3] == (0.0, 0.0, 0.0)


def test_the_matrix_puts_each_strategy_beside_the_others_on_the_same_branches(synth_gtzan, tmp_path):  # noqa: F811
    lr, mlp = {"model": "logreg", "inputs": ["table"]}, {"model": "mlp", "inputs": ["table"]}
    both = {"lr": lr, "mlp": mlp}
    suite = Suite("m", "Matrix", "holdout", (
        Entry("lr", "lr", {"branches": {"lr": lr}}), Entry("mlp", "mlp", {"branches": {"mlp": mlp}}),
        Entry("mean", "mean", {"branches": both, "fusion": {"strategy": "mean", "mode": "frozen"}}),
        Entry("stacking", "stacking", {"branches": both, "fusion": {"strategy": "stacking", "mode": "frozen", "cross_fit": 5}}),
        Entry("feature", "feature", {"branches": {"mlp": mlp}, "fusion": {"strategy": "feature", "mode": "joint"}})))
    acc = {"mean": 0.5, "std": 0.0, "values": [0.5]}
    res = run_mod.SuiteResult(suite, [run_mod.EntryResult(e.id, e.label, "m/x", True, 1.0, acc, acc) for e in suite.entries], 1.0)
    lines = run_mod.matrix_markdown(res)
    assert lines[2] == "| branches | alone | mean | stacking, cross-fitted | feature (joint) |"
    assert lines[4] == "| lr | 50.0 |  |  |  |" and lines[6] == "| lr + mlp |  | 50.0 | 50.0 |  |"
    assert lines[5] == "| mlp | 50.0 |  |  | 50.0 |"


def test_results_json_keeps_each_entrys_tracks_on_one_line():
    stored = {"suites": {"s": {"entries": [
        {"id": "a", "tracks": {f"t{i}": i / 10 for i in range(50)}, "measures": {"tracks": {"x": 1.0}, "n": 1}},
        {"id": "b", "tracks": None}]}}, "speed": None}
    text = run_mod.results_json(stored)
    assert json.loads(text) == stored and text.count("\n") < 30
    assert '"tracks": {"t0":0.0,"t1":0.1,' in text and '"tracks": {"x":1.0}' in text
