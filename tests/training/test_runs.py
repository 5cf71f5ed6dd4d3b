"""End-to-end runs on the synthetic dataset: every protocol, both fusion modes, bundles, bad configs."""

from __future__ import annotations

import csv
import json
import threading
import time

import numpy as np
import pytest

from genrefusion.bundle import load_bundle
from genrefusion.errors import ConfigError, GenreFusionError, SplitLeakError
from genrefusion.evaluation.metrics import aggregate
from genrefusion.file_lock import exclusive
from genrefusion.training import fit as fit_module
from genrefusion.training import protocols
from genrefusion.track_data import TrackData, Windowing
from genrefusion.track_data import predict_windows
from genrefusion.training.prepare import load_track_data, open_run_dataset
from genrefusion.training.run import evaluate_run, train_run
from tests.training.conftest import GENRES, N_PER_GENRE, make_config


def _split(run_dir):
    with open(run_dir / "split.csv") as f:
        return {r["track_id"]: r["part"] for r in csv.DictReader(f)}


def _bundle_matches(cfg, run_dir):
    """The bundle alone, reloaded, reproduces the test probabilities the run wrote."""
    fitted, meta = load_bundle(run_dir / "bundle")
    data, _ = load_track_data(cfg, open_run_dataset(cfg), labels=fitted.labels)
    test = data.subset([t for t, p in _split(run_dir).items() if p == "test"])
    p, idx = predict_windows(fitted.model, test, fitted.windowing)
    tracks = aggregate(p, idx, len(test), meta["aggregate"])
    with open(run_dir / "predictions.csv") as f:
        written = {r["track_id"]: [float(r[g]) for g in fitted.labels] for r in csv.DictReader(f)}
    assert set(written) == set(test.ids)
    assert np.allclose(tracks, [written[t] for t in test.ids], atol=1e-5)
    return p, meta


def test_joint_feature_fusion_run_writes_a_complete_run_folder(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(synth_gtzan, synth_store)
    summary = train_run(cfg, tmp_path / "run", log=lambda m: None)
    run = tmp_path / "run"
    for name in ("config.yaml", "split.csv", "metrics.json", "report.md", "confusion.csv", "confusion.png",
                 "training.png", "predictions.csv", "bundle/bundle.json", "bundle/arrays.npz"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["summary"]["track"]["accuracy"]["mean"] >= 0.8  # the synthetic classes are easy
    assert set(_split(run).values()) == {"train", "valid", "test"}
    meta = json.loads((run / "bundle" / "bundle.json").read_text())
    assert meta["labels"] == ["blues", "classical", "metal"]
    assert meta["inputs"]["mel"]["store_spec"]["params"]["n_mels"] == 32 and "torch" in meta["versions"]
    _bundle_matches(cfg, run)
    again = evaluate_run(run, log=lambda m: None)
    assert again["track"]["accuracy"] == pytest.approx(summary.metrics["evaluations"][0]["track"]["accuracy"])


@pytest.mark.parametrize("strategy", ["stacking", "logit", "hierarchical"])
def test_frozen_two_stage_never_shows_the_fusion_a_branch_track(synth_gtzan, synth_store, tmp_path, monkeypatch, strategy):
    seen = {}
    real = protocols.fit_model

    def spy(cfg, train, valid, *, fusion_part=None, **kw):
        seen.update(train=set(train.ids), valid=set(valid.ids), fusion=set(fusion_part.ids))
        return real(cfg, train, valid, fusion_part=fusion_part, **kw)

    monkeypatch.setattr(protocols, "fit_model", spy)
    grouped = []
    from genrefusion.models import estimators

    real_folds = estimators.inner_folds
    monkeypatch.setattr(estimators, "inner_folds", lambda y, **kw: grouped.append(kw["groups"]) or real_folds(y, **kw))
    cfg = make_config(synth_gtzan, synth_store, fusion={"strategy": strategy, "mode": "frozen"},
                      split={"fractions": {"branches": 0.4, "fusion": 0.4, "test": 0.2}},
                      protocol={"name": "two_stage"})
    cfg.branches["gbm"] = type(cfg.branches["mlp"])(model="logreg", inputs=["table"])
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    split = _split(tmp_path / "run")
    assert seen["fusion"] and not (seen["fusion"] & (seen["train"] | seen["valid"]))
    assert seen["fusion"] == {t for t, p in split.items() if p == "fusion"}
    assert not ({t for t, p in split.items() if p == "test"} & (seen["train"] | seen["valid"] | seen["fusion"]))
    if strategy != "logit":  # stacking and hierarchical choose C on inner folds that keep a track's windows together
        (groups,) = [g for g in grouped if g is not None]  # (the other call checks C when the fusion is built)
        assert len(np.unique(groups)) == len(seen["fusion"]) < len(groups)
    p, _ = _bundle_matches(cfg, tmp_path / "run")
    assert np.allclose(p.sum(1), 1.0)


def test_repeated_and_seeds_report_mean_and_std(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(synth_gtzan, synth_store, fusion=None, protocol={"name": "repeated", "repeats": 2},
                      branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}}},
                      inputs={"table": {"feature": "table_row"}})
    m = train_run(cfg, tmp_path / "run", log=lambda m: None).metrics
    acc = m["summary"]["track"]["accuracy"]
    assert len(acc["values"]) == 2 and acc["std"] >= 0
    a, b = (_split(tmp_path / "run" / f"repeat0{i}") for i in range(2))
    assert a != b  # different random splits


