"""The Python API (genrefusion.load_model, open_dataset, extract, train) on synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import genrefusion
from genrefusion.errors import GenreFusionError
from tests.conftest import SR, tone, write


def test_import_is_light_and_the_api_names_are_there():
    proc = subprocess.run([sys.executable, "-c", "import sys, genrefusion; print(sorted(m for m in ('torch', 'librosa', "
                           "'sklearn') if m in sys.modules)); print(sorted(genrefusion.__all__))"],
                          capture_output=True, text=True, check=True)
    loaded, names = proc.stdout.splitlines()
    assert loaded == "[]"
    for name in ("load_model", "open_dataset", "extract", "train", "Predictor", "Prediction"):
        assert name in names and callable(getattr(genrefusion, name))
    with pytest.raises(AttributeError):
        genrefusion.no_such_name  # noqa: B018


def test_predict_takes_a_path_or_a_signal_with_its_rate(tmp_path):
    model = genrefusion.load_model()
    y = tone(440, seconds=6.0)
    path = write(tmp_path / "tone.wav", y)
    from_file, from_array = model.predict(path), model.predict(np.stack([y, y]), sr=SR)  # channels first
    np.testing.assert_allclose(from_file.proba, from_array.proba, atol=2e-3)  # the file is 16-bit PCM
    assert list(from_file.probabilities) == [g for g, _ in from_file.top(len(model.labels))]
    assert json.loads(from_file.to_json(timeline=True))["timeline"] and model.card["labels"] == model.labels
    with pytest.raises(GenreFusionError, match="sample rate"):
        model.predict(y)
    with pytest.raises(GenreFusionError, match="a file's own rate"):
        model.predict(path, sr=SR)


def test_extract_and_train_from_python(genre_tree, tmp_path):
    ds = genrefusion.open_dataset(genre_tree)
    assert len(ds) == 12 and ds.genres == ["blues", "classical", "metal"]
    with pytest.raises(GenreFusionError, match="n_mels"):  # a bad parameter, before the store exists
        genrefusion.extract(ds, store=tmp_path / "store", features=["log_mel"], params={"log_mel": {"n_mels": -5}})
    assert not (tmp_path / "store").exists()
    report = genrefusion.extract(ds, store=tmp_path / "store", features=["summary_gtzan"],
                                 params={"summary_gtzan": {"hpss": False}}, workers=0)
    assert report.n_computed == 12 and report.n_failed == 0
    config = {"name": "api", "data": {"path": str(genre_tree), "store": str(tmp_path / "store"), "workers": 0},
              "split": {"fractions": {"train": 0.5, "test": 0.5}},
              "inputs": {"table": {"feature": "summary_gtzan", "params": {"hpss": False}}},
              "branches": {"lr": {"model": "logreg", "inputs": ["table"]}}}
    run = genrefusion.train(config, tmp_path / "run", overrides=["branches.lr.args.C=0.5"], log=lambda m: None)
    assert run.result.accuracy.mean == run.metrics["summary"]["track"]["accuracy"]["mean"] > 0.5  # typed and raw
    assert run.result.labels == tuple(ds.genres) and run.result.n_evaluations == 1 and "lr" not in run.result.branches
    mine = genrefusion.load_model(run.run_dir)  # the run's model predicts on a signal (6 s: past its 3 s minimum)
    assert mine.labels == ds.genres and mine.predict(tone(220, seconds=6.0), sr=SR).status in ("ok", "not_sure")
