"""Bundles are data: JSON and arrays (and skops' JSON-and-arrays for scikit-learn objects), no pickle."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

import genrefusion
from genrefusion.bundle import FORMAT, load_bundle, objects_to_bytes, save_bundle
from genrefusion.errors import ModelError
from genrefusion.inference.predictor import DEFAULT_ROOT, PROFILES, Predictor

ALLOWED = {"bundle.json", "arrays.npz", "sklearn.skops"}


def _no_pickle_in(folder: Path) -> None:
    """Every file of the bundle is JSON or arrays that load without pickle."""
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert names <= ALLOWED, f"files beyond JSON and arrays: {sorted(names - ALLOWED)}"
    assert json.loads((folder / "bundle.json").read_text())["format"] == FORMAT
    if (folder / "arrays.npz").exists():  # (a model of scikit-learn parts only has none)
        with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:  # an object array would raise here
            assert all(arrays[k].dtype != object for k in arrays.files)
    if (folder / "sklearn.skops").exists():
        with zipfile.ZipFile(folder / "sklearn.skops") as z:
            for name in z.namelist():  # skops' schema, numpy arrays, xgboost's own model format (UBJSON)
                assert name.endswith((".json", ".npy", ".bin")) and not z.read(name).startswith(b"\x80"), name


@pytest.mark.parametrize("profile", PROFILES)
def test_the_shipped_bundle_holds_no_pickle(profile):
    _no_pickle_in(DEFAULT_ROOT / profile)


def _venv_with_numpy(tmp: Path, version: str) -> Path:
    """A virtual environment with numpy ``version`` in front of this environment's packages (torch, scikit-learn
    and genrefusion itself come from here), or a skip if pip cannot install it."""
    venv.create(tmp / "env", with_pip=True)
    python = tmp / "env" / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", f"numpy=={version}"], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode:
        pytest.skip(f"pip could not install numpy {version}: {proc.stderr.strip().splitlines()[-1:]}")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            str(Path(genrefusion.__file__).parents[1])}
    Path(site, "zz_genrefusion.pth").write_text("\n".join(sorted(here)) + "\n")
    return python


def test_the_shipped_model_predicts_with_the_oldest_numpy_pyproject_allows(tmp_path):
    floor = next(d for d in genrefusion_requirements() if d.startswith("numpy>=")).split(">=")[1]
    python = _venv_with_numpy(tmp_path, floor if floor.count(".") == 2 else floor + ".0")
    script = ("import numpy as np; from genrefusion.inference.predictor import Predictor; "
              "sr = 22050; t = np.arange(sr * 10) / sr; y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype('float32'); "
              "print(np.__version__, *[round(float(p), 4) for p in Predictor(profile='{p}').predict_array(y, sr=sr).proba])")
    sr = 22050
    t = np.arange(sr * 10) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    for profile in PROFILES:
        out = subprocess.run([str(python), "-c", script.replace("{p}", profile)], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        version, *proba = out.stdout.split()
        assert version.startswith(floor)
        here = Predictor(profile=profile).predict_array(y, sr=sr).proba
        np.testing.assert_allclose([float(p) for p in proba], here, atol=2e-4)


def genrefusion_requirements() -> list[str]:
    from importlib.metadata import requires

    return [r.replace(" ", "") for r in requires("genrefusion") or [] if "extra ==" not in r]


def _frozen_bundle(tmp_path: Path, branches: dict, fusion: str | None = None, **fusion_args):
    """A frozen model of classical branches on one vector input (fitted on separable rows), saved and reloaded."""
    import torch

    from genrefusion.fusion.model import FrozenFusion
    from genrefusion.fusion.registry import build_fusion
    from genrefusion.models.registry import build_branch
    from genrefusion.track_data import Windowing
    from genrefusion.fusion.model import Fitted

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.normal(0, 1, (60, 6))
    x[np.arange(60), y] += 3
    fitted_branches = {n: build_branch(m, n_classes=3, in_shape=(6,), **a).fit(x, y) for n, (m, a) in branches.items()}
    fused = None
    if fusion is not None:
        outs = {n: {k: v.numpy() for k, v in b(x).items()} for n, b in fitted_branches.items()}
        fused = build_fusion(fusion, branches={n: (3, 3) for n in branches}, n_classes=3, **fusion_args).fit(outs, y)
    model = FrozenFusion(n_classes=3, branches=fitted_branches, branch_inputs={n: ["v"] for n in branches},
                         fusion=fused, fusion_spec={"strategy": fusion, "args": fusion_args} if fusion else {})
    fitted = Fitted(model=model, labels=["a", "b", "c"], windowing=Windowing(1.0, 1.0), inputs={})
    save_bundle(fitted, tmp_path / "bundle")
    again, _ = load_bundle(tmp_path / "bundle")
    batch = {"v": torch.from_numpy(x.astype(np.float32))}
    return model.predict(batch)[0], again.model.predict(batch)[0]


@pytest.mark.parametrize("branches, fusion, args", [
    ({"svm": ("svm", {}), "gbm": ("gbm", {"backend": "sklearn", "n_estimators": 10})}, "stacking", {}),
    ({"lr": ("logreg", {}), "gbm": ("gbm", {"backend": "xgboost", "n_estimators": 10})}, "hierarchical",
     {"classifier": "svm"}),
    ({"lr": ("logreg", {}), "svm": ("svm", {})}, "hierarchical", {"classifier": "mlp"}),
    ({"lr": ("logreg", {}), "svm": ("svm", {})}, "weighted_mean", {}),
], ids=["svm-hgb-stacking", "xgboost-hierarchical-svm", "hierarchical-mlp", "weighted-mean"])
def test_scikit_learn_parts_are_saved_as_data_and_predict_the_same(tmp_path, branches, fusion, args):
    before, after = _frozen_bundle(tmp_path, branches, fusion, **args)
    np.testing.assert_array_equal(after, before)
    _no_pickle_in(tmp_path / "bundle")


def test_a_bundle_with_a_type_genrefusion_does_not_know_is_refused(tmp_path):
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    _frozen_bundle(tmp_path, {"svm": ("svm", {})})
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, scoring="neg_log_loss", cv=2)
    search.fit(np.tile(np.eye(3), (4, 1)), np.tile([0, 1, 2], 4))  # holds a scorer: a function reference
    (tmp_path / "bundle" / "sklearn.skops").write_bytes(skops.io.dumps({"branch/svm": search}))
    with pytest.raises(ModelError, match="does not load: sklearn.metrics"):
        load_bundle(tmp_path / "bundle")
    with pytest.raises(ModelError, match="types genrefusion does not load from a bundle"):  # nor writes it
        objects_to_bytes({"branch/svm": search})


def _format_1(folder: Path, dest: Path, objects: dict | None = None) -> Path:
    """``folder`` (today's format) rewritten as a format 1 bundle: weights.pt, and objects.pkl if given."""
    import torch

    shutil.copytree(folder, dest)
    meta = json.loads((dest / "bundle.json").read_text())
    meta["format"] = 1
    weights: dict = {}
    if (dest / "arrays.npz").exists():
        with np.load(dest / "arrays.npz") as arrays:
            rest = {k: arrays[k] for k in arrays.files if not k.startswith("net/")}
            for k in arrays.files:
                if k.startswith("net/"):
                    key, param = k[4:].rsplit("/", 1)
                    weights.setdefault(key, {})[param] = torch.from_numpy(arrays[k])
        np.savez(dest / "arrays.npz", **rest)
    torch.save(weights, dest / "weights.pt")
    if objects is not None:
        for entry in meta["model"]["branches"].values():
            if entry.get("state") == "skops":
                entry["state"] = "pickle"
        (dest / "sklearn.skops").unlink()
        (dest / "objects.pkl").write_bytes(pickle.dumps(objects))
    (dest / "bundle.json").write_text(json.dumps(meta))
    return dest


def test_an_old_bundle_is_read_or_named_with_the_command_that_converts_it(tmp_path, capsys):
    from genrefusion.cli import main

    _frozen_bundle(tmp_path, {"svm": ("svm", {})})
    fitted, _ = load_bundle(tmp_path / "bundle")
    old = _format_1(tmp_path / "bundle", tmp_path / "old", {"branch/svm": fitted.model.branches["svm"]})
    with pytest.raises(ModelError, match=r"objects.pkl.*genrefusion model convert .*old --out NEW_FOLDER --allow-pickle"):
        load_bundle(old)
    assert main(["model", "convert", str(old), "--out", str(tmp_path / "new")]) == 1  # no --allow-pickle: refused
    assert "runs code when read" in capsys.readouterr().err and not (tmp_path / "new").exists()
    with pytest.warns(UserWarning, match="a pickle"):
        assert main(["model", "convert", str(old), "--out", str(tmp_path / "new"), "--allow-pickle"]) == 0
    _no_pickle_in(tmp_path / "new")
    x = {"v": __import__("torch").randn(5, 6)}
    np.testing.assert_array_equal(load_bundle(tmp_path / "new")[0].model.predict(x)[0], fitted.model.predict(x)[0])


@pytest.mark.parametrize("profile", PROFILES)
def test_a_format_1_bundle_without_pickle_still_loads(tmp_path, profile):
    old = _format_1(DEFAULT_ROOT / profile, tmp_path / "old")
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050 * 8) / 22050)).astype("float32")
    np.testing.assert_array_equal(Predictor(old).predict_array(y, sr=22050).proba,
                                  Predictor(profile=profile).predict_array(y, sr=22050).proba)



@pytest.mark.parametrize("profile", PROFILES)
def test_a_bundles_inputs_are_typed_and_read_back_as_written(profile):
    from genrefusion.bundle import InputSpec, read_meta

    meta = read_meta(DEFAULT_ROOT / profile)
    specs = {n: InputSpec.from_json(d) for n, d in meta["inputs"].items()}
    assert specs and all(s.audio is not None and s.audio.sr > 0 for s in specs.values())  # it predicts on audio
    assert {n: s.to_json() for n, s in specs.items()} == meta["inputs"]  # nothing lost or added
    loaded = Predictor(profile=profile).fitted.inputs
    assert loaded == specs