def test_cv_grid_selects_on_training_folds_only(synth_gtzan, synth_store, tmp_path, monkeypatch):
    cfg = make_config(synth_gtzan, synth_store, fusion=None,
                      branches={"lr": {"model": "logreg", "inputs": ["table"]}}, inputs={"table": {"feature": "table_row"}},
                      protocol={"name": "cv_grid", "folds": 2, "grid": {"branches.lr.args.C": [0.001, 10.0]}})
    calls = []
    real = protocols.evaluate

    def spy(fitted, data, how, top_k):
        calls.append(set(data.ids))
        return real(fitted, data, how, top_k)

    monkeypatch.setattr(protocols, "evaluate", spy)
    m = train_run(cfg, tmp_path / "run", log=lambda m: None).metrics
    assert len(m["grid"]) == 2
    assert m["best"] == max(m["grid"], key=lambda r: r["cv_accuracy"])["point"]
    final_test = {t for t, p in _split(tmp_path / "run").items() if p == "test"}
    assert len(calls) == 2 * 2 + 1 and calls[-1] == final_test
    assert all(not (c & final_test) for c in calls[:-1]), "grid search scored a test track"


def test_gated_joint_with_hyper_dynamic_schedule_and_augmentation(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(synth_gtzan, synth_store, fusion={"strategy": "gated", "mode": "joint"},
                      train={"epochs": 3, "window_s": 1.0, "windows_per_track": 2, "batch_size": 16,
                             "hyper_dynamic": {"enabled": True},
                             "augment": {"gain_db": 3.0, "time_masks": 1, "freq_masks": 1, "mixup_alpha": 0.2}},
                      eval={"aggregate": "vote"})
    m = train_run(cfg, tmp_path / "run", log=lambda m: None).metrics
    assert m["evaluations"][0]["training"]["joint"]["epochs_run"] == 3
    _bundle_matches(cfg, tmp_path / "run")


def test_bad_configs_fail_before_training(synth_gtzan, synth_store, tmp_path):
    def run(**sections):
        return train_run(make_config(synth_gtzan, synth_store, **sections), tmp_path / "r", log=lambda m: None)

    with pytest.raises(ConfigError, match="unknown branch model 'cnn3d'"):
        run(branches={"x": {"model": "cnn3d", "inputs": ["mel"]}}, fusion=None, inputs={"mel": {"feature": "log_mel"}})
    with pytest.raises(ConfigError, match="unknown fusion strategy"):
        run(fusion={"strategy": "magic"})
    with pytest.raises(ConfigError, match="eval.aggregate must be one of"):
        run(eval={"aggregate": "median"})
    with pytest.raises(ConfigError, match="unknown feature 'log_mell'"):
        run(inputs={"mel": {"feature": "log_mell"}, "table": {"feature": "table_row"}})
    with pytest.raises(ConfigError, match="decision-level"):
        run(fusion={"strategy": "mean", "mode": "joint"})
    with pytest.raises(ConfigError, match="cannot train end to end"):
        run(branches={"a": {"model": "cnn2d", "inputs": ["mel"]}, "b": {"model": "svm", "inputs": ["table"]}})
    with pytest.raises(ConfigError, match=r"'cnn2d' takes matrix input, but \['table'\] is vector"):
        run(branches={"a": {"model": "cnn2d", "inputs": ["table"]}, "b": {"model": "mlp", "inputs": ["mel"]}})
    with pytest.raises(ConfigError, match="mixes inputs of different kinds"):
        run(branches={"a": {"model": "mlp", "inputs": ["table", "mel"]}}, fusion=None)


def test_a_class_missing_from_train_is_refused(synth_gtzan, synth_store, tmp_path):
    split = tmp_path / "split.csv"
    rows = ["track_id,part"] + [f"{g}.{i:05d},{'test' if g == 'metal' or i > 6 else 'train'}"
                                for g in ("blues", "classical", "metal") for i in range(10)]
    split.write_text("\n".join(rows) + "\n")
    cfg = make_config(synth_gtzan, synth_store, split={"file": str(split)})
    with pytest.raises(ConfigError, match=r"no track of class\(es\) \['metal'\]"):
        train_run(cfg, tmp_path / "r", log=lambda m: None)


def test_a_leaky_split_file_is_refused(synth_gtzan, synth_store, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("track_id,part\nblues.00000,train\nblues.00000,test\n")
    cfg = make_config(synth_gtzan, synth_store, split={"file": str(split)})
    with pytest.raises(SplitLeakError):
        train_run(cfg, tmp_path / "r", log=lambda m: None)


def test_evaluate_on_another_dataset_reports_unknown_genres(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(synth_gtzan, synth_store, fusion=None, branches={"mlp": {"model": "logreg", "inputs": ["table"]}},
                      inputs={"table": {"feature": "table_row"}})
    cfg.data.genres = ["blues", "metal"]
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    res = evaluate_run(tmp_path / "run", data=synth_gtzan, log=lambda m: None)
    assert res["n_tracks"] == 20 and "genres the model does not know" in res["problems"][0]
    with pytest.raises(GenreFusionError):
        evaluate_run(tmp_path / "nothing", log=lambda m: None)


def test_windows_align_across_spectrograms_images_and_waveforms(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(
        synth_gtzan, synth_store,
        inputs={"stft": {"feature": "log_stft", "params": {"n_fft": 512}}, "mel": {"feature": "log_mel"},
                "mfcc": {"feature": "mfcc"}, "wave": {"feature": "waveform", "params": {"target_sr": 8000}},
                "image": {"feature": "mel_image", "seconds": 3.0}},
        branches={"spectra": {"model": "multispectral_late", "inputs": ["stft", "mel", "mfcc"], "args": {"channels": [8, 16]}},
                  "sample": {"model": "waveform_cnn", "inputs": ["wave"], "args": {"channels": [8, 8, 16, 16]}},
                  "picture": {"model": "cnn2d", "inputs": ["image"], "args": {"channels": [8, 16]}}},
        fusion={"strategy": "logit", "mode": "joint"},
        train={"epochs": 2, "window_s": 1.5, "hop_s": 0.75, "windows_per_track": 2, "batch_size": 16})
    from genrefusion.track_data import Windowing

    data, _ = load_track_data(cfg, open_run_dataset(cfg))
    w = Windowing.resolve(data, 1.5, 0.75)
    shapes = {n: d.example_shape(w.window_s) for n, d in data.inputs.items()}
    assert shapes["stft"] == (1, 257, 65) and shapes["mel"][1:] == (128, 65) and shapes["mfcc"][1:] == (60, 65)
    assert shapes["wave"] == (1, 12000) and shapes["image"][0] == 1 and shapes["image"][1] == 385
    assert len(w.eval_windows(data.subset(data.ids[:1]))) == 3  # 3.0 s at 1.5 s windows, 0.75 s hop
    m = train_run(cfg, tmp_path / "run", log=lambda m: None).metrics
    assert set(m["summary"]["branches"]) == {"spectra", "sample", "picture"}
    _bundle_matches(cfg, tmp_path / "run")


def test_a_killed_train_command_resumes_and_ends_as_an_uninterrupted_run(synth_gtzan, synth_store, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from genrefusion.config import config_to_dict

    cfg = make_config(synth_gtzan, synth_store, fusion=None, inputs={"table": {"feature": "table_row"}},
                      branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 64}}},
                      train={"epochs": 120, "patience": 0, "batch_size": 4, "windows_per_track": 4, "threads": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    cmd = [sys.executable, "-m", "genrefusion.cli", "train", str(path), "--out"]
    subprocess.run(cmd + [str(tmp_path / "whole")], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoints" / "mlp" / "last.pt"
    deadline = time.time() + 60
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    subprocess.run(cmd + [str(tmp_path / "killed")], check=True, capture_output=True)
    m = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert m["evaluations"][0]["training"]["mlp"]["resumed_from"] > 0
    a = np.load(tmp_path / "whole" / "bundle" / "arrays.npz")
    b = np.load(tmp_path / "killed" / "bundle" / "arrays.npz")
    mlp = [k for k in a.files if k.startswith("net/branch/mlp/")]
    assert mlp and all(np.array_equal(a[k], b[k]) for k in mlp)


def test_evaluate_with_another_feature_checks_the_shapes(synth_gtzan, synth_store, tmp_path):
    cfg = make_config(synth_gtzan, synth_store, fusion=None, inputs={"mel": {"feature": "log_mel", "params": {"n_mels": 32}}},
                      branches={"cnn": {"model": "cnn2d", "inputs": ["mel"], "args": {"channels": [8]}}},
                      train={"epochs": 1, "window_s": 1.0, "windows_per_track": 1})
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    with pytest.raises(ConfigError, match=r"input 'mel' \(mfcc\) gives examples of shape \(1, 60, 43\); the model was trained on"):
        evaluate_run(tmp_path / "run", data=synth_gtzan, inputs={"mel": "mfcc"}, log=lambda m: None)
    with pytest.raises(ConfigError, match="has no input 'image'"):
        evaluate_run(tmp_path / "run", data=synth_gtzan, inputs={"image": "mel_image"}, log=lambda m: None)
    # the parameters both features take carry over: the same feature named again gives the same model input
    same = evaluate_run(tmp_path / "run", data=synth_gtzan, inputs={"mel": "log_mel"}, log=lambda m: None)
    assert same["n_tracks"] == len(GENRES) * N_PER_GENRE


def test_reused_branches_train_once_and_change_no_result(synth_gtzan, tmp_path):
    """Two frozen fusions over the same branch share its training through the store's branch cache;
    the predictions equal those of a run that trained everything itself."""
    store = tmp_path / "store"
    inputs = {"table": {"feature": "table_row"}}
    branches = {"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}},
                "lr": {"model": "logreg", "inputs": ["table"]}}

    def run(name, strategy, reuse, **train):
        cfg = make_config(synth_gtzan, store, inputs=inputs, branches=branches,
                          fusion={"strategy": strategy, "mode": "frozen"},
                          train={"epochs": 3, "batch_size": 16, "lr": 0.003, "reuse_branches": reuse, **train})
        logs = []
        train_run(cfg, tmp_path / name, log=logs.append)
        with open(tmp_path / name / "predictions.csv") as f:
            return logs, [r for r in csv.DictReader(f)]

    _, plain = run("plain", "mean", False)
    assert not (store / "branches").exists()
    first_logs, first = run("first", "mean", True)
    assert first == plain and any("epoch=2" in m for m in first_logs)
    second_logs, _ = run("second", "vote", True)
    assert not any("epoch=" in m for m in second_logs if "[mlp]" in m)  # nothing trained again
    assert any("resumed from" in m for m in second_logs)
    assert len(list((store / "branches").iterdir())) == 1
    other_logs, _ = run("other-seed", "vote", True, seed=1)  # a different network: trained, cached apart
    assert any("epoch=2" in m for m in other_logs) and len(list((store / "branches").iterdir())) == 2


def test_a_cached_branch_in_training_elsewhere_is_waited_for_then_reused(synth_gtzan, tmp_path):
    """Two commands that need the same cached branch at once: the second waits for the first's lock,
    then resumes its finished checkpoint instead of writing the same last.pt in turns."""
    cfg = make_config(synth_gtzan, tmp_path / "store", inputs={"table": {"feature": "table_row"}},
                      branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}},
                                "lr": {"model": "logreg", "inputs": ["table"]}},
                      fusion={"strategy": "mean", "mode": "frozen"},
                      train={"epochs": 2, "batch_size": 16, "reuse_branches": True})
    train_run(cfg, tmp_path / "first", log=lambda m: None)
    (branch,) = (tmp_path / "store" / "branches").iterdir()
    logs: list[str] = []
    second = threading.Thread(target=train_run, args=(cfg, tmp_path / "second"), kwargs={"log": logs.append})
    with exclusive(branch / ".lock"):  # as the first command holds it while training
        second.start()
        deadline = time.monotonic() + 60
        while not any("waiting" in m for m in logs) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.is_alive() and not any("resumed from" in m for m in logs)
    second.join(60)
    assert any("[mlp] waiting: another process is training this branch" in m for m in logs)
    assert any("[mlp] resumed from" in m for m in logs) and not any("[mlp] epoch=" in m for m in logs)


def test_a_seed_whose_branch_trains_elsewhere_goes_last_while_the_others_train(synth_gtzan, tmp_path):
    """Two commands sharing cached branches train different seeds at once: the seed whose branch is
    locked elsewhere is put back, the next seed trains meanwhile, and the first is reused after."""
    def cfg(seeds: list[int]):
        return make_config(synth_gtzan, tmp_path / "store", inputs={"table": {"feature": "table_row"}},
                           branches={"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}}}, fusion=None,
                           train={"epochs": 2, "batch_size": 16, "reuse_branches": True}, protocol={"seeds": seeds})

    train_run(cfg([0]), tmp_path / "first", log=lambda m: None)
    (seed0_branch,) = (tmp_path / "store" / "branches").iterdir()
    logs: list[str] = []
    second = threading.Thread(target=train_run, args=(cfg([0, 1]), tmp_path / "second"), kwargs={"log": logs.append})
    with exclusive(seed0_branch / ".lock"):  # as another command holds it while training seed 0
        second.start()
        deadline = time.monotonic() + 60
        while not any("seed1: test accuracy" in m for m in logs) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any("seed0 [mlp] another process is training this branch: doing the others first" in m for m in logs)
        assert any("seed1 [mlp] epoch=1" in m for m in logs)  # seed 1 trained while seed 0's branch was busy
        assert second.is_alive() and not any("seed0: test accuracy" in m for m in logs)
    second.join(60)
    assert any("seed0 [mlp] resumed from" in m for m in logs) and not any("seed0 [mlp] epoch=" in m for m in logs)
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert [e["name"] for e in metrics["evaluations"]] == ["seed0", "seed1"]  # reported in seed order


def test_a_branch_trains_with_its_own_settings_in_frozen_fusion_only(synth_gtzan, synth_store, tmp_path):
    branches = {"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}, "train": {"epochs": 2, "lr": 0.01}},
                "wide": {"model": "mlp", "inputs": ["table"], "args": {"width": 32}}}
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}}, branches=branches,
                      fusion={"strategy": "mean", "mode": "frozen"}, train={"epochs": 4, "patience": 0})
    logs = []
    train_run(cfg, tmp_path / "run", log=logs.append)
    mlp = [m for m in logs if "[mlp] epoch=" in m]
    wide = [m for m in logs if "[wide] epoch=" in m]
    assert len(mlp) == 2 and len(wide) == 4
    assert " lr=0.005 " in mlp[0]  # its own 0.01, halfway down a two-epoch cosine (the run's is 0.003)
    joint = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}}, branches=branches)
    with pytest.raises(ConfigError, match="joint fusion trains all branches together"):
        train_run(joint, tmp_path / "joint", log=lambda m: None)
    bad = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}},
                      branches={"mlp": {**branches["mlp"], "train": {"epoch": 2}}}, fusion=None)
    with pytest.raises(ConfigError, match=r"branches.mlp.train: unknown training setting\(s\) \['epoch'\]"):
        train_run(bad, tmp_path / "bad", log=lambda m: None)


