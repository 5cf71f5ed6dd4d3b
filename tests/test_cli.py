"""The command line: output, exit codes (0 ok, 1 error, 2 usage, 3 partial), one-line errors."""

from __future__ import annotations

import json

from genrefusion.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from tests.datasets import builders


def test_describe_json(tmp_path, capsys):
    root = builders.build_gtzan(tmp_path / "g")
    assert main(["datasets", "describe", str(root), "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["n_tracks"] == 6 and data["splits"]["fault_filtered"]["test"] == {"blues": 1, "rock": 1}


def test_validate_exit_code_reflects_bad_files(genre_tree, capsys):
    assert main(["datasets", "validate", str(genre_tree)]) == EXIT_OK
    (genre_tree / "blues" / "blues.00009.wav").write_bytes(b"RIFF....garbage")
    assert main(["datasets", "validate", str(genre_tree), "--decode"]) == EXIT_PARTIAL
    assert "blues.00009.wav" in capsys.readouterr().out


def test_extract_then_partial(genre_tree, tmp_path, capsys):
    args = ["extract", str(genre_tree), "--features", "log_mel,mfcc", "--set", "mfcc.n_mfcc=13",
            "--store", str(tmp_path / "s"), "--run-dir", str(tmp_path / "r"), "--workers", "0"]
    assert main(args) == EXIT_OK
    assert "12 computed" in capsys.readouterr().out
    (genre_tree / "rock").mkdir()
    (genre_tree / "rock" / "rock.00001.wav").write_bytes(b"")
    assert main(args) == EXIT_PARTIAL
    out = capsys.readouterr().out
    assert "12 already current" in out and "empty file" in out
    assert (tmp_path / "r" / "failures.csv").read_text().count("\n") == 2


def test_errors_are_one_line_with_exit_1(tmp_path, capsys):
    assert main(["datasets", "describe", str(tmp_path / "missing dir")]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing dir" in err and "no such file" in err
    assert main(["extract", str(tmp_path), "--set", "nonsense"]) == EXIT_ERROR


def test_usage_errors_exit_2(capsys):
    assert main(["datasets", "frobnicate"]) == EXIT_USAGE
    assert main(["extract"]) == EXIT_USAGE


def test_splits_make_and_listing(tmp_path, capsys):
    root = builders.build_gtzan(tmp_path / "g")
    out = tmp_path / "split.csv"
    assert main(["splits", "make", str(root), "--published", "fault_filtered", "--out", str(out)]) == EXIT_OK
    assert out.read_text().count("\n") == 7
    assert main(["splits", "make", str(root), "--fractions", "a=0.5,b=0.5", "--out", str(out)]) == EXIT_OK
    assert main(["features", "list"]) == EXIT_OK and "summary_gtzan" in capsys.readouterr().out
    assert main(["datasets", "kinds"]) == EXIT_OK


def test_command_names_a_newcomer_cannot_confuse_and_the_old_ones_still_work(capsys):
    assert main(["--help"]) == EXIT_OK
    listed = {line.split()[0] for line in capsys.readouterr().out.split("Commands:")[1].splitlines() if line.strip()}
    assert {"musicnn-tags", "tag", "model", "architectures"} <= listed
    assert not {"tags", "models"} & listed  # an earlier release's names: hidden, not gone
    assert main(["models", "list"]) == EXIT_OK and "fusion strategies" in capsys.readouterr().out
    assert main(["tags", "--help"]) == EXIT_OK and "--tagger" in capsys.readouterr().out


def test_help_shows_flags_as_flags_and_lists_by_their_items(capsys):
    import re

    for command in (["predict"], ["tag"], ["train"], ["extract"], ["benchmark"], ["model", "info"], ["musicnn-tags"]):
        assert main([*command, "--help"]) == EXIT_OK
        text = capsys.readouterr().out
        assert not re.search(r"--[\w-]+ <bool>", text), text  # a flag takes no value
        assert "<list" not in text  # a repeatable option or argument shows one item: --set KEY=VALUE, AUDIO...
    assert main(["train", "--help"]) == EXIT_OK and "--set KEY=VALUE" in capsys.readouterr().out


def test_benchmark_list_of_a_suite_names_its_entry_ids(capsys):
    assert main(["benchmark", "lyrics-br", "--list"]) == EXIT_OK
    text = capsys.readouterr().out
    assert all(i in text for i in ("tfidf-lr", "minilm-lr", "weighted-mean-cf"))
