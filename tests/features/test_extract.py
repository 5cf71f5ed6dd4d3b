"""Extraction: resumable after a kill, idempotent, invalidates exactly what changed, survives bad input."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genrefusion.datasets import open_dataset
from genrefusion.errors import FeatureError
from genrefusion.features.extract import ExtractConfig, extract
from genrefusion.features.store import FeatureStore
from tests.conftest import SR, noise, tone, write
from tests.datasets import builders

FAST = ["log_mel", "mfcc", "mel_image"]


def run(path, store_dir, **kw):
    store = FeatureStore(store_dir)
    try:
        cfg = ExtractConfig(**{"features": FAST, "workers": 0, **kw})
        return extract(open_dataset(path), store, cfg, run_dir=Path(store_dir) / "run")
    finally:
        store.close()


def read_all(store_dir, key, ids):
    store = FeatureStore(store_dir)
    try:
        return [np.array(a) for a in store.feature(key).read(ids)]
    finally:
        store.close()


def test_repeat_is_a_no_op_and_results_are_stored(genre_tree, tmp_path):
    first = run(genre_tree, tmp_path / "s")
    assert (first.n_tracks, first.n_computed, first.n_failed) == (12, 12, 0)
    again = run(genre_tree, tmp_path / "s")
    assert (again.n_computed, again.n_up_to_date) == (0, 12)
    mel = read_all(tmp_path / "s", first.features["log_mel"], ["blues.00000"])[0]
    assert mel.shape == (128, 1 + 2 * SR // 512)


def test_changed_file_and_changed_parameter_invalidate_exactly_what_they_should(genre_tree, tmp_path):
    first = run(genre_tree, tmp_path / "s")
    time.sleep(0.01)
    write(genre_tree / "blues" / "blues.00001.wav", tone(1234, 2.0))
    os.utime(genre_tree / "blues" / "blues.00002.wav")  # touched, same content: digest unchanged
    second = run(genre_tree, tmp_path / "s")
    assert second.n_computed == 1 and second.n_up_to_date == 11
    third = run(genre_tree, tmp_path / "s", params={"mfcc": {"n_mfcc": 13}})
    assert third.features["mfcc"] != first.features["mfcc"]
    assert third.features["log_mel"] == first.features["log_mel"]
    assert third.n_computed == 12  # every track needs the new mfcc ...
    store = FeatureStore(tmp_path / "s")
    assert len(store.feature(third.features["log_mel"])) == 12  # ... but log_mel was not rewritten
    assert store.feature(third.features["mfcc"]).read(["metal.00000"])[0].shape[0] == 39
    store.close()


def test_bad_tracks_are_reported_not_cached_and_the_run_goes_on(genre_tree, tmp_path):
    (genre_tree / "metal" / "metal.00010.wav").write_bytes(b"")
    (genre_tree / "metal" / "metal.00011.wav").write_text("not audio " * 100)
    write(genre_tree / "metal" / "metal.00012.wav", np.zeros(SR, np.float32))
    write(genre_tree / "metal" / "metal.00013.wav", tone(100, 0.2))
    good = write(genre_tree / "metal" / "metal.00014.wav", noise(3.0))
    data = good.read_bytes()
    (genre_tree / "metal" / "metal.00015.wav").write_bytes(data[: len(data) // 2])
    report = run(genre_tree, tmp_path / "s")
    reasons = {f.track_id: f.reason for f in report.failures}
    assert set(reasons) == {"metal.00010", "metal.00011", "metal.00012", "metal.00013", "metal.00015"}
    assert "empty file" in reasons["metal.00010"] and "not audio" in reasons["metal.00011"]
    assert "all-silent" in reasons["metal.00012"] and "shorter than the minimum" in reasons["metal.00013"]
    assert "truncated" in reasons["metal.00015"]
    assert report.n_computed == 13
    rows = list(csv.DictReader(open(tmp_path / "s" / "run" / "failures.csv")))
    assert {r["track_id"] for r in rows} == set(reasons) and all(r["path"].endswith(".wav") for r in rows)
    store = FeatureStore(tmp_path / "s")
    assert not set(reasons) & set(store.feature(report.features["log_mel"]).ids())
    store.close()
    again = run(genre_tree, tmp_path / "s")
    assert again.n_up_to_date == 13 and again.n_failed == 5


def test_worker_processes_give_the_same_arrays(genre_tree, tmp_path):
    inline = run(genre_tree, tmp_path / "a", features=["log_mel"])
    pooled = run(genre_tree, tmp_path / "b", features=["log_mel"], workers=2)
    ids = sorted(open_dataset(genre_tree)._by_id)
    for x, y in zip(read_all(tmp_path / "a", inline.features["log_mel"], ids),
                    read_all(tmp_path / "b", pooled.features["log_mel"], ids)):
        assert np.array_equal(x, y)


def test_table_and_image_inputs(tmp_path):
    table = builders.build_feature_table(tmp_path / "t")
    rep = run(table, tmp_path / "s1", features=[])
    assert list(rep.features) == ["table_row"] and rep.n_computed == 4
    images = builders.build_image_folders(tmp_path / "i")
    rep = run(images, tmp_path / "s2", features=[])
    assert list(rep.features) == ["image_pixels"] and rep.n_computed == 4
    assert read_all(tmp_path / "s2", rep.features["image_pixels"], ["pop.0"])[0].shape == (10, 12)


def test_config_errors_come_before_any_work(genre_tree, tmp_path):
    with pytest.raises(FeatureError, match="needs image input"):
        run(genre_tree, tmp_path / "s", features=["image_pixels"])
    with pytest.raises(FeatureError, match="not being extracted"):
        run(genre_tree, tmp_path / "s", features=["log_mel"], params={"mfcc": {"n_mfcc": 3}})
    assert not (tmp_path / "s" / "run").exists()


def _count(index: Path) -> int:
    try:
        con = sqlite3.connect(str(index), timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_killed_extract_resumes_and_matches_an_uninterrupted_run(tmp_path):
    root = tmp_path / "many"
    for i in range(40):
        write(root / ("a" if i % 2 else "b") / f"clip {i:02d}.wav", (tone(100 + 20 * i, 3.0) + noise(3.0, seed=i)))
    cmd = [sys.executable, "-m", "genrefusion.cli", "extract", str(root), "--features", "summary_gtzan,log_mel",
           "--store", str(tmp_path / "s"), "--workers", "1", "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    indexes = []
    while time.time() < deadline and proc.poll() is None:
        # wait for a commit of *both* features: their indexes commit one after the other, and a kill
        # between the first two leaves no track done, which would make the resume trivially full
        indexes = list((tmp_path / "s" / "features").glob("*/index.sqlite"))
        if len(indexes) == 2 and min(_count(p) for p in indexes) > 0:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert indexes, "extract never committed anything"
    # Each feature's index commits on its own, so a kill can fall between them: the track counts
    # as done only where every feature was committed.
    at_kill = min(_count(p) for p in (tmp_path / "s" / "features").glob("*/index.sqlite"))
    assert 0 < at_kill < 40, "the run must be killed mid-way for this test to mean anything"
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    clean = run(root, tmp_path / "clean", features=["summary_gtzan", "log_mel"])
    ids = sorted(open_dataset(root)._by_id)
    for name, key in clean.features.items():
        got = read_all(tmp_path / "s", key, ids)
        want = read_all(tmp_path / "clean", key, ids)
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), name
    assert f"{40 - at_kill} computed" in resumed.stdout  # only what the killed run had not committed
    final = run(root, tmp_path / "s", features=["summary_gtzan", "log_mel"])
    assert final.n_computed == 0