def test_a_frozen_fusion_head_trains_with_its_own_settings(synth_gtzan, synth_store, tmp_path):
    branches = {"mlp": {"model": "mlp", "inputs": ["table"], "args": {"width": 16}},
                "wide": {"model": "mlp", "inputs": ["table"], "args": {"width": 32}}}
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}}, branches=branches,
                      fusion={"strategy": "logit", "mode": "frozen", "train": {"epochs": 6, "lr": 0.01}},
                      train={"epochs": 2, "patience": 0})
    logs = []
    train_run(cfg, tmp_path / "run", log=logs.append)
    head = [m for m in logs if "[fusion] epoch=" in m]
    assert len(head) == 6 and len([m for m in logs if "[mlp] epoch=" in m]) == 2
    assert " lr=0.00933 " in head[0]  # its own 0.01, one sixth down a six-epoch cosine (the run's is 0.003)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluations"][0]["training"]["fusion"]["epochs_run"] == 6
    for fusion, match in (({"strategy": "mean", "mode": "frozen"}, "'mean' in mode 'frozen' has no such head"),
                          ({"strategy": "logit", "mode": "joint"}, "'logit' in mode 'joint' has no such head"),
                          ({"strategy": "logit", "mode": "frozen"}, r"fusion.train: unknown training setting\(s\) \['epoch'\]")):
        bad = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}}, branches=branches,
                          fusion={**fusion, "train": {"epoch" if "unknown" in match else "epochs": 6}})
        with pytest.raises(ConfigError, match=match):
            train_run(bad, tmp_path / "bad", log=lambda m: None)


