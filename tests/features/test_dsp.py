"""genrefusion.features.dsp gives librosa 0.11's results (librosa is the reference here), and the
features built on it share one STFT per clip."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from matplotlib.colors import Normalize

from genrefusion.errors import FeatureError
from genrefusion.features import dsp
from genrefusion.features.images import N_COLOURS, colour_index, mel_image
from genrefusion.features.reference import librosa_mel_image, librosa_summary_gtzan
from genrefusion.features.summary import summary_gtzan
from tests.conftest import SR, chirp, clicks, noise, tone


def _detuned(cents: float) -> np.ndarray:
    """Three octaves of an A, all ``cents`` away from equal temperament at A440, over faint noise."""
    f = 440.0 * 2 ** (cents / 1200)
    return (tone(f, 3.0) + 0.5 * tone(2 * f, 3.0) + 0.3 * tone(4 * f, 3.0) + 0.01 * noise(seconds=3.0)).astype(np.float32)


SIGNALS = {
    "chirp": lambda: chirp(),
    "noise": lambda: noise(seconds=3.0),
    "clicks": lambda: clicks(120, seconds=6.0),
    "detuned chord": lambda: _detuned(30.0),
    "silence then tone": lambda: np.concatenate([np.zeros(5000, np.float32), tone(440, 2.0)]),
}


@pytest.fixture(params=sorted(SIGNALS), scope="module")
def y(request) -> np.ndarray:
    return SIGNALS[request.param]()


def test_stft_and_mel_equal_librosa(y):
    ref = np.abs(librosa.stft(y))
    ours = dsp.stft_magnitude(y)
    assert ours.shape == ref.shape == (1025, 1 + y.size // 512) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-6 * ref.max())
    mel_ref = librosa.feature.melspectrogram(y=y, sr=SR)
    np.testing.assert_allclose(dsp.mel_power(y, sr=SR), mel_ref, atol=1e-5 * mel_ref.max())
    for ref_arg, ours_ref in ((1.0, 1.0), (np.max, None)):
        np.testing.assert_allclose(dsp.power_to_db(mel_ref, ref=ours_ref), librosa.power_to_db(mel_ref, ref=ref_arg),
                                   atol=1e-4)


def test_banded_filter_product_equals_the_dense_one():
    weights = dsp.mel_filters(sr=8000, n_fft=128, n_mels=128).copy()  # so many bands that some are empty
    assert not weights.any(axis=1).all()
    S = np.random.default_rng(0).random((weights.shape[1], 7)).astype(np.float32)
    np.testing.assert_allclose(dsp.apply_filters(weights, S), weights @ S, rtol=1e-5, atol=1e-7)
    assert dsp.row_spans(np.array([[0, 1, 2, 0], [0, 0, 0, 0]])) == [(1, 3), (0, 0)]


@pytest.mark.parametrize("sr, n_fft, n_mels", [(22050, 2048, 128), (16000, 512, 96), (44100, 1024, 40)])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels):
    np.testing.assert_allclose(dsp.mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels),
                               librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), atol=1e-7)


@pytest.mark.parametrize("tuning", [0.0, -0.18, 0.31])
def test_chroma_filters_equal_librosa(tuning):
    np.testing.assert_allclose(dsp.chroma_filters(sr=SR, n_fft=2048, tuning=tuning),
                               librosa.filters.chroma(sr=SR, n_fft=2048, tuning=tuning), atol=1e-7)


def test_tuning_chroma_rms_onsets_tempo_and_mfcc_equal_librosa(y):
    power = np.abs(librosa.stft(y)) ** 2
    assert dsp.estimate_tuning(power, sr=SR) == librosa.estimate_tuning(S=power, sr=SR, bins_per_octave=12)
    np.testing.assert_allclose(dsp.chroma_stft(power, sr=SR), librosa.feature.chroma_stft(S=power, sr=SR), atol=1e-6)
    np.testing.assert_allclose(dsp.rms(y), librosa.feature.rms(y=y)[0], atol=1e-7)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SR))
    onsets = librosa.onset.onset_strength(S=mel_db, sr=SR, aggregate=np.median)
    np.testing.assert_array_equal(dsp.onset_strength(mel_db), onsets)
    bpm, _ = librosa.beat.beat_track(onset_envelope=onsets, sr=SR)
    assert dsp.tempo(onsets, sr=SR) == pytest.approx(float(np.atleast_1d(bpm)[0]), rel=1e-12)
    np.testing.assert_allclose(dsp.mfcc(mel_db), librosa.feature.mfcc(S=mel_db, n_mfcc=20), atol=1e-4)


@pytest.mark.parametrize("frame_length, hop_length", [(2048, 512), (1000, 300), (512, 512)])
def test_rms_of_any_framing_equals_librosa(frame_length, hop_length):
    y = chirp(seconds=1.3) + noise(seconds=1.3)
    np.testing.assert_allclose(dsp.rms(y, frame_length=frame_length, hop_length=hop_length),
                               librosa.feature.rms(y=y, frame_length=frame_length, hop_length=hop_length)[0], atol=1e-7)


def test_next_smooth_length_is_scipys_next_fast_len():
    import scipy.fft

    assert all(dsp._next_smooth(n) == scipy.fft.next_fast_len(n, real=True) for n in range(1, 3000))


def test_a_detuned_chord_is_measured_as_detuned():
    power = dsp.stft_magnitude(_detuned(30.0)) ** 2
    assert dsp.estimate_tuning(power, sr=SR) == pytest.approx(0.30, abs=0.05)  # parabolic peaks: a small bias


def test_silence_has_no_tempo_and_no_tuning():
    silent = np.zeros(3 * SR, np.float32)
    assert dsp.tempo(np.zeros(200), sr=SR) == 0.0 == librosa.beat.beat_track(onset_envelope=np.zeros(200), sr=SR)[0]
    assert dsp.estimate_tuning(dsp.stft_magnitude(silent) ** 2, sr=SR) == 0.0


def test_gtzan_summary_and_image_equal_their_librosa_versions(y):
    with dsp.shared_spectra(y):
        ours, image = summary_gtzan(y, sr=SR, hpss=False), mel_image(y, sr=SR)
    np.testing.assert_allclose(ours, librosa_summary_gtzan(y, sr=SR, hpss=False), rtol=1e-4, atol=1e-6)
    ref = librosa_mel_image(y, sr=SR)
    differ = image != ref
    assert differ.mean() < 1e-3 and np.abs(image.astype(int) - ref)[differ].max(initial=0) <= 1  # float32 ties


def test_colour_index_is_matplotlibs_normalize():
    S = np.random.default_rng(0).normal(-40, 15, (64, 80)).astype(np.float32)
    expected = np.asarray(Normalize()(S)) * np.float32(N_COLOURS)
    expected = np.clip(np.where(expected == N_COLOURS, N_COLOURS - 1, expected), 0, N_COLOURS - 1).astype(np.uint8)
    np.testing.assert_array_equal(colour_index(S), expected)
    assert not colour_index(np.full((4, 4), -80.0, np.float32)).any()  # a flat image is all the lowest colour


def test_shared_spectra_computes_one_stft_per_clip_and_only_for_that_clip(monkeypatch):
    y, other = chirp(seconds=2.0), noise(seconds=2.0)
    calls = []
    real = dsp._stft_magnitude
    monkeypatch.setattr(dsp, "_stft_magnitude", lambda *a, **k: calls.append(1) or real(*a, **k))
    with dsp.shared_spectra(y):
        first = dsp.stft_magnitude(y)
        summary_gtzan(y, sr=SR, hpss=False)
        mel_image(y, sr=SR)
        assert dsp.stft_magnitude(y) is first and len(calls) == 1
        with pytest.raises(ValueError, match="read-only"):
            first[0, 0] = 1.0  # shared, so nobody may change it
        dsp.stft_magnitude(other)
        dsp.stft_magnitude(y.copy())  # an equal array is not the same clip
        assert len(calls) == 3
    dsp.stft_magnitude(y)
    assert len(calls) == 4  # outside the block nothing is kept
    summary_gtzan(y, sr=SR, hpss=False)
    assert len(calls) == 5  # called alone, a feature still computes its STFT once


def test_every_fft_backend_gives_numpys_features(y):
    pytest.importorskip("ducc0", reason="the ducc0 FFT backend needs the [fast] extra")
    got = {}
    for backend in dsp.FFT_BACKENDS:
        with dsp.fft_backend(backend):
            assert dsp.fft_backend_name() == backend
            got[backend] = (dsp.stft_magnitude(y), summary_gtzan(y, sr=SR, hpss=False), mel_image(y, sr=SR))
    (stft, row, image) = got.pop("numpy")
    for backend, (other_stft, other_row, other_image) in got.items():
        np.testing.assert_allclose(other_stft, stft, rtol=1e-6, atol=1e-7 * stft.max(), err_msg=backend)
        np.testing.assert_allclose(other_row, row, rtol=1e-5, atol=1e-6, err_msg=backend)  # tempo included, exactly
        assert np.abs(other_image.astype(int) - image).max() <= 1, backend  # a level, where dB round at an edge


def test_an_unknown_fft_backend_is_one_clear_error(monkeypatch):
    with pytest.raises(FeatureError, match="unknown FFT backend 'fftw'"):
        with dsp.fft_backend("fftw"):
            pass
    monkeypatch.setenv("GENREFUSION_FFT", "fftw")
    dsp.default_fft_backend.cache_clear()
    try:
        with pytest.raises(FeatureError, match="GENREFUSION_FFT='fftw'"):
            dsp.rfft_rows(np.zeros((1, 8)))
    finally:
        dsp.default_fft_backend.cache_clear()


@pytest.mark.parametrize("params", [{}, {"n_mels": 64, "fmin": 50.0, "fmax": 8000.0, "n_fft": 1024, "hop_length": 256}])
def test_the_registered_mel_features_call_the_dsp_core_and_equal_librosa(y, params):
    """log_mel, mfcc and summary_rich read the one mel of :mod:`dsp`; librosa stays the oracle."""
    from genrefusion.features.spectral import log_mel, mfcc

    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, **params), ref=np.max)
    np.testing.assert_allclose(log_mel(y, sr=SR, **params), ref, atol=2e-3)
    plain = {k: v for k, v in params.items() if k not in ("fmin", "fmax")}
    expected = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, **plain)
    np.testing.assert_allclose(mfcc(y, sr=SR, n_mfcc=13, deltas=0, **plain), expected, atol=2e-3)


def test_no_registered_feature_computes_a_mel_with_librosa():
    import inspect

    from genrefusion.features import images, musicnn, spectral, summary

    for module in (spectral, summary, images, musicnn):
        assert "librosa.feature.melspectrogram" not in inspect.getsource(module), module.__name__
        assert "librosa.feature.mfcc" not in inspect.getsource(module), module.__name__
