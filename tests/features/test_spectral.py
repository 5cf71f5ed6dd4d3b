"""Analytic checks on synthetic signals, and one contract for every registered feature."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genrefusion.features import FEATURES, get_feature
from genrefusion.features.spectral import log_mel, log_stft, mfcc, spectral_centroid, tempo
from genrefusion.features.summary import summary_gtzan_names, summary_rich_names
from tests.conftest import SR, chirp, clicks, noise, tone


def test_tone_lands_in_its_mel_band():
    for freq in (440.0, 1000.0, 3000.0):
        S = log_mel(tone(freq, 2.0), sr=SR)
        centres = librosa.mel_frequencies(n_mels=128 + 2, fmin=0, fmax=SR / 2)[1:-1]
        band = int(np.argmax(S[:, 10:-10].mean(axis=1)))
        assert abs(band - int(np.argmin(np.abs(centres - freq)))) <= 1, freq


def test_tone_lands_in_its_stft_bin():
    S = log_stft(tone(1000.0, 1.0), sr=SR, n_fft=1024)
    assert int(np.argmax(S[:, 5:-5].mean(axis=1))) == round(1000 * 1024 / SR)


def test_click_track_gives_its_tempo():
    for bpm in (100.0, 120.0, 140.0):
        assert tempo(clicks(bpm, 20.0), sr=SR)[0] == pytest.approx(bpm, rel=0.03)


def test_chirp_moves_up_across_bins():
    y = chirp(200, 8000, 3.0)
    peak_bins = np.argmax(log_stft(y, sr=SR)[:, 2:-2], axis=0)
    assert np.corrcoef(np.arange(peak_bins.size), peak_bins)[0, 1] > 0.99
    centroid = spectral_centroid(y, sr=SR)[0, 2:-2]
    assert centroid[-1] > 10 * centroid[0]


def test_mfcc_deltas_stack():
    y = noise(1.0)
    assert mfcc(y, sr=SR, deltas=0).shape[0] == 20
    assert mfcc(y, sr=SR, deltas=2, n_mfcc=13).shape[0] == 39


def test_summary_names_match_shapes():
    assert len(summary_gtzan_names()) == 57 and summary_gtzan_names()[0] == "chroma_stft_mean"
    assert len(summary_rich_names()) == 518


AUDIO_FEATURES = sorted(n for n, s in FEATURES.items() if s.input == "audio")
SLOW = {"summary_gtzan", "summary_rich", "hpss"}


@pytest.mark.parametrize("name", AUDIO_FEATURES)
def test_audio_feature_contract(name):
    """Every audio feature: keyword-only params, finite typed output, deterministic, frames from hop."""
    spec = get_feature(name)
    seconds = 3.0 if name not in SLOW else 1.5
    y = (tone(440, seconds) + noise(seconds)).astype(np.float32)
    a = spec.fn(y, sr=SR, **spec.params)
    b = spec.fn(y.copy(), sr=SR, **spec.params)
    assert a.dtype in (np.float32, np.uint8) and np.array_equal(a, b)
    assert np.all(np.isfinite(a.astype(np.float64)))
    if "n_frames" in spec.shape:  # centred frames at the feature's own rate (musicnn_mel resamples to 16 kHz first)
        hop = spec.params.get("hop_length", 512)
        samples = int(round(y.size / SR * spec.steps_per_second(spec.params, SR) * hop))
        assert a.shape[-1] == 1 + samples // hop
    assert spec.description and spec.shape


def test_unknown_feature_and_parameter_are_clear_errors():
    from genrefusion.errors import FeatureError

    with pytest.raises(FeatureError, match="unknown feature 'nope'"):
        get_feature("nope")
    with pytest.raises(FeatureError, match="has no parameter"):
        get_feature("mfcc").resolve({"n_mfc": 3})


def test_store_key_changes_with_params_and_source():
    spec = get_feature("mfcc")
    k = spec.key(spec.resolve(), {"sr": 22050})
    assert k == spec.key(spec.resolve(), {"sr": 22050})
    assert k != spec.key(spec.resolve({"n_mfcc": 13}), {"sr": 22050}) != spec.key(spec.resolve(), {"sr": 16000})
