"""Faults of the long prediction commands, run as a user runs them: kills, stops, a worker that dies."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import alive, stop_when, wait_for, workers_of

N = 1200  # files: about 15 s of tagging with 2 workers, so a stop falls mid-way
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")


@pytest.fixture(scope="module")
def library(songs, tmp_path_factory) -> Path:
    """N audio files (hard links to the new clips under distinct names): a run long enough to stop mid-way."""
    root = tmp_path_factory.mktemp("library")
    clips = sorted(p for p in songs["blues"].parents[1].rglob("*.wav"))
    for i in range(N):
        (root / f"album{i // 12:02d}").mkdir(exist_ok=True)
        os.link(clips[i % len(clips)], root / f"album{i // 12:02d}" / f"track{i:03d}.wav")
    return root


def _start(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genrefusion.cli", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_stopped_predict_leaves_no_worker_and_stops_within_2_s(frozen_bundle, library, tmp_path, how):
    proc = _start("predict", library, "--model", frozen_bundle, "--workers", "2", "--format", "jsonl", cwd=tmp_path)
    try:
        workers = wait_for(lambda: len(workers_of(proc.pid)) == 2 and workers_of(proc.pid), timeout=60)
        assert workers and proc.stdout.readline(), "the run must be under way for this test to mean anything"
        t0 = time.monotonic()
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=10)
        took = time.monotonic() - t0
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(workers), timeout=2.0), f"workers {alive(workers)} outlived the command"
    if how != "SIGKILL":  # a kill -9 cannot be answered; a stop is, at once, with the shell's exit code
        assert took < 2.0 and proc.returncode == 128 + getattr(signal, how)
        assert "interrupted" in err and "Traceback" not in err


def test_tag_survives_a_killed_worker_and_tags_every_file(frozen_bundle, library, tmp_path):
    db = tmp_path / "tags.sqlite"
    proc = _start("tag", library, "--db", db, "--model", frozen_bundle, "--workers", "2", cwd=tmp_path)
    try:
        workers = wait_for(lambda: _rows(db) >= 5 and workers_of(proc.pid), timeout=90)
        assert workers, "the run must be under way for this test to mean anything"
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert f"{N} tagged, 0 failed" in out
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*), SUM(status = 'error') FROM tracks").fetchone() == (N, 0)


def _table(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT path, size, mtime_ns, model, status, genre, probabilities, duration_s, error "
                           "FROM tracks ORDER BY path").fetchall()


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_tag_stopped_at_a_random_moment_resumes_to_the_clean_run(frozen_bundle, library, tmp_path, seed):
    clean = tmp_path / "clean.sqlite"
    subprocess.run([sys.executable, "-m", "genrefusion.cli", "tag", library, "--db", clean, "--model", frozen_bundle,
                    "--workers", "2"], check=True, capture_output=True, cwd=tmp_path)
    rng = random.Random(seed)
    db = tmp_path / "stopped.sqlite"
    how, at = rng.choice([signal.SIGKILL, signal.SIGTERM]), rng.randint(1, N // 2)
    proc = _start("tag", library, "--db", db, "--model", frozen_bundle, "--workers", "2", cwd=tmp_path)
    stop_when(proc, lambda: _rows(db) >= at, how, timeout=120)
    kept = _rows(db)
    assert 0 < kept < N
    again = subprocess.run([sys.executable, "-m", "genrefusion.cli", "tag", library, "--db", db, "--model",
                            frozen_bundle, "--workers", "2"], capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{kept} unchanged, {N - kept} tagged" in again.stdout
    assert _table(db) == _table(clean)
