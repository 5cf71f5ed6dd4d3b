"""The Ray engine on a real multi-node cluster on this machine: a head and two worker nodes on 127.0.0.1.

tag, predict and extract give what the local engine gives; a worker node killed mid-run and a driver
killed mid-run change nothing in the end.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import stop_when

# Ray turns 127.0.0.1 in a cluster address into the machine's network address unless told it runs on one
# machine; the cluster here listens on loopback only, so every process of the tests (and the drivers they
# start, which inherit the environment) is told so before Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the Ray engine needs the 'ray' extra (pip install 'genrefusion[ray]')")

LOOPBACK = {"node_ip_address": "127.0.0.1", "num_cpus": 1}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={**LOOPBACK, "include_dashboard": False})
    workers = [c.add_node(**LOOPBACK) for _ in range(2)]
    c.wait_for_nodes()
    c.worker_nodes_list = workers
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _links(songs, root: Path, n: int) -> Path:
    clips = sorted(songs["blues"].parents[1].rglob("*.wav"))
    for i in range(n):
        (root / f"album{i // 10}").mkdir(parents=True, exist_ok=True)
        os.link(clips[i % len(clips)], root / f"album{i // 10}" / f"track{i:03d}.wav")
    return root


@pytest.fixture(scope="module")
def library(songs, tmp_path_factory) -> Path:
    """60 files (hard links to the new clips under distinct names) and one that is not audio."""
    root = _links(songs, tmp_path_factory.mktemp("ray-library"), 60)
    (root / "album0" / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    return root


def _cli(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "genrefusion.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert not check or proc.returncode in (0, 3), proc.stderr[-3000:]
    return proc


def _table(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT path, size, mtime_ns, model, status, genre, probabilities, duration_s, error "
                           "FROM tracks ORDER BY path").fetchall()


def test_tag_on_the_cluster_gives_the_local_database(cluster, frozen_bundle, library, tmp_path):
    local = _cli("tag", library, "--db", tmp_path / "local.sqlite", "--model", frozen_bundle, cwd=tmp_path)
    on_ray = _cli("tag", library, "--db", tmp_path / "ray.sqlite", "--model", frozen_bundle, "--engine", "ray",
                  "--address", cluster.address, cwd=tmp_path)
    assert local.returncode == on_ray.returncode == 3  # the broken file, named by both
    assert "broken.wav" in on_ray.stderr and "60 tagged, 1 failed" in on_ray.stdout
    assert _table(tmp_path / "ray.sqlite") == _table(tmp_path / "local.sqlite")
    again = _cli("tag", library, "--db", tmp_path / "ray.sqlite", "--model", frozen_bundle, "--engine", "ray",
                 "--address", cluster.address, cwd=tmp_path)
    assert "60 unchanged, 0 tagged, 1 failed" in again.stdout  # resume semantics as on one machine
    shards = _cli("tag", library, "--shards", tmp_path / "ray.shards", "--model", frozen_bundle, "--engine", "ray",
                  "--address", cluster.address, "--export", tmp_path / "shards.json", cwd=tmp_path)
    _cli("tag", library, "--db", tmp_path / "local.sqlite", "--model", frozen_bundle, "--export",
         tmp_path / "local.json", cwd=tmp_path)
    assert "60 tagged, 1 failed" in shards.stdout  # the same rows as Parquet shards, read back as one table
    assert json.loads((tmp_path / "shards.json").read_text()) == json.loads((tmp_path / "local.json").read_text())


def test_extract_on_the_cluster_reads_back_bit_for_bit(cluster, library, tmp_path):
    from genrefusion.datasets import open_dataset
    from genrefusion.features.store import FeatureStore

    args = ["extract", library, "--features", "log_mel,summary_gtzan", "--set", "summary_gtzan.hpss=false"]
    _cli(*args, "--store", tmp_path / "local", "--workers", "2", cwd=tmp_path)
    _cli(*args, "--store", tmp_path / "ray", "--engine", "ray", "--address", cluster.address, cwd=tmp_path)
    ids = sorted(t.track_id for t in open_dataset(library).tracks if "broken" not in t.track_id)
    a, b = FeatureStore(tmp_path / "local"), FeatureStore(tmp_path / "ray")
    try:
        assert a.keys() == b.keys() and len(a.keys()) == 2
        for key in a.keys():
            fa, fb = a.feature(key), b.feature(key)
            assert fa.fingerprints() == fb.fingerprints()
            assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(fa.read(ids), fb.read(ids)))
    finally:
        a.close()
        b.close()


@pytest.mark.slow  # the heaviest: 900 files, three runs
def test_a_killed_driver_resumes_to_the_local_database(cluster, frozen_bundle, songs, tmp_path):
    library = _links(songs, tmp_path / "big", 900)  # results commit every 2 s: long enough to be killed mid-way
    local = tmp_path / "local.sqlite"
    _cli("tag", library, "--db", local, "--model", frozen_bundle, cwd=tmp_path)
    db = tmp_path / "ray.sqlite"

    def rows() -> int:
        try:
            with sqlite3.connect(db) as con:
                return con.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
        except sqlite3.Error:
            return 0

    cmd = [sys.executable, "-m", "genrefusion.cli", "tag", str(library), "--db", str(db), "--model",
           str(frozen_bundle), "--engine", "ray", "--address", cluster.address]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    stop_when(proc, lambda: rows() >= 1, signal.SIGKILL, timeout=180)
    kept = rows()
    assert 0 < kept < 900
    again = _cli("tag", library, "--db", db, "--model", frozen_bundle, "--engine", "ray", "--address",
                 cluster.address, cwd=tmp_path)
    assert again.returncode == 0 and f"{kept} unchanged, {900 - kept} tagged" in again.stdout
    assert _table(db) == _table(local)


def test_a_worker_node_killed_mid_run_changes_no_result(cluster, frozen_bundle, library):
    from genrefusion.inference.predictor import predict_files

    paths = sorted(str(p) for p in library.rglob("*.wav"))  # the broken file too
    local = {p: (r.proba.tolist() if r else None, e) for p, r, e in predict_files(paths, bundle=frozen_bundle,
                                                                                   workers=2)}
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        got = {}
        for i, (p, r, e) in enumerate(predict_files(paths, bundle=frozen_bundle, workers=3, engine="ray",
                                                    ordered=False)):
            got[p] = (r.proba.tolist() if r else None, e)
            if i == 5:  # a whole worker node goes: its actor and the files it held
                cluster.remove_node(cluster.worker_nodes_list.pop())
    finally:
        ray.shutdown()
    assert got.keys() == local.keys()
    for p in paths:
        assert got[p][1] == local[p][1]
        assert got[p][0] is None or np.allclose(got[p][0], local[p][0], atol=1e-6)


@pytest.mark.parametrize("protocol", [{"name": "kfold", "folds": 3},
                                      {"name": "cv_grid", "folds": 2, "grid": {"branches.mlp.args.width": [4, 16]}}],
                         ids=["kfold", "cv_grid"])
def test_folds_and_grid_points_as_ray_tasks_give_the_local_results(cluster, synth_gtzan, synth_store, tmp_path,
                                                                    protocol):
    from genrefusion.training.run import train_run
    from tests.training.conftest import make_config

    def config(engine: str):
        fusion = {"strategy": "weighted_mean", "mode": "frozen"} if protocol["name"] == "kfold" else None
        cfg = make_config(synth_gtzan, synth_store, fusion=fusion,
                          inputs={"table": {"feature": "table_row"}},
                          branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}},
                                    **({"lr": {"model": "logreg", "inputs": ["table"]}} if fusion else {})},
                          train={"epochs": 3, "batch_size": 8, "threads": 1},
                          protocol={**protocol, "engine": engine,
                                    "address": cluster.address if engine == "ray" else None})
        return cfg

    local = train_run(config("local"), tmp_path / "local", log=lambda _: None)
    on_ray = train_run(config("ray"), tmp_path / "ray", log=lambda _: None)
    a, b = local.metrics["evaluations"], on_ray.metrics["evaluations"]
    names = ["fold1", "fold2", "fold3"] if protocol["name"] == "kfold" else ["refit"]
    assert [e["name"] for e in a] == [e["name"] for e in b] == names
    assert [e["track"] for e in a] == [e["track"] for e in b]
    assert ("grid" in on_ray.metrics) == (protocol["name"] == "cv_grid")
    assert local.metrics.get("grid") == on_ray.metrics.get("grid")  # cv_grid: every (point, fold) score
    # every test track's probabilities, to the 5 decimals the run folder keeps
    assert (tmp_path / "ray" / "predictions.csv").read_text() == (tmp_path / "local" / "predictions.csv").read_text()


def test_benchmark_entries_as_ray_tasks_give_the_local_results(cluster, synth_gtzan, synth_store, tmp_path,
                                                               monkeypatch):
    from genrefusion.benchmarks.run import benchmark
    from genrefusion.benchmarks.suites import SUITES, Entry, Suite

    base = {"data": {"path": synth_gtzan.name, "workers": 0}, "inputs": {"table": {"feature": "table_row"}},
            "split": {"fractions": {"train": 0.5, "valid": 0.2, "test": 0.3}}}
    monkeypatch.setitem(SUITES, "synth", Suite("synth", "Synthetic", "holdout", (
        Entry("lr", "logistic regression", {**base, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}),
        Entry("mlp", "mlp", {**base, "branches": {"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 8}}},
                      "train": {"epochs": 2, "threads": 1}}),
        Entry("broken", "broken", {**base, "branches": {"lr": {"model": "logreg", "inputs": ["table"]}},
                         "split": {"published": "no_such_split"}}))))

    def results(engine: str) -> list[dict]:
        out = tmp_path / engine / "BENCHMARKS.md"
        benchmark(["synth"], data_root=str(synth_gtzan.parent), out=out, runs_dir=tmp_path / engine / "runs",
                  quick=False, seeds=2, store=str(synth_store), log=lambda m: None, engine=engine,
                  address=cluster.address if engine == "ray" else None)
        entries = json.loads((out.parent / "benchmarks" / "results.json").read_text())["suites"]["synth"]["entries"]
        return [{k: e[k] for k in ("id", "label", "ok", "accuracy", "macro_f1", "branches", "error", "confusion")}
                for e in entries]

    local, on_ray = results("local"), results("ray")
    assert [e["ok"] for e in on_ray] == [True, True, False] and "no_such_split" in on_ray[2]["error"]
    assert on_ray == local
