"""The batched torch log-mel agrees with librosa's within the stated tolerance."""

from __future__ import annotations

import numpy as np
import torch

from genrefusion.features.spectral import log_mel
from genrefusion.features.torch_spectral import LOG_MEL_TOLERANCE_DB, LogMel
from tests.conftest import SR, chirp, clicks, noise, tone


def test_torch_log_mel_matches_librosa():
    signals = [tone(440, 3.0) + noise(3.0), chirp(100, 9000, 3.0), clicks(120, 3.0), 0.001 * noise(3.0, seed=5)]
    batch = torch.from_numpy(np.stack(signals))
    got = LogMel(sr=SR)(batch).numpy()
    for y, g in zip(signals, got):
        ref = log_mel(y, sr=SR)
        assert g.shape == ref.shape
        assert np.max(np.abs(g - ref)) < LOG_MEL_TOLERANCE_DB


def test_torch_log_mel_other_params():
    y = noise(2.0)
    got = LogMel(sr=16000, n_fft=512, hop_length=256, n_mels=96, top_db=None)(torch.from_numpy(y)).numpy()[0]
    ref = log_mel(y, sr=16000, n_fft=512, hop_length=256, n_mels=96, top_db=None)
    assert np.max(np.abs(got - ref)) < LOG_MEL_TOLERANCE_DB