def _track_fits(monkeypatch):
    """Spy on frozen fusion's fitting: the tracks each classical branch was fitted on, and for every
    read of branch outputs, the tracks read and the tracks its branches were fitted on."""
    fitted_on, reads = {}, []
    real_fit, real_outputs = fit_module._fit_classical, fit_module._outputs

    def fit_spy(b, data, n_classes):
        branch = real_fit(b, data, n_classes)
        fitted_on[id(branch)] = set(data.ids)
        return branch

    def outputs_spy(frozen, data, windowing):
        reads.append((list(data.ids), [fitted_on[id(b)] for b in frozen.branches.values()]))
        return real_outputs(frozen, data, windowing)

    monkeypatch.setattr(fit_module, "_fit_classical", fit_spy)
    monkeypatch.setattr(fit_module, "_outputs", outputs_spy)
    return fitted_on, reads


@pytest.mark.parametrize("strategy", ["stacking", "logit"])
def test_a_cross_fitted_fusion_learns_from_out_of_fold_outputs_of_every_training_track(
        synth_gtzan, synth_store, tmp_path, monkeypatch, strategy):
    fitted_on, reads = _track_fits(monkeypatch)
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}},
                      branches={"lr": {"model": "logreg", "inputs": ["table"]},
                                "svm": {"model": "svm", "inputs": ["table"]}},
                      fusion={"strategy": strategy, "mode": "frozen", "cross_fit": 3}, train={"epochs": 3})
    logs = []
    train_run(cfg, tmp_path / "run", log=logs.append)
    split = _split(tmp_path / "run")
    train = {t for t, p in split.items() if p == "train"}
    assert set(split.values()) == {"train", "test"}  # no validation part: the fusion needs none
    assert len(reads) == 3
    for read, branch_tracks in reads:
        assert all(not (set(read) & b) and b | set(read) == train for b in branch_tracks)
    held = [t for read, _ in reads for t in read]
    assert sorted(held) == sorted(train)  # every training track's outputs, each once
    final = [ids for ids in fitted_on.values() if ids == train]
    assert len(final) == 2  # then each branch refitted on all of them
    if strategy == "stacking":  # (a neural head logs its epochs instead)
        assert any(f"of {len(train)} tracks (out-of-fold outputs, 3 folds)" in m for m in logs)
    p, _ = _bundle_matches(cfg, tmp_path / "run")
    assert np.allclose(p.sum(1), 1.0)


