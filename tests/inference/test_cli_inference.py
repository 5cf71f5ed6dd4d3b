"""The predict, tag, model and export commands as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from genrefusion.cli import main
from genrefusion.inference.predictor import DEFAULT_ROOT, PROFILES


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_text_bars_and_a_bad_file_gives_exit_3(capsys, frozen_bundle, songs):
    code, out, err = run(capsys, "predict", songs["metal"], songs["corrupt"], "--model", frozen_bundle, "--top", "2")
    assert code == 3
    assert "new_metal.wav" in out and "metal" in out and "█" in out and "%" in out
    assert "corrupt.mp3" in err and "1 file(s) failed" in err


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_predict_machine_formats(capsys, frozen_bundle, songs, fmt):
    folder = songs["blues"].parents[1]  # every new clip and the long file, recursively
    code, out, _ = run(capsys, "predict", folder, "--model", frozen_bundle, "--format", fmt, "--timeline")
    assert code == 0
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.splitlines()]
    else:
        table = list(csv.DictReader(io.StringIO(out)))
        rows = [r for r in table if r["start_s"] == ""]  # the file rows; the others are its timeline
        assert len(table) > len(rows) and {"genre1", "p1"} <= set(table[0])
        assert {r["path"].rsplit("/", 1)[1]: r["genre1"] for r in rows}["new_metal.wav"] == "metal"
        return
    assert len(rows) == 4 and all(r["timeline"] for r in rows)
    assert {r["path"].rsplit("/", 1)[1]: r["genre"] for r in rows}["new_blues.wav"] == "blues"


def test_predict_refuses_a_bad_model_folder_once(capsys, tmp_path, songs):
    code, _, err = run(capsys, "predict", songs["blues"], "--model", tmp_path)
    assert code == 1 and "bundle.json" in err


def test_model_info_prints_the_card(capsys, frozen_bundle):
    code, out, _ = run(capsys, "model", "info", "--model", frozen_bundle, "--json")
    card = json.loads(out)
    assert code == 0 and card["labels"] == ["blues", "classical", "metal"] and card["test_accuracy"] >= 0.5
    assert card["inputs"] == {"mel": "log_mel", "summary": "summary_gtzan"}


def test_tag_command_with_export_and_dry_run(capsys, frozen_bundle, songs, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(songs["blues"].parents[1], lib)
    db, exported = tmp_path / "t.sqlite", tmp_path / "t.json"
    code, out, _ = run(capsys, "tag", lib, "--db", db, "--model", frozen_bundle, "--workers", "1", "--export", exported,
                       "--write-tags", "--dry-run")
    assert code == 0 and "4 audio files: 0 unchanged, 4 tagged, 0 failed" in out
    assert "would set genre 'Blues' (was no genre)" in out and "None" not in out
    assert len(json.loads(exported.read_text())) == 4
    code, out, _ = run(capsys, "tag", lib, "--db", db, "--model", frozen_bundle)
    assert code == 0 and "4 unchanged, 0 tagged" in out
    assert run(capsys, "tag", lib, "--db", db, "--dry-run")[0] == 2  # --dry-run without --write-tags: a usage error


def test_tag_finds_what_is_wrong_with_the_command_before_any_work(capsys, frozen_bundle, songs, tmp_path):
    db = tmp_path / "t.sqlite"
    code, _, err = run(capsys, "tag", songs["blues"].parents[1], "--db", db, "--model", frozen_bundle,
                       "--export", tmp_path / "out.txt")
    assert code == 2 and "export format must be csv or json" in err and not db.exists()
    code, _, err = run(capsys, "tag", tmp_path / "no-such-folder", "--db", db, "--model", frozen_bundle)
    assert code == 1 and "no-such-folder" in err and "not found" in err and not db.exists()
    code, _, err = run(capsys, "tag", songs["blues"].parents[1], "--db", db, "--shards", tmp_path / "s")
    assert code == 2 and "pass one" in err and not db.exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("store", ["--db", "--shards"])
def test_the_tag_database_mirrors_the_library(capsys, frozen_bundle, songs, tmp_path, store):
    lib = shutil.copytree(songs["blues"].parents[1], tmp_path / "lib")
    db = tmp_path / "t.results"
    (lib / "bad.wav").write_bytes(b"RIFF not a wave file at all" * 20)
    code, out, err = run(capsys, "tag", lib, store, db, "--model", frozen_bundle, "--workers", "1")
    assert code == 3 and "5 audio files: 0 unchanged, 4 tagged, 1 failed" in out and "bad.wav" in err
    code, out, _ = run(capsys, "tag", lib, store, db, "--model", frozen_bundle, "--workers", "1")
    assert code == 3 and "4 unchanged, 0 tagged, 1 failed" in out  # a failed file is retried, and still fails
    shutil.copy(songs["metal"], lib / "bad.wav")  # fixed: retried because it failed
    code, out, _ = run(capsys, "tag", lib, store, db, "--model", frozen_bundle, "--workers", "1")
    assert code == 0 and "4 unchanged, 1 tagged, 0 failed" in out
    (lib / "metal" / "new_metal.wav").unlink()
    code, out, _ = run(capsys, "tag", lib, store, db, "--model", frozen_bundle, "--export", tmp_path / "e.csv")
    assert code == 0 and "1 gone (marked missing" in out
    rows = {Path(r["path"]).name: r["status"] for r in csv.DictReader(open(tmp_path / "e.csv"))}
    assert rows["new_metal.wav"] == "missing" and rows["bad.wav"] == "ok"
    code, out, _ = run(capsys, "tag", lib, store, db, "--model", frozen_bundle, "--prune", "--export",
                       tmp_path / "e.json")
    assert code == 0 and "1 gone (rows deleted)" in out
    assert "new_metal.wav" not in {Path(r["path"]).name for r in json.loads((tmp_path / "e.json").read_text())}


def test_a_second_tag_run_on_one_database_is_refused(capsys, frozen_bundle, songs, tmp_path):
    from genrefusion.inference.library import LibraryDB

    db = tmp_path / "t.sqlite"
    with LibraryDB(db):  # the first run, still going
        code, _, err = run(capsys, "tag", songs["blues"].parent, "--db", db, "--model", frozen_bundle)
    assert code == 1 and "another `genrefusion tag` is using this database" in err


def test_export_onnx_command(capsys, joint_bundle, tmp_path, songs):
    bundle = shutil.copytree(joint_bundle, tmp_path / "b")
    code, out, _ = run(capsys, "export", bundle, "--onnx")
    assert code == 0 and "model.onnx" in out
    code, out, _ = run(capsys, "predict", songs["metal"], "--model", bundle, "--backend", "onnx", "--format", "json")
    assert code == 0 and json.loads(out)[0]["genre"] == "metal"


@pytest.mark.skipif(not all((DEFAULT_ROOT / p / "bundle.json").is_file() for p in PROFILES),
                    reason="the packaged default model is not built")
@pytest.mark.parametrize("profile", PROFILES)
def test_the_packaged_default_model_is_small_has_no_pickle_and_knows_eleven_genres(capsys, songs, profile):
    folder = DEFAULT_ROOT / profile
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 50e6 and not (folder / "objects.pkl").exists()
    code, out, _ = run(capsys, "model", "info", "--json", "--profile", profile)
    card = json.loads(out)
    assert code == 0 and len(card["labels"]) == 11 and "electronic" in card["labels"] and card["profile"] == profile
    assert "bundle" not in card and str(folder.parent) not in json.dumps(card)  # no server paths
    code, out, _ = run(capsys, "predict", songs["long"], "--format", "json", "--top", "11", "--profile", profile)
    result = json.loads(out)[0]
    assert code == 0 and result["status"] in ("ok", "not_sure")
    assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-3)
    code, out, _ = run(capsys, "model", "info", "--profile", profile)
    assert code == 0 and "genres (11)" in out and "did not train on" in out


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv"])
def test_no_music_too_short_and_not_sure_say_so_in_every_format(capsys, frozen_bundle, songs, tmp_path, fmt):
    import numpy as np

    from tests.conftest import SR, write

    silence = write(tmp_path / "silence.wav", np.zeros(10 * SR, np.float32))
    short = write(tmp_path / "short.wav", 0.3 * np.ones(int(0.5 * SR), np.float32))
    code, out, _ = run(capsys, "predict", silence, short, songs["blues"], "--model", frozen_bundle, "--format", fmt)
    assert code == 0  # these are answers, not failures
    if fmt == "text":
        assert "silence.wav (10.0 s): no music" in out and "short.wav (0.5 s): too short" in out
        return
    if fmt == "csv":
        rows = {r["path"].rsplit("/", 1)[1]: r for r in csv.DictReader(io.StringIO(out))}
        assert rows["silence.wav"]["status"] == "no_music" and not rows["silence.wav"]["genre1"]
        assert rows["short.wav"]["status"] == "too_short" and rows["new_blues.wav"]["status"] in ("ok", "not_sure")
        return
    rows = json.loads(out) if fmt == "json" else [json.loads(line) for line in out.splitlines()]
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in rows}
    assert by_name["silence.wav"]["status"] == "no_music" and by_name["silence.wav"]["genre"] is None
    assert by_name["short.wav"]["status"] == "too_short" and by_name["short.wav"]["top"] == []
    assert by_name["new_blues.wav"]["genre"] == "blues"


def test_a_low_confidence_answer_says_not_sure_on_the_command_line(capsys, frozen_bundle, songs, tmp_path):
    unsure = shutil.copytree(frozen_bundle, tmp_path / "unsure")
    meta = json.loads((unsure / "bundle.json").read_text())
    meta["config"]["eval"]["sure_probability"] = 0.999  # this model is never that sure
    (unsure / "bundle.json").write_text(json.dumps(meta))
    code, out, _ = run(capsys, "predict", songs["metal"], "--model", unsure)
    assert code == 0 and "new_metal.wav (3.0 s): not sure (the best genre has" in out and "metal" in out


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "csv"])
def test_predict_names_every_input_it_cannot_use_in_every_format(capsys, frozen_bundle, songs, tmp_path, fmt):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link.wav").symlink_to(tmp_path / "gone.wav")
    bad = [tmp_path / "missing.wav", tmp_path / "link.wav", tmp_path / "empty", str(tmp_path / "x*.mp3")]
    code, out, err = run(capsys, "predict", songs["blues"], *bad, "--model", frozen_bundle, "--format", fmt)
    assert code == 3 and "4 file(s) failed" in err
    for item, reason in zip(bad, ["file not found", "broken symbolic link", "no audio files in this folder",
                                  "no file matches this pattern"]):
        assert f"error: {item}: {reason}" in err
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
    else:
        return
    assert [r["status"] for r in rows] == ["error"] * 4 + ["ok"]


def test_decoding_a_broken_mp3_prints_nothing_of_the_decoder(capfd, tmp_path):
    from genrefusion import audio
    from genrefusion.errors import AudioError

    path = tmp_path / "noise.mp3"
    path.write_bytes(bytes(range(256)) * 80)
    with pytest.raises(AudioError, match="not audio"):
        audio.load(path)
    assert capfd.readouterr().err == ""


def test_a_full_disk_under_tag_is_one_line_and_the_next_run_resumes(capsys, frozen_bundle, songs, tmp_path,
                                                                     monkeypatch):
    import sqlite3

    from genrefusion.inference.library import LibraryDB

    lib = shutil.copytree(songs["blues"].parents[1], tmp_path / "lib")
    db = tmp_path / "t.sqlite"
    real, calls = LibraryDB.record, []

    def record_until_full(self, *args):
        calls.append(1)
        if len(calls) > 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args)

    monkeypatch.setattr(LibraryDB, "record", record_until_full)
    code, _, err = run(capsys, "tag", lib, "--db", db, "--model", frozen_bundle, "--workers", "1")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "no space left on the device" in lines[0] and str(db) in lines[0]
    monkeypatch.setattr(LibraryDB, "record", real)
    code, out, _ = run(capsys, "tag", lib, "--db", db, "--model", frozen_bundle, "--workers", "1")
    assert code == 0 and "2 unchanged, 2 tagged, 0 failed" in out


@pytest.mark.parametrize("args, extra", [
    (["serve", "--port", "1"], "serve"),
    (["export", "--onnx", "--out", "OUT"], "onnx"),
    (["tag", "LIB", "--db", "DB", "--write-tags"], "tags"),
])
def test_a_missing_extra_is_one_line_naming_the_install_before_any_work(capsys, monkeypatch, frozen_bundle, songs,
                                                                       tmp_path, args, extra):
    from genrefusion import cli

    monkeypatch.setitem(cli.EXTRAS, extra, ("genrefusion_no_such_module",))
    subs = {"OUT": tmp_path / "out", "LIB": songs["blues"].parent, "DB": tmp_path / "t.sqlite"}
    code, out, err = run(capsys, *[subs.get(a, a) for a in args], *(["--model", frozen_bundle] if extra != "onnx"
                                                                      else [frozen_bundle]))
    assert code == 1 and len(err.strip().splitlines()) == 1 and f"pip install 'genrefusion[{extra}]'" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "t.sqlite").exists()


def test_export_never_writes_into_the_installed_package(capsys, tmp_path):
    code, _, err = run(capsys, "export", "--onnx")
    assert code == 2 and "pass --out" in err
    assert not any(p.name == "onnx" for p in DEFAULT_ROOT.rglob("*"))


@pytest.mark.parametrize("args", [["predict", "x.wav", "--format", "xml"], ["predict", "x.wav", "--backend", "foo"],
                                  ["predict", "x.wav", "--profile", "slow"], ["tag", "x", "--export", "x.txt"],
                                  ["predict", "x.wav", "--top", "0"]])
def test_every_bad_option_value_exits_2(capsys, args):
    assert run(capsys, *args)[0] == 2
