"""ONNX export: every network of a bundle, checked against torch, and the onnx backend of the predictor."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from genrefusion.errors import ModelError
from genrefusion.inference.onnx import export_onnx
from genrefusion.inference.predictor import Predictor


@pytest.fixture(params=["frozen", "joint"])
def bundle_copy(request, frozen_bundle, joint_bundle, tmp_path):
    src = {"frozen": frozen_bundle, "joint": joint_bundle}[request.param]
    return shutil.copytree(src, tmp_path / "bundle")


def test_export_matches_torch_through_the_whole_prediction(bundle_copy, songs):
    written = export_onnx(bundle_copy)
    assert written and all(p.suffix == ".onnx" and p.stat().st_size > 0 for p in written)
    torch_p, onnx_p = Predictor(bundle_copy), Predictor(bundle_copy, backend="onnx")
    for key in ("blues", "metal", "long"):
        a, b = torch_p.predict_file(songs[key]), onnx_p.predict_file(songs[key])
        np.testing.assert_allclose(a.proba, b.proba, atol=1e-4)
        np.testing.assert_allclose(np.stack([w.proba for w in a.windows]), np.stack([w.proba for w in b.windows]),
                                   atol=1e-4)


def test_onnx_backend_needs_an_export_first(frozen_bundle, tmp_path):
    bundle = shutil.copytree(frozen_bundle, tmp_path / "bundle")
    with pytest.raises(ModelError, match="export --onnx"):
        Predictor(bundle, backend="onnx")


def test_a_model_without_trained_networks_says_there_is_nothing_to_export(tagger_bundle, tmp_path):
    bundle = shutil.copytree(tagger_bundle, tmp_path / "tagger")
    with pytest.raises(ModelError, match="no trained network to export"):
        export_onnx(bundle)
    assert not (bundle / "onnx").exists()
