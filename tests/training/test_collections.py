"""Runs over several collections, refitted on every track, scored on another collection's shared labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genrefusion.config import config_from_dict, config_to_dict
from genrefusion.errors import ConfigError
from genrefusion.evaluation.metrics import classification_metrics, expected_calibration_error
from genrefusion.training.prepare import open_run_dataset
from genrefusion.training.run import AUDIO_PATH, evaluate_run, train_run
from tests.conftest import write
from tests.training.conftest import _clip, make_config, synth_gtzan, synth_store  # noqa: F401

SUMMARY = {"summary": {"feature": "summary_gtzan", "params": {"hpss": False}}}
LINEAR = {"linear": {"model": "logreg", "inputs": ["summary"], "args": {"balanced": True}}}


@pytest.fixture(scope="module")
def other_collection(tmp_path_factory):
    """Another collection of genre folders: classical and metal as in the synthetic GTZAN, and a genre of its own."""
    root = tmp_path_factory.mktemp("other") / "collection"
    rng = np.random.default_rng(7)
    for genre in ("classical", "metal", "electronic"):
        for i in range(6):
            y = _clip(genre, i, rng) if genre != "electronic" else \
                (0.3 * np.sign(np.sin(2 * np.pi * 2 * np.arange(3 * 22050) / 22050))).astype(np.float32)
            write(root / genre / f"{genre}-{i}.wav", y)
    return root


def _config(synth_gtzan, synth_store, other, **sections):  # noqa: F811
    cfg = make_config(synth_gtzan, synth_store, inputs=SUMMARY, branches=LINEAR, fusion=None, train={},
                      protocol={"name": "kfold", "folds": 3, "refit": True}, **sections)
    data = config_to_dict(cfg)
    data["data"]["path"] = str(synth_gtzan / "audio")
    data["data"]["collections"] = [{"path": str(other)}]
    return config_from_dict(data)


def test_collections_join_and_a_track_id_must_be_one_collections(synth_gtzan, synth_store, other_collection,  # noqa: F811
                                                                  tmp_path):
    ds = open_run_dataset(_config(synth_gtzan, synth_store, other_collection))
    assert len(ds) == 30 + 18 and ds.genres == ["blues", "classical", "electronic", "metal"]
    clash = _config(synth_gtzan, synth_store, other_collection)
    clash.data.collections[0].path = str(synth_gtzan / "audio")
    with pytest.raises(ConfigError, match="share track ids"):
        open_run_dataset(clash)
    wrong = _config(synth_gtzan, synth_store, other_collection)
    wrong.data.collections[0].genres = ["jazz"]
    with pytest.raises(ConfigError, match=r"data.collections\[0\].genres"):
        open_run_dataset(wrong)


def test_a_refitted_run_ships_a_model_of_every_track_and_reports_its_folds(synth_gtzan, synth_store,  # noqa: F811
                                                                           other_collection, tmp_path):
    cfg = _config(synth_gtzan, synth_store, other_collection)
    logs = []
    m = train_run(cfg, tmp_path / "run", log=logs.append).metrics
    assert m["n_tracks"] == 48 and len(m["evaluations"]) == 3
    assert m["labels"] == ["blues", "classical", "electronic", "metal"]
    assert "refit: train 48, valid 0 tracks (every track; nothing held out for a test)" in logs
    meta = json.loads((tmp_path / "run" / "bundle" / "bundle.json").read_text())
    assert meta["card"]["test_accuracy"] == pytest.approx(m["summary"]["track"]["accuracy"]["mean"])
    assert "refitted on all 48 tracks" in meta["card"]["evaluation"] and "+" in meta["card"]["trained_on"]
    assert "ece" in m["summary"]["track"]

    # on another collection, scored on the labels it shares, through the audio path prediction takes
    res = evaluate_run(tmp_path / "run", data=synth_gtzan / "audio", inputs=AUDIO_PATH, shared_labels=True,
                       name="cross", log=lambda _: None)
    assert res["track"]["labels"] == ["blues", "classical", "metal"] and res["n_tracks"] == 30
    assert set(res["predictions"].values()) <= {"blues", "classical", "metal"}  # electronic is not among its choices
    assert all(0.0 <= p <= 1.0 for p in res["probability"].values()) and res["truth"]["blues.00000"] == "blues"


def test_predict_params_must_be_taken_by_an_input_and_reach_the_bundles_audio_source(synth_gtzan, synth_store,  # noqa: F811
                                                                                    other_collection, tmp_path):
    from genrefusion.training.fit import validate_config

    cfg = _config(synth_gtzan, synth_store, other_collection)
    cfg.eval.predict_params = {"patches": 2}
    with pytest.raises(ConfigError, match=r"eval.predict_params \['patches'\]"):
        validate_config(cfg)
    cfg.inputs = {"tags": config_from_dict({"inputs": {"tags": {"feature": "musicnn_tags"}}}).inputs["tags"]}
    cfg.branches["linear"].inputs = ["tags"]
    validate_config(cfg)


def test_expected_calibration_error_is_zero_when_probabilities_tell_how_often_they_are_right():
    assert expected_calibration_error(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0
    honest = np.array([[0.75, 0.25]] * 4)  # says 75 %, and is right on 3 of the 4
    assert expected_calibration_error(np.array([0, 0, 0, 1]), honest) == pytest.approx(0.0)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    overconfident = np.array([[0.99, 0.01]] * 10)  # says 99 %, right on 4 of 10
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.99 - 0.4)
    assert classification_metrics(y, overconfident, ["a", "b"])["ece"] == pytest.approx(0.59)
