"""`genrefusion train | evaluate | compare | models list | recipes list` through the console entry point."""

from __future__ import annotations

import json

import pytest
import yaml

from genrefusion.cli import EXIT_ERROR, EXIT_OK, main
from genrefusion.config import config_to_dict, load_config
from genrefusion.recipes import list_recipes
from genrefusion.training.fit import validate_config
from genrefusion.training.prepare import check_inputs
from tests.training.conftest import make_config


def test_train_evaluate_compare(synth_gtzan, synth_store, tmp_path, capsys):
    cfg = make_config(synth_gtzan, synth_store, fusion=None, inputs={"table": {"feature": "table_row"}},
                      branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    runs = [tmp_path / "a", tmp_path / "b"]
    assert main(["train", str(path), "--out", str(runs[0])]) == EXIT_OK
    assert main(["train", str(path), "--out", str(runs[1]), "--set", "branches.mlp.model=logreg",
                 "--set", "branches.mlp.args={}", "--set", "name=lr"]) == EXIT_OK
    assert "test accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(runs[0])]) == EXIT_OK
    assert "accuracy" in capsys.readouterr().out
    assert main(["compare", *map(str, runs), "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"synth", "lr"} and all(0 <= r["accuracy"] <= 1 for r in rows)
    assert main(["compare", *map(str, runs), "--markdown"]) == EXIT_OK
    assert "| run | model |" in capsys.readouterr().out


def test_a_typo_in_the_config_is_one_line_and_exit_1(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nbranchs: {}\n")
    assert main(["train", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "unknown key branchs; did you mean 'branches'?" in err and len(err.strip().splitlines()) == 1


def test_models_and_recipes_are_listed(capsys):
    assert main(["models", "list"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "efficientnet_b0" in text and "hierarchical" in text
    assert main(["recipes", "list"]) == EXIT_OK
    assert "late-fusion-cnn" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", [r.name for r in list_recipes()])
def test_every_shipped_recipe_is_a_valid_config_that_says_what_it_reproduces(recipe):
    cfg = load_config(next(r.path for r in list_recipes() if r.name == recipe))
    validate_config(cfg)
    check_inputs(cfg)
    assert cfg.description and cfg.reference and cfg.name == recipe
    assert cfg.data.path.startswith("../shared/data/")


def test_a_train_killed_while_its_inputs_are_extracted_leaves_no_worker(synth_gtzan, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.conftest import stop_when, workers_of

    cfg = make_config(synth_gtzan, tmp_path / "fresh-store", fusion=None,
                      inputs={"s": {"feature": "summary_gtzan", "params": {"hpss": False}}},
                      branches={"lr": {"model": "logreg", "inputs": ["s"]}})
    cfg.data.workers = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    proc = subprocess.Popen([sys.executable, "-m", "genrefusion.cli", "train", str(path), "--out", str(tmp_path / "r")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    workers = stop_when(proc, lambda: len(workers_of(proc.pid)) == 2, signal.SIGKILL, timeout=120)
    assert len(workers) == 2  # and stop_when saw them gone within 2 s of the kill
