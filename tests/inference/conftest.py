"""Bundles trained on the synthetic GTZAN-layout clips, for the prediction, library, ONNX and service tests.

``frozen_bundle``: two-stage weighted mean of a CNN on 1 s log-mel windows, an MLP and a logistic
regression on the HPSS-free GTZAN summary, all computed from audio, with 3 s segments (the
clips' length) so that longer files are read segment by segment. ``joint_bundle``: the CNN and
the MLP fused end to end by a feature-level head. ``tagger_bundle``: the shipped models' kind (musicnn's tags
through the tag table, learned, fused with a logistic regression on the same network's pool layer), read at
16 kHz in 6 s segments of which prediction reads one 3 s patch each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SR, write
from tests.training.conftest import GENRES, _clip, make_config, synth_gtzan, synth_store  # noqa: F401

AUDIO_INPUTS = {"mel": {"feature": "log_mel", "params": {"n_mels": 32}},
                "summary": {"feature": "summary_gtzan", "params": {"hpss": False}}}


def _train(data: Path, store: Path, out: Path, **sections) -> Path:
    from genrefusion.training.run import train_run

    cfg = make_config(data, store, name=out.name, inputs=AUDIO_INPUTS, eval={"segment_s": 3.0}, **sections)
    train_run(cfg, out, log=lambda _: None)
    return out / "bundle"


@pytest.fixture(scope="session")
def frozen_bundle(synth_gtzan, synth_store, tmp_path_factory) -> Path:  # noqa: F811
    return _train(synth_gtzan, synth_store, tmp_path_factory.mktemp("runs") / "frozen",
                  branches={"cnn": {"model": "cnn2d", "inputs": ["mel"], "args": {"channels": [8, 16]}},
                            "mlp": {"model": "mlp", "inputs": ["summary"], "args": {"width": 32}},
                            "linear": {"model": "logreg", "inputs": ["summary"]}},
                  fusion={"strategy": "weighted_mean", "mode": "frozen"})


@pytest.fixture(scope="session")
def tagger_bundle(synth_gtzan, synth_store, tmp_path_factory) -> Path:  # noqa: F811
    from genrefusion.training.run import train_run

    out = tmp_path_factory.mktemp("runs") / "tagger"
    cfg = make_config(
        synth_gtzan, synth_store, name="tagger",
        inputs={"tags": {"feature": "musicnn_tags"},
                "pools": {"feature": "musicnn_embedding", "params": {"layer": "max_mean_pool"}}},
        branches={"tags": {"model": "tag_prior", "inputs": ["tags"],
                           "args": {"sources": ["msd-musicnn"], "learn": True, "strength": 0.01}},
                  "pools": {"model": "logreg", "inputs": ["pools"], "args": {"C": 0.1, "balanced": True}}},
        fusion={"strategy": "product", "mode": "frozen"}, train={}, protocol={"name": "holdout", "refit": True},
        eval={"segment_s": 6.0, "predict_params": {"patches": 1}, "sure_probability": 0.4})
    cfg.data.sr = 16000  # musicnn's rate: decoded straight to it
    train_run(cfg, out, log=lambda _: None)
    return out / "bundle"


@pytest.fixture(scope="session")
def joint_bundle(synth_gtzan, synth_store, tmp_path_factory) -> Path:  # noqa: F811
    return _train(synth_gtzan, synth_store, tmp_path_factory.mktemp("runs") / "joint",
                  branches={"cnn": {"model": "cnn2d", "inputs": ["mel"], "args": {"channels": [8, 16]}},
                            "mlp": {"model": "mlp", "inputs": ["summary"], "args": {"width": 32}}})


@pytest.fixture(scope="session")
def songs(tmp_path_factory) -> dict[str, Path]:
    """New clips of each genre (not the training ones), a 10 s file that changes genre, and bad files."""
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(123)
    files = {g: write(root / "music" / g / f"new_{g}.wav", _clip(g, 99, rng)) for g in GENRES}
    files["long"] = write(root / "music" / "long" / "blues_then_metal.flac",
                          np.concatenate([_clip("blues", 0, rng), _clip("blues", 1, rng), _clip("metal", 2, rng),
                                          _clip("metal", 3, rng)[: int(1.0 * SR)]]))
    files["corrupt"] = root / "bad" / "corrupt.mp3"
    files["corrupt"].parent.mkdir(parents=True)
    files["corrupt"].write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00not really audio" * 10)
    files["empty"] = root / "bad" / "empty.wav"
    files["empty"].write_bytes(b"")
    return files
