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
    w._lock.release()  # a dead process's lock is released by the OS
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


def _three_entries(folder):
    f = StoredFeature(folder, {"feature": "x"})
    with f.writer() as w:
        for i, tid in enumerate("abc"):
            w.put(tid, "1", np.full(1000, i, np.float64))
    return f


def test_a_pack_cut_short_is_reported_and_never_written_over(tmp_path):
    _three_entries(tmp_path / "f")
    pack = tmp_path / "f" / "packs" / "000000.pack"
    with open(pack, "r+b") as fh:  # an interrupted copy: the last entry and a half are gone
        fh.truncate(pack.stat().st_size - 12000)
    g = StoredFeature(tmp_path / "f")
    assert [t for t, _ in g.damaged()] == ["b", "c"]
    with pytest.raises(FeatureError, match="past the end of pack"):
        g.read(["c"])
    assert np.array_equal(g.read(["a"])[0], np.zeros(1000))
    with pytest.raises(FeatureError, match="2 entries lie past the end.*store verify --repair"):
        g.writer()  # the old code appended at the short end: "c"'s row then pointed at new bytes
    assert pack.stat().st_size == 12000  # left as found
    assert [t for t, _ in g.verify(repair=True)] == ["b", "c"]
    with g.writer() as w:  # repaired: the damaged entries are forgotten, so they are recomputed
        w.put("b", "2", np.full(1000, 9.0))
    assert sorted(g.ids()) == ["a", "b"] and np.array_equal(g.read(["b"])[0], np.full(1000, 9.0))
    assert g.verify() == []


def test_verify_finds_flipped_bits_by_checksum(tmp_path):
    f = _three_entries(tmp_path / "f")
    pack = tmp_path / "f" / "packs" / "000000.pack"
    data = bytearray(pack.read_bytes())
    data[8 * 1000 + 64 + 5] ^= 0xFF  # a bit flip inside entry "b"
    pack.write_bytes(bytes(data))
    assert f.verify() == [("b", "bytes differ from what was written (checksum mismatch)")]


def test_store_verify_command_reports_and_repairs(tmp_path, capsys):
    from genrefusion.cli import main

    _three_entries(tmp_path / "s" / "features" / "x-0")
    (tmp_path / "s" / "features" / "x-0").joinpath("packs", "000000.pack").open("r+b").truncate(20000)
    assert main(["store", "verify", str(tmp_path / "s")]) == 3
    assert "1 damaged" in capsys.readouterr().out
    assert main(["store", "verify", str(tmp_path / "s"), "--repair"]) == 0
    assert main(["store", "verify", str(tmp_path / "s")]) == 0 and "all intact" in capsys.readouterr().out