def test_cross_fitting_keeps_an_artists_tracks_in_one_fold(synth_gtzan, synth_store, monkeypatch):
    fitted_on, reads = _track_fits(monkeypatch)
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}},
                      branches={"lr": {"model": "logreg", "inputs": ["table"]}},
                      fusion={"strategy": "stacking", "mode": "frozen", "cross_fit": 3})
    data, _ = load_track_data(cfg, open_run_dataset(cfg))
    from genrefusion.datasets.base import FoldKey

    data.fold_keys = [FoldKey("artist", f"artist {i // 3}") if i % 5 else None for i in range(len(data))]  # trios
    artist = dict(zip(data.ids, data.fold_keys))
    windowing = Windowing.resolve(data, None, None)
    outs, idx = fit_module._out_of_fold_outputs(cfg, {"lr": {"model": "logreg", "inputs": ["table"], "args": {}}},
                                                data, windowing, log=lambda m: None)
    assert sorted(idx) == list(range(len(data))) and len(outs["lr"]["logits"]) == len(data)
    for read, (branch_tracks,) in reads:
        assert not ({artist[t] for t in read} & {artist[t] for t in branch_tracks}) - {None}
    first = data.labels[int(data.y[0])]  # its tracks all one artist's: a fold would fit without it, said up front
    data.fold_keys = [FoldKey("artist", "one") if c == data.y[0] else FoldKey("artist", f"a{i % 4}")
                      for i, c in enumerate(data.y)]
    with pytest.raises(ConfigError, match=rf"cross-fitting: class\(es\) \['{first}'\] have one artist.*split.leaky"):
        fit_module._out_of_fold_outputs(cfg, {"lr": {"model": "logreg", "inputs": ["table"], "args": {}}},
                                        data, windowing, log=lambda m: None)


