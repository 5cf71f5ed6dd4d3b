"""The one-pass spectral-shape and zero-crossing helpers of summary_gtzan equal librosa's functions."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genrefusion.features.spectral import magnitude_stft
from genrefusion.features.summary import spectral_shape, summary_gtzan, summary_gtzan_names, zero_crossing_rate
from tests.conftest import SR, chirp, clicks, noise, tone


@pytest.mark.parametrize("make", [lambda: chirp(), lambda: noise(seconds=3.0), lambda: clicks(120, seconds=3.0),
                                  lambda: np.concatenate([np.zeros(5000, np.float32), tone(440, 2.0)])])
def test_helpers_equal_librosa(make):
    y = make()
    S = magnitude_stft(y)
    centroid, bandwidth, rolloff = spectral_shape(S, sr=SR)
    np.testing.assert_allclose(centroid, librosa.feature.spectral_centroid(S=S, sr=SR)[0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(bandwidth, librosa.feature.spectral_bandwidth(S=S, sr=SR)[0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(rolloff, librosa.feature.spectral_rolloff(S=S, sr=SR)[0])
    np.testing.assert_array_equal(zero_crossing_rate(y), librosa.feature.zero_crossing_rate(y)[0])


def test_summary_without_hpss_is_the_full_summary_less_four_columns():
    y = chirp(seconds=4.0) + noise(seconds=4.0)
    full, fast = summary_gtzan(y, sr=SR), summary_gtzan(y, sr=SR, hpss=False)
    names, fast_names = summary_gtzan_names(), summary_gtzan_names(hpss=False)
    assert fast.shape == (53,) and len(fast_names) == 53
    np.testing.assert_allclose(fast, full[[names.index(n) for n in fast_names]], rtol=1e-6)


def test_gtzan_table_row_drops_the_same_four_columns():
    from genrefusion.errors import FeatureError
    from genrefusion.features.summary import gtzan_table_row

    row = np.arange(57, dtype=np.float64)
    kept = gtzan_table_row(row, hpss=False)
    names = summary_gtzan_names()
    assert [names[int(i)] for i in kept] == summary_gtzan_names(hpss=False)
    np.testing.assert_array_equal(gtzan_table_row(row), row)
    with pytest.raises(FeatureError, match="57 columns"):
        gtzan_table_row(row[:10])
