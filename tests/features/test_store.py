"""The feature store: durable commits, crash tails, locking, compaction."""

from __future__ import annotations

import numpy as np
import pytest

from genrefusion.errors import FeatureError
from genrefusion.features.store import FeatureStore, StoredFeature


def test_round_trip_keeps_dtype_shape_and_order(tmp_path):
    f = StoredFeature(tmp_path / "f", {"feature": "x"})
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones((2, 5), np.uint8),
              "c": np.linspace(0, 1, 7)}
    with f.writer() as w:
        for tid, a in arrays.items():
            w.put(tid, f"fp-{tid}", a)
    for tid, got in zip(["c", "a", "b"], f.read(["c", "a", "b"])):
        assert got.dtype == arrays[tid].dtype and np.array_equal(got, arrays[tid])
    assert f.fingerprints() == {"a": "fp-a", "b": "fp-b", "c": "fp-c"}
    with pytest.raises(FeatureError, match="not in the store"):
        f.read(["zzz"])
    assert f.read_stacked(["a"]).shape == (1, 3, 4)


def test_uncommitted_bytes_are_dropped_when_a_writer_reopens(tmp_path):
    f = StoredFeature(tmp_path / "f", {"feature": "x"})
    w = f.writer()
    w.put("kept", "1", np.arange(100, dtype=np.float32))
    w.commit()
    committed_size = (tmp_path / "f" / "packs" / "000000.pack").stat().st_size
    w.put("lost", "1", np.arange(1000, dtype=np.float32))
    w._file.flush()  # bytes on disk, index row never committed: what a kill leaves behind
    w._file.close()
    w._lock.close()  # a dead process's lock is released by the OS
    assert (tmp_path / "f" / "packs" / "000000.pack").stat().st_size > committed_size
    with StoredFeature(tmp_path / "f").writer() as w2:
        assert (tmp_path / "f" / "packs" / "000000.pack").stat().st_size == committed_size
        w2.put("next", "1", np.full(3, 7.0))
    g = StoredFeature(tmp_path / "f")
    assert sorted(g.ids()) == ["kept", "next"]
    assert np.array_equal(g.read(["kept"])[0], np.arange(100, dtype=np.float32))


def test_one_writer_at_a_time(tmp_path):
    f = StoredFeature(tmp_path / "f", {"feature": "x"})
    with f.writer():
        with pytest.raises(FeatureError, match="another process is writing"):
            StoredFeature(tmp_path / "f").writer()


def test_replacements_and_compaction(tmp_path):
    f = StoredFeature(tmp_path / "f", {"feature": "x"})
    with f.writer() as w:
        for version in range(3):
            for tid in "abc":
                w.put(tid, str(version), np.full(1000, version, np.float64))
            w.commit()
    before = f.stats()
    assert before["entries"] == 3 and before["pack_bytes"] > 2 * before["live_bytes"]
    f.compact()
    after = f.stats()
    assert after["pack_bytes"] < before["pack_bytes"] and after["live_bytes"] == before["live_bytes"]
    assert all(np.all(a == 2) for a in f.read("abc"))


def test_packs_roll_over(tmp_path):
    f = StoredFeature(tmp_path / "f", {"feature": "x"})
    with f.writer() as w:
        w.pack_bytes = 10_000
        for i in range(10):
            w.put(str(i), "1", np.full(1000, i, np.float32))
    assert len(list((tmp_path / "f" / "packs").glob("*.pack"))) >= 4
    assert [int(a[0]) for a in f.read([str(i) for i in range(10)])] == list(range(10))


def test_store_lists_keys_and_remembers_digests(tmp_path):
    store = FeatureStore(tmp_path / "s")
    store.feature("mfcc-abc", {"feature": "mfcc"})
    assert store.keys() == ["mfcc-abc"]
    with pytest.raises(FeatureError, match="no feature 'nope'"):
        store.feature("nope")
    audio = tmp_path / "x.bin"
    audio.write_bytes(b"123")
    assert store.cached_digest(audio) is None
    st = audio.stat()
    store.remember_digests([(str(audio), st.st_size, st.st_mtime_ns, "d1")])
    assert store.cached_digest(audio) == "d1"
    audio.write_bytes(b"12345")
    assert store.cached_digest(audio) is None
