"""Tagging a library: SQLite results, resume after an interruption, only new or changed files, export, file tags."""

from __future__ import annotations

import csv
import json
import os
import shutil

import mutagen
import pytest

from genrefusion.inference.library import LibraryDB, ShardStore, export, read_tags, tag_library, write_genre_tags


@pytest.fixture(params=["sqlite", "shards"])
def open_store(request):
    """Each test runs on both result stores: one SQLite file, and a folder of Parquet shards."""
    if request.param == "sqlite":
        return lambda path: LibraryDB(path)
    return lambda path: ShardStore(path.with_suffix(".shards"))


@pytest.fixture
def library(songs, tmp_path):
    root = tmp_path / "library"
    for key in ("blues", "metal", "classical", "long", "corrupt"):
        dest = root / ("bad" if key == "corrupt" else "ok") / songs[key].name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(songs[key], dest)
    return root


def test_tag_records_every_file_and_a_rerun_only_does_new_or_changed_ones(library, frozen_bundle, tmp_path,
                                                                          open_store):
    with open_store(tmp_path / "tags.sqlite") as db:
        first = tag_library(library, db, bundle=frozen_bundle)
        assert (first.found, first.skipped, first.tagged, first.failed) == (5, 0, 4, 1)
        rows = {os.path.basename(r["path"]): r for r in db.rows()}
        assert rows["new_blues.wav"]["genre"] == "blues" and rows["corrupt.mp3"]["status"] == "error"
        assert "not audio" in rows["corrupt.mp3"]["error"]
        again = tag_library(library, db, bundle=frozen_bundle)
        assert (again.skipped, again.tagged, again.failed) == (4, 0, 1)  # a failed file is retried (and fails)
        os.utime(library / "ok" / "new_metal.wav", ns=(1, 1))  # a changed file
        shutil.copy(library / "ok" / "new_blues.wav", library / "ok" / "added.wav")
        third = tag_library(library, db, bundle=frozen_bundle)
        assert (third.found, third.tagged) == (6, 2)


def test_an_interrupted_run_keeps_what_finished_and_resumes(library, frozen_bundle, tmp_path, open_store):
    path = tmp_path / "tags.sqlite"

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with open_store(path) as db, pytest.raises(KeyboardInterrupt):
        tag_library(library, db, bundle=frozen_bundle, on_progress=stop_after_two)
    with open_store(path) as db:
        kept = [r["status"] for r in db.rows()]
        resumed = tag_library(library, db, bundle=frozen_bundle)
        done = len(kept) - kept.count("error")  # a failed file is tried again
        assert len(kept) == 2 and (resumed.skipped, resumed.tagged + resumed.failed) == (done, 5 - done)


def test_export_to_csv_and_json(library, frozen_bundle, tmp_path, open_store):
    with open_store(tmp_path / "tags.sqlite") as db:
        tag_library(library, db, bundle=frozen_bundle)
        assert export(db, tmp_path / "out.csv") == 5 and export(db, tmp_path / "out.json") == 5
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "error" in {r["status"] for r in rows} and {r["status"] for r in rows} <= {"ok", "not_sure", "error"}
    assert sum(json.loads(r["probabilities"]).get(r["genre"], 0) > 0 for r in rows) == 4
    assert len(json.loads((tmp_path / "out.json").read_text())) == 5


def test_genre_tags_are_written_only_when_asked_and_existing_ones_are_kept(songs, frozen_bundle, tmp_path,
                                                                          open_store):
    root = tmp_path / "lib"
    root.mkdir()
    tagged, untagged = root / "has_genre.flac", root / "no_genre.flac"
    for dest in (tagged, untagged):
        shutil.copy(songs["long"], dest)
    f = mutagen.File(tagged, easy=True)
    f["genre"] = ["Jazz"]
    f.save()
    with open_store(tmp_path / "tags.sqlite") as db:
        tag_library(root, db, bundle=frozen_bundle)
        before = {p: p.read_bytes() for p in (tagged, untagged)}
        dry = {os.path.basename(c.path): c for c in write_genre_tags(db, dry_run=True)}
        assert dry["no_genre.flac"].action == "write" and dry["has_genre.flac"].action == "keep"
        assert all(p.read_bytes() == b for p, b in before.items())  # a dry run changes nothing
        write_genre_tags(db, dry_run=False)
        assert mutagen.File(tagged, easy=True)["genre"] == ["Jazz"]
        assert mutagen.File(untagged, easy=True)["genre"] == [dry["no_genre.flac"].new]
        write_genre_tags(db, dry_run=False, overwrite=True)
        assert mutagen.File(tagged, easy=True)["genre"] == [dry["has_genre.flac"].new]
        assert tag_library(root, db, bundle=frozen_bundle).tagged == 0  # our own tag edits need no re-tagging


def test_silence_is_recorded_as_no_music_and_gets_no_genre_tag(songs, frozen_bundle, tmp_path, open_store):
    import numpy as np
    import soundfile as sf

    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(songs["blues"], root / "song.flac")
    sf.write(root / "silence.flac", np.zeros(22050 * 5, np.float32), 22050)
    with open_store(tmp_path / "tags.sqlite") as db:
        report = tag_library(root, db, bundle=frozen_bundle)
        rows = {r["path"].rsplit("/", 1)[1]: r for r in db.rows()}
        assert report.failed == 0 and rows["silence.flac"]["status"] == "no_music" and rows["silence.flac"]["genre"] is None
        assert "silence" in rows["silence.flac"]["error"] and rows["song.flac"]["genre"] == "blues"
        changes = write_genre_tags(db, dry_run=True)
    assert [c.path.rsplit("/", 1)[1] for c in changes] == ["song.flac"]


def test_shards_hold_the_same_table_as_the_database_and_are_whole_or_absent(library, frozen_bundle, tmp_path):
    with LibraryDB(tmp_path / "tags.sqlite") as db:
        tag_library(library, db, bundle=frozen_bundle)
        expected = list(db.rows())
    with ShardStore(tmp_path / "shards", rows_per_shard=2) as store:
        tag_library(library, store, bundle=frozen_bundle)
        assert list(store.rows()) == expected
        assert len(store.shards()) == 3  # 5 results in batches of 2
    # a half-written shard (a run killed while writing) is never read: only renamed, whole shards are
    (tmp_path / "shards" / ".part-x.parquet.tmp").write_bytes(b"PAR1 torn")
    table = read_tags(tmp_path / "shards")  # the Python API: one Arrow table, newest row per path
    assert table.num_rows == 5 and table.column("path").to_pylist() == [r["path"] for r in expected]
    with ShardStore(tmp_path / "shards") as store:  # a re-run adds no shard: nothing new or changed
        tag_library(library, store, bundle=frozen_bundle)  # (the failed file is retried, so one shard)
        assert len(store.shards()) == 4 and list(store.rows()) == expected


def test_one_run_at_a_time_holds_a_shard_folder(tmp_path):
    with ShardStore(tmp_path / "shards"), pytest.raises(Exception, match="another `genrefusion tag`"):
        ShardStore(tmp_path / "shards")
