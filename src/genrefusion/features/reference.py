"""The GTZAN and musicnn features computed the plain way, with librosa and matplotlib, as they were before
:mod:`genrefusion.features.dsp`: the reference that the tests hold dsp to, and the speed suite's
naive baseline (musicnn as its own extractor runs it: librosa's mel, every patch, one batch, one layer per
feature). Nothing in prediction or training calls these."""

from __future__ import annotations

import numpy as np

from genrefusion.features.images import _pixel_map, lookup_index, render_specshow
from genrefusion.features.summary import spectral_shape, zero_crossing_rate


def librosa_summary_gtzan(y: np.ndarray, *, sr: int, hpss: bool = True) -> np.ndarray:
    """``summary_gtzan`` with librosa's functions (each computing its own STFT), ``(57,)`` or ``(53,)``."""
    import librosa

    S = np.abs(librosa.stft(y))
    power = S**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    frames = [librosa.feature.chroma_stft(S=power, sr=sr), librosa.feature.rms(y=y), *spectral_shape(S, sr=sr),
              zero_crossing_rate(y)]
    if hpss:
        frames += list(librosa.effects.hpss(y))
    out = [v for f in frames for v in (np.mean(f), np.var(f))]
    onsets = librosa.onset.onset_strength(S=mel_db, sr=sr, aggregate=np.median)
    out.append(float(np.atleast_1d(librosa.beat.beat_track(onset_envelope=onsets, sr=sr)[0])[0]))
    out += [v for row in librosa.feature.mfcc(S=mel_db, n_mfcc=20) for v in (np.mean(row), np.var(row))]
    return np.asarray(out, np.float32)


def librosa_mel_image(y: np.ndarray, *, sr: int, n_mels: int = 128, renderer: str = "indexed") -> np.ndarray:
    """``mel_image`` with librosa's mel spectrogram and matplotlib's colour normalisation (or, with
    ``renderer="matplotlib"``, its figure), ``(385, 387)`` uint8."""
    import librosa
    from matplotlib.colors import Normalize

    S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=n_mels), ref=np.max)
    if renderer == "matplotlib":
        return render_specshow(S, sr=sr)
    idx = lookup_index(np.asarray(Normalize()(S)))
    rows, cols = _pixel_map(*S.shape)
    return idx[np.ix_(rows, cols)]


def _librosa_musicnn(y: np.ndarray, sr: int, model: str, layer: str) -> np.ndarray:
    """One musicnn layer of every 3 s patch, from librosa's mel spectrogram, all patches in one batch."""
    import librosa

    from genrefusion.pretrained import musicnn as mn

    x = librosa.resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=mn.SR)
    mel = librosa.feature.melspectrogram(y=x, sr=mn.SR, hop_length=mn.HOP, n_fft=mn.N_FFT, n_mels=mn.N_MELS).T
    patches = mn.cut_patches(np.log10(10000.0 * mel + 1.0))
    return mn.run_patches(model, patches, batch=len(patches), layers=(layer,))[layer]


def librosa_musicnn_tags(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", patches: int = 0) -> np.ndarray:
    """``musicnn_tags`` the plain way (every patch, whatever ``patches`` says)."""
    return _librosa_musicnn(y, sr, model, "tags").mean(0).astype(np.float32)


def librosa_musicnn_embedding(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", pool: str = "mean",
                              layer: str = "penultimate", patches: int = 0) -> np.ndarray:
    """``musicnn_embedding`` the plain way (every patch, whatever ``patches`` says; its own network pass)."""
    from genrefusion.features.musicnn import POOLS

    return POOLS[pool](_librosa_musicnn(y, sr, model, layer)).astype(np.float32)


#: feature name -> its plain librosa computation
REFERENCES = {"summary_gtzan": librosa_summary_gtzan, "mel_image": librosa_mel_image,
              "musicnn_tags": librosa_musicnn_tags, "musicnn_embedding": librosa_musicnn_embedding}
