"""The musicnn port against the original TensorFlow code's outputs (tests/fixtures/musicnn_reference.npz,
made by tests/fixtures/make_musicnn_reference.py), and its audio front end, features, branch and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genrefusion.cli import EXIT_OK, EXIT_PARTIAL, main
from genrefusion.errors import FeatureError, ModelError
from genrefusion.features import get_feature
from genrefusion.pretrained import musicnn as mn
from genrefusion.pretrained.tf_checkpoint import read_checkpoint
from tests.conftest import SR, noise, tone, write

REFERENCE = Path(__file__).parents[1] / "fixtures" / "musicnn_reference.npz"
#: Largest |torch - TensorFlow| allowed on logits and penultimate features (float32 summation order;
#: measured at most 2.4e-5 with logits up to 14).
TOLERANCE = 1e-4


@pytest.mark.parametrize("model", sorted(mn.MODELS))
def test_port_matches_the_original_tensorflow_outputs(model):
    ref = np.load(REFERENCE)
    with torch.no_grad():
        out = mn.load_musicnn(model)(torch.from_numpy(ref["inputs"]))
    for key in ("logits", "penultimate"):
        np.testing.assert_allclose(out[key].numpy(), ref[f"{model}/{key}"], atol=TOLERANCE, rtol=0)


def test_checkpoint_reader_reads_every_variable_and_refuses_non_checkpoints(tmp_path):
    t = read_checkpoint(mn.checkpoint_dir("mtt-musicnn"))
    assert t["conv2d/kernel"].shape == (7, 38, 1, 204) and t["dense_1/kernel"].shape == (200, 50)
    (tmp_path / "x.index").write_bytes(b"\0" * 64)
    (tmp_path / "x.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(ModelError, match="bad table magic"):
        read_checkpoint(tmp_path / "x")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "missing")


def test_patches_are_float32_finite_on_loud_input_and_each_patch_has_its_own_features():
    loud = np.clip(50 * noise(7.0), -1, 1)  # float16 in the original overflows on such input
    p = mn.log_mel_patches(loud, sr=SR)
    assert p.shape == (2, 187, 96) and p.dtype == np.float32 and np.isfinite(p).all()
    y = np.concatenate([tone(220, 3.1), noise(3.1)])
    out = mn.run_patches("msd-musicnn", mn.log_mel_patches(y, sr=SR))
    assert not np.allclose(out["penultimate"][0], out["penultimate"][1])
    short = mn.log_mel_patches(tone(440, 1.0), sr=SR)
    assert short.shape == (1, 187, 96)  # padded to one patch


def test_features_match_the_patch_front_end():
    y = tone(440, 6.5) + noise(6.5)
    emb = get_feature("musicnn_embedding").fn(y, sr=SR, model="mtt-vgg", pool="meanmax")
    assert emb.shape == (512,) and emb.dtype == np.float32
    tags = get_feature("musicnn_tags").fn(y, sr=SR)
    assert tags.shape == (50,) and ((tags >= 0) & (tags <= 1)).all()
    mel = get_feature("musicnn_mel").fn(y, sr=SR)
    assert mel.shape == (96, 1 + 6.5 * 16000 // 256)
    np.testing.assert_allclose(mel[:, :187].T, mn.log_mel_patches(y, sr=SR)[0], rtol=1e-6)


def test_patch_sequence_is_each_patchs_features_in_order_then_zero_rows():
    y = np.concatenate([tone(220, 3.1), noise(3.1)])
    out = mn.run_patches("msd-musicnn", mn.log_mel_patches(y, sr=SR))
    seq = get_feature("musicnn_patches").fn(y, sr=SR, max_patches=4)
    assert seq.shape == (4, 200) and seq.dtype == np.float32 and get_feature("musicnn_patches").layout == "sequence"
    np.testing.assert_allclose(seq[:2], out["penultimate"], atol=1e-6)
    assert not seq[2:].any() and seq[:2].any(axis=1).all()  # padding is what the sequence branches mask out
    assert get_feature("musicnn_patches").fn(y, sr=SR, max_patches=1, layer="max_mean_pool").shape == (1, 1506)
    with pytest.raises(FeatureError, match="max_patches must be at least 1"):
        get_feature("musicnn_patches").fn(y, sr=SR, max_patches=0)


def test_max_mean_pool_layer_is_what_the_back_end_reads_and_layers_are_checked():
    y = tone(330, 6.2) + 0.3 * noise(6.2)
    patches = mn.log_mel_patches(y, sr=SR)
    out = mn.run_patches("msd-musicnn", patches, layers=("max_pool", "mean_pool", "max_mean_pool", "penultimate"))
    assert out["max_mean_pool"].shape == (2, 1506)
    np.testing.assert_array_equal(out["max_mean_pool"], np.hstack([out["max_pool"], out["mean_pool"]]))
    net = mn.load_musicnn("msd-musicnn")
    interleaved = np.stack([out["max_pool"], out["mean_pool"]], 2).reshape(2, -1)  # the back end's order
    with torch.no_grad():
        pen = net.dense_bn(torch.relu(net.dense(net.back_bn(torch.from_numpy(interleaved))))).numpy()
    np.testing.assert_allclose(pen, out["penultimate"], atol=1e-5)
    emb = get_feature("musicnn_embedding").fn(y, sr=SR, pool="meanmax", layer="max_mean_pool")
    assert emb.shape == (3012,) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[:1506], out["max_mean_pool"].mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match="no vector layer"):
        mn.run_patches("mtt-vgg", patches, layers=("max_pool",))
    with pytest.raises(FeatureError, match="layer of mtt-vgg must be one of"):
        get_feature("musicnn_embedding").fn(y, sr=SR, model="mtt-vgg", layer="max_pool")


def test_musicnn_input_read_back_from_a_mel_image_follows_the_audios():
    """The image keeps ~12.9 columns/s and 0.31 dB steps, yet the read-back input follows what musicnn
    computes from the audio. Measured: correlation over all cells 0.948 (bands upside down: 0.64; 1 s late:
    0.58), median |difference| 0.04 (the peak 20 dB off: 1.01)."""
    from genrefusion.features import musicnn as features
    from genrefusion.features.images import mel_image
    from tests.conftest import chirp

    y = np.concatenate([chirp(200, 4000, 15.0), noise(15.0) * np.linspace(0, 1, 15 * SR)]).astype(np.float32)
    audio = get_feature("musicnn_mel").fn(y, sr=SR)
    peak = 10 * np.log10((10 ** audio.max() - 1) / 10000)
    img = mel_image(y, sr=SR)
    read_back = features.musicnn_mel_from_image(img, n_frames=1 + y.size // 512, peak_db=peak)
    assert read_back.shape == audio.shape and read_back.dtype == np.float32
    assert np.corrcoef(read_back.ravel(), audio.ravel())[0, 1] > 0.93
    assert np.median(np.abs(read_back - audio)) < 0.1
    emb = get_feature("musicnn_embedding_from_image").fn(img, pool="meanmax")
    assert emb.shape == (400,) and np.isfinite(emb).all()


def test_tags_command_text_and_json(tmp_path, capsys):
    a = write(tmp_path / "a.wav", tone(440, 4.0))
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio")
    assert main(["tags", str(a), "--top", "3"]) == EXIT_OK
    assert str(a) in capsys.readouterr().out
    assert main(["tags", str(a), str(bad), "--format", "json", "--model", "mtt-musicnn"]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data[0]["path"] == str(a) and len(data[0]["tags"]) == 50 and "classical" in data[0]["tags"]
    assert "bad.mp3" in captured.err


@pytest.mark.parametrize("model", ["msd-musicnn", "mtt-musicnn"])
def test_the_shipped_onnx_graphs_give_the_original_outputs(model, monkeypatch):
    from genrefusion.pretrained import musicnn_onnx

    assert musicnn_onnx.session(model) is not None, "the shipped graph or onnxruntime is missing"
    ref = np.load(REFERENCE)
    layers = ("logits", "penultimate", "max_mean_pool", "tags")
    graph = mn.run_patches(model, ref["inputs"], layers=layers)  # through onnxruntime
    for key in ("logits", "penultimate"):
        np.testing.assert_allclose(graph[key], ref[f"{model}/{key}"], atol=TOLERANCE, rtol=0)
    with torch.no_grad():
        port = mn.load_musicnn(model)(torch.from_numpy(ref["inputs"]))
    np.testing.assert_allclose(graph["max_mean_pool"], port["max_mean_pool"].numpy(), atol=1e-4, rtol=0)
    monkeypatch.setenv("GENREFUSION_MUSICNN", "torch")
    musicnn_onnx.session.cache_clear()
    try:
        assert musicnn_onnx.session(model) is None  # the switch back to torch
        np.testing.assert_allclose(mn.run_patches(model, ref["inputs"], layers=layers)["tags"], graph["tags"], atol=1e-5)
    finally:
        musicnn_onnx.session.cache_clear()