def test_a_run_that_lets_artists_cross_folds_its_inner_folds_track_by_track(synth_gtzan, synth_store):
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}},
                      branches={"lr": {"model": "logreg", "inputs": ["table"]}})
    grouped, _ = load_track_data(cfg, open_run_dataset(cfg))
    cfg.split.group_by_artist, cfg.split.leaky = False, True
    ungrouped, _ = load_track_data(cfg, open_run_dataset(cfg))
    assert grouped.fold_keys is not None and ungrouped.fold_keys is None
    assert ungrouped.groups().tolist() == list(range(len(ungrouped)))


def test_track_groups_join_an_artists_tracks_and_leave_the_unknown_alone():
    from genrefusion.datasets.base import Track

    artists = ["The Band", None, " the  band", "", "Other"]  # compared as normalised: case and spacing aside
    data = TrackData(["a", "b", "c", "d", "e"], np.zeros(5, np.int64), ["x"], {},
                     fold_keys=[Track(t, "x", artist=a).fold_key for t, a in zip("abcde", artists)])
    assert data.groups().tolist() == [0, 1, 0, 3, 4]
    assert data.subset(["c", "e"]).groups().tolist() == [0, 1]
    assert TrackData(["a", "b"], np.zeros(2, np.int64), ["x"], {}).groups().tolist() == [0, 1]


