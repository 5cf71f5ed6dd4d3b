"""extract under faults, run as a user runs it: a full disk, a stop, bad parameters, entries it cannot use."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genrefusion.cli import main
from genrefusion.datasets import open_dataset
from genrefusion.features.store import FeatureStore, StoreWriter
from tests.conftest import alive, noise, stop_when, tone, wait_for, workers_of, write


def _library(root: Path, n: int, seconds: float = 3.0) -> Path:
    for i in range(n):
        write(root / ("a" if i % 2 else "b") / f"clip {i:03d}.wav", tone(100 + 7 * i, seconds) + noise(seconds, seed=i))
    return root


def _arrays(store: Path, ids: list[str]) -> dict[str, list[np.ndarray]]:
    fs = FeatureStore(store)
    try:
        return {k: [np.array(a) for a in fs.feature(k).read(ids)] for k in fs.keys()}
    finally:
        fs.close()


def test_a_full_disk_is_one_line_and_the_next_run_resumes(tmp_path, monkeypatch, capsys):
    root = _library(tmp_path / "lib", 12)
    args = ["extract", str(root), "--features", "log_mel,mfcc", "--workers", "0", "--run-dir", str(tmp_path / "run")]
    real = StoreWriter.commit
    calls = []

    def commit_until_full(self):
        calls.append(1)
        if len(calls) > 2 and self._pending:  # the device fills up after the first commits
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self)

    monkeypatch.setattr(StoreWriter, "commit", commit_until_full)
    monkeypatch.setattr("genrefusion.features.extract.COMMIT_ITEMS", 4)
    code = main([*args, "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no space left on the device" in lines[0] and str(tmp_path / "s") in lines[0]
    assert "MB more" in lines[0]
    monkeypatch.setattr(StoreWriter, "commit", real)
    assert main([*args, "--store", str(tmp_path / "s")]) == 0
    assert main([*args, "--store", str(tmp_path / "clean")]) == 0
    ids = sorted(t.track_id for t in open_dataset(root).tracks)
    got, want = _arrays(tmp_path / "s", ids), _arrays(tmp_path / "clean", ids)
    assert got.keys() == want.keys() and all(
        all(np.array_equal(g, w) for g, w in zip(got[k], want[k])) for k in want)


def test_bad_feature_parameters_fail_once_before_any_store_or_run_folder(tmp_path, capsys):
    root = _library(tmp_path / "lib", 2)
    code = main(["extract", str(root), "--features", "log_mel", "--set", "log_mel.n_mels=-5",
                 "--store", str(tmp_path / "s"), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "n_mels=-5" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists() and not (tmp_path / "run").exists()


def test_extract_names_dataset_entries_it_leaves_out(tmp_path, capsys):
    root = tmp_path / "gtzan"
    for genre in ("blues", "metal"):
        for i in range(2):
            write(root / genre / f"{genre}.{i:05d}.wav", tone(200 + 100 * i, 1.0))
    write(root / "blues" / "my favourite song.wav", tone(300, 1.0))
    (root / "metal" / "gone.wav").symlink_to(root / "nowhere.wav")
    code = main(["extract", str(root), "--features", "log_mel", "--workers", "0", "--store", str(tmp_path / "s"),
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0 and "my favourite song.wav" in err and "gone.wav: skipped: broken symbolic link" in err
    assert len(json.loads((tmp_path / "run" / "report.json").read_text())["skipped"]) == 2


def test_a_stopped_extract_keeps_its_run_folder_and_leaves_no_worker(tmp_path):
    root = _library(tmp_path / "lib", 300, seconds=6.0)
    (root / "a" / "clip 000 broken.wav").write_bytes(b"RIFF" + bytes(200))  # sorted first: fails early
    proc = subprocess.Popen([sys.executable, "-m", "genrefusion.cli", "extract", str(root), "--features",
                             "summary_gtzan,log_mel", "--workers", "2", "--store", str(tmp_path / "s"),
                             "--run-dir", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        failures = tmp_path / "run" / "failures.csv"
        assert wait_for(lambda: failures.exists() and "clip 000 broken" in failures.read_text(), timeout=120), \
            "the run folder must hold the failure met so far while the run goes on"
        workers = workers_of(proc.pid)
        assert proc.poll() is None and workers
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and took < 2.0 and "interrupted" in err and "Traceback" not in err
    assert wait_for(lambda: not alive(workers), timeout=2.0)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["complete"] is False and report["n_failed"] == 1


_PEAK = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "genrefusion.cli", "extract", *sys.argv[1:]], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def _worker_peak_mb(root: Path, store: Path, *extra: str) -> float:
    """Peak resident memory (MB) of the largest process under one `extract --workers 1` (its worker)."""
    args = [str(root), "--features", "log_mel", "--workers", "1", "--store", str(store), "--run-dir",
            str(store) + "-run", *extra]
    return float(subprocess.run([sys.executable, "-c", _PEAK, *args], check=True, capture_output=True,
                                text=True).stdout.strip())


def test_a_worker_s_memory_is_flat_in_file_length(tmp_path):
    import soundfile as sf

    sr = 22050
    for minutes in (10, 20):
        path = tmp_path / f"m{minutes}" / "x" / "long.flac"
        path.parent.mkdir(parents=True)
        with sf.SoundFile(str(path), "w", sr, 1) as f:
            for i in range(minutes):  # written a minute at a time: the test itself stays small
                f.write(tone(110.0 * (1 + i % 5), 60.0) + noise(60.0, seed=i))
    ten = _worker_peak_mb(tmp_path / "m10", tmp_path / "s10")
    twenty = _worker_peak_mb(tmp_path / "m20", tmp_path / "s20")
    whole = _worker_peak_mb(tmp_path / "m20", tmp_path / "w20", "--max-duration", "0")
    print(f"worker peak: 10 min {ten:.0f} MB, 20 min {twenty:.0f} MB, 20 min whole {whole:.0f} MB")
    assert twenty < 1.15 * ten, (ten, twenty)  # 20 minutes cost what 10 do
    assert whole > twenty + 150, (twenty, whole)  # the old behaviour, on request: it grows with the file


def _entries(store: Path) -> int:
    import sqlite3

    counts = []
    for index in (store / "features").glob("*/index.sqlite"):
        try:
            with sqlite3.connect(index) as con:
                counts.append(con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        except sqlite3.Error:
            counts.append(0)
    return min(counts) if len(counts) == 2 else 0


@pytest.mark.parametrize("seed", [3, pytest.param(4, marks=pytest.mark.slow)])
def test_extract_stopped_at_a_random_moment_resumes_to_the_clean_run(tmp_path, seed):
    import random

    rng = random.Random(seed)
    root = _library(tmp_path / "lib", 60)
    how, at = rng.choice([signal.SIGKILL, signal.SIGTERM]), rng.randint(1, 30)
    cmd = [sys.executable, "-m", "genrefusion.cli", "extract", str(root), "--features", "summary_gtzan,log_mel",
           "--workers", "2", "--store", str(tmp_path / "s"), "--run-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stop_when(proc, lambda: _entries(tmp_path / "s") >= at, how, timeout=180)
    assert 0 < _entries(tmp_path / "s") < 60
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    clean = [*cmd[:-4], "--store", str(tmp_path / "clean"), "--run-dir", str(tmp_path / "run2")]
    assert subprocess.run(clean, capture_output=True).returncode == 0
    ids = sorted(t.track_id for t in open_dataset(root).tracks)
    got, want = _arrays(tmp_path / "s", ids), _arrays(tmp_path / "clean", ids)
    assert got.keys() == want.keys() and all(
        all(np.array_equal(g, w) for g, w in zip(got[k], want[k])) for k in want)


def test_a_training_run_waits_for_another_writer_of_its_feature_and_takes_what_it_stored(genre_tree, tmp_path):
    """Runs sharing a store (benchmark entries on Ray) extract the same feature at once: one writes, the other
    waits for it and computes nothing; `genrefusion extract` itself still refuses a second writer."""
    import threading

    from genrefusion.datasets import open_dataset
    from genrefusion.errors import FeatureError
    from genrefusion.features.extract import ExtractConfig, extract
    from genrefusion.features.store import FeatureStore

    ds = open_dataset(genre_tree)
    store = FeatureStore(tmp_path / "store")
    config = ExtractConfig(features=["rms"], workers=0)
    first = extract(ds, store, config)  # the feature exists; now hold its writer as another process would
    key = first.features["rms"]
    held = store.feature(key).writer()
    with pytest.raises(FeatureError, match="another process is writing"):
        extract(ds, store, config)
    result = {}
    waiting = threading.Thread(target=lambda: result.update(
        report=extract(ds, FeatureStore(tmp_path / "store"), ExtractConfig(features=["rms"], workers=0,
                                                                         wait_for_writers=True))))
    waiting.start()
    waiting.join(1.0)
    assert waiting.is_alive()  # waiting for the writer, not failing
    held.close()
    waiting.join(30)
    assert result["report"].n_computed == 0 and result["report"].n_up_to_date == len(ds)
    store.close()