def test_fold_groups_join_tracks_unless_too_coarse_to_fold():
    from genrefusion.datasets.base import FoldKey

    def G(name):
        return FoldKey("group", name)

    keys = [G("a.0"), G("a.0"), G("a.1"), G("b.0"), G("b.1"), FoldKey("artist", "someone")]
    data = TrackData(list("uvwxyz"), np.array([0, 0, 0, 1, 1, 1]), ["a", "b"], {}, fold_keys=keys)
    assert data.groups().tolist() == [0, 0, 2, 3, 4, 5]
    coarse = data.subset(list("uvxyz"))  # class a in one group could not be folded: its tracks leave it
    assert coarse.groups().tolist() == [0, 1, 2, 3, 4]
    assert data.subset(list("uvwx")).groups().tolist() == [0, 0, 2, 3]  # class b alone leaves its group
    both = TrackData(list("uvwt"), np.array([0, 0, 0, 1]), ["a", "b"], {},
                     fold_keys=[FoldKey("artist", "x"), FoldKey("artist", "x"), FoldKey("artist", "z"), G("b.0")])
    assert both.groups().tolist() == [0, 0, 2, 3]  # artists stay grouped when fold groups go
    one = TrackData(list("uvw"), np.array([0, 0, 1]), ["reggae", "b"], {},
                    fold_keys=[FoldKey("artist", "bob marley"), FoldKey("artist", "bob marley"), G("b.0")])
    assert one.one_artist_classes() == ["reggae"] and both.one_artist_classes() == []
    assert one.groups().tolist() == [0, 1, 2]  # model selection's folds still see reggae in each fold
    # a class whose unknown-artist tracks are one fold group still folds by its known artists: the group stays
    mixed = TrackData(list("uvw"), np.zeros(3, np.int64), ["a"], {}, fold_keys=[G("a.0"), G("a.0"), FoldKey("artist", "y")])
    assert mixed.groups().tolist() == [0, 0, 2]


def test_cross_fit_needs_folds_frozen_fusion_and_classical_branches(synth_gtzan, synth_store, tmp_path):
    def run(**sections):
        return train_run(make_config(synth_gtzan, synth_store, **sections), tmp_path / "r", log=lambda m: None)

    lr, table = {"model": "logreg", "inputs": ["table"]}, {"table": {"feature": "table_row"}}
    with pytest.raises(ConfigError, match=r"neural: \['cnn', 'mlp'\]"):
        run(fusion={"strategy": "mean", "mode": "frozen", "cross_fit": 5})
    with pytest.raises(ConfigError, match="at least 2 folds"):
        run(branches={"a": lr, "b": lr}, fusion={"strategy": "mean", "mode": "frozen", "cross_fit": 1}, inputs=table)
    with pytest.raises(ConfigError, match="no cross_fit"):
        run(branches={"a": lr, "b": lr}, fusion={"strategy": "stacking", "mode": "frozen", "cross_fit": 3}, inputs=table,
            split={"fractions": {"branches": 0.4, "fusion": 0.4, "test": 0.2}}, protocol={"name": "two_stage"})
    with pytest.raises(ConfigError, match="'mean' learns nothing"):
        run(branches={"a": lr, "b": lr}, fusion={"strategy": "mean", "mode": "frozen", "cross_fit": 3}, inputs=table)


@pytest.mark.parametrize("strategy, holds_out", [("mean", False), ("product", False), ("vote", False),
                                                 ("weighted_mean", True)])
def test_a_fusion_that_learns_nothing_trains_classical_branches_on_the_validation_tracks_too(
        synth_gtzan, synth_store, tmp_path, monkeypatch, strategy, holds_out):
    fitted_on, reads = _track_fits(monkeypatch)
    cfg = make_config(synth_gtzan, synth_store, inputs={"table": {"feature": "table_row"}},
                      branches={"lr": {"model": "logreg", "inputs": ["table"]},
                                "svm": {"model": "svm", "inputs": ["table"]}},
                      fusion={"strategy": strategy, "mode": "frozen"})
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    split = _split(tmp_path / "run")
    train = {t for t, p in split.items() if p == "train"}
    assert ("valid" in split.values()) == holds_out
    assert list(fitted_on.values()) == [train, train]  # each branch fitted once, on every training track
    if holds_out:  # weighted mean learns its weights from the validation tracks' outputs
        assert [set(read) for read, _ in reads] == [{t for t, p in split.items() if p == "valid"}]
    p, _ = _bundle_matches(cfg, tmp_path / "run")
    assert np.allclose(p.sum(1), 1.0)


def test_a_run_on_tables_says_how_to_predict_from_audio_and_a_twin_needs_no_word(synth_gtzan, synth_store, tmp_path):
    from genrefusion.config import config_from_dict, config_to_dict
    from genrefusion.inference.predictor import Predictor
    from genrefusion.training.fit import audio_source

    cfg = make_config(synth_gtzan, synth_store, fusion=None, inputs={"table": {"feature": "table_row"}},
                      branches={"lr": {"model": "logreg", "inputs": ["table"]}})
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    with pytest.raises(GenreFusionError) as err:
        Predictor(tmp_path / "run")
    assert "inputs.table.audio_feature" in str(err.value) and "summary_gtzan, for GTZAN's features_30_sec" in str(err.value)
    # GTZAN's own table row has an audio twin: prediction computes it from audio, hpss as the run read it
    data = config_to_dict(cfg)
    data["inputs"] = {"table": {"feature": "gtzan_table_row", "params": {"hpss": False}}}
    source = audio_source(config_from_dict(data), "table", {"params": {"hpss": False}})
    assert source.feature == "summary_gtzan" and source.params["hpss"] is False


@pytest.mark.parametrize("key, value, says", [
    ("train.lr", "fast", "train.lr must be a number, got 'fast'"),
    ("train.epochs", -5, "train.epochs must be at least 1, got -5"),
    ("train.schedule", "linear", "train.schedule must be one of cosine, constant"),
    ("eval.aggregate", "median", "eval.aggregate must be one of mean, vote, max"),
    ("protocol.folds", 1, "protocol.folds must be at least 2"),
    ("protocol.engine", "spark", "protocol.engine must be one of local, ray"),
    ("split.fractions.test", 0, "split.fractions.test must be between 0 and 1"),
    ("fusion.mode", "late", "fusion.mode must be one of joint, frozen"),
])
def test_a_bad_value_is_one_error_naming_its_key_before_anything_runs(synth_gtzan, synth_store, tmp_path, capsys,
                                                                      key, value, says):
    import yaml

    from genrefusion.cli import main
    from genrefusion.config import config_to_dict

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(make_config(synth_gtzan, synth_store))))
    code = main(["train", str(path), "--set", f"{key}={value}", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and says in err[0] and not (tmp_path / "run").exists()


def test_the_config_aggregators_are_the_registered_ones():
    import typing

    from genrefusion.config import Aggregate
    from genrefusion.evaluation.metrics import AGGREGATORS

    assert set(typing.get_args(Aggregate)) == set(AGGREGATORS)
