"""Frame-level spectral features: pure functions of a mono signal; the mel family (log_mel, mfcc) on the one
mel of :mod:`genrefusion.features.dsp`, the others on librosa.

Every function takes ``y`` (``(n_samples,)`` float32) and keyword-only parameters, returns a
float32 array, and is deterministic. Frame counts follow librosa's centred framing:
``n_frames = 1 + n_samples // hop_length``. dB values are relative to the clip's maximum
(``ref=np.max``) unless stated.
"""

from __future__ import annotations

import librosa
import numpy as np

from genrefusion.features import dsp
from genrefusion.features.registry import register_feature


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def magnitude_stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """``|STFT|``, ``(1 + n_fft // 2, n_frames)``, Hann window, centred with zero padding (as librosa's);
    computed once per clip inside :func:`~genrefusion.features.dsp.shared_spectra`."""
    return dsp.stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)


@register_feature("log_stft", input="audio", shape="(1 + n_fft // 2, n_frames)")
def log_stft(y: np.ndarray, *, sr: int, n_fft: int = 1024, hop_length: int = 512, top_db: float = 80.0) -> np.ndarray:
    """Log-magnitude STFT in dB re the clip maximum, floored at -top_db."""
    return _f32(librosa.amplitude_to_db(magnitude_stft(y, n_fft=n_fft, hop_length=hop_length), ref=np.max, top_db=top_db))


# version 2: the dsp core's mel (float32, as every other mel feature), where version 1 was librosa's (float64)
@register_feature("log_mel", input="audio", shape="(n_mels, n_frames)", default=True, version=2)
def log_mel(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
            fmin: float = 0.0, fmax: float | None = None, top_db: float = 80.0) -> np.ndarray:
    """Log-mel power spectrogram in dB re the clip maximum (the GTZAN image recipe's matrix)."""
    S = dsp.mel_power(y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return _f32(dsp.power_to_db(S, ref=None, top_db=top_db))


@register_feature("mfcc", input="audio", shape="(n_mfcc * (1 + deltas), n_frames)", default=True, version=2)
def mfcc(y: np.ndarray, *, sr: int, n_mfcc: int = 20, deltas: int = 2, n_fft: int = 2048,
         hop_length: int = 512, n_mels: int = 128) -> np.ndarray:
    """MFCCs (librosa defaults: dB mel, DCT-II ortho) stacked with their first ``deltas`` derivatives."""
    if deltas not in (0, 1, 2):
        from genrefusion.errors import FeatureError

        raise FeatureError(f"mfcc: deltas must be 0, 1 or 2, got {deltas}")
    mel_db = dsp.power_to_db(dsp.mel_power(y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels))
    m = dsp.mfcc(mel_db, n_mfcc=n_mfcc)
    parts = [m]
    if deltas and m.shape[1] >= 3:
        width = min(9, m.shape[1] - (1 - m.shape[1] % 2))  # librosa needs an odd width <= n_frames
        parts += [librosa.feature.delta(m, order=k, width=max(width, 3)) for k in range(1, deltas + 1)]
    elif deltas:
        parts += [np.zeros_like(m)] * deltas
    return _f32(np.concatenate(parts, axis=0))


@register_feature("chroma", input="audio", shape="(12, n_frames)")
def chroma(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """STFT chroma, each frame normalised to max 1."""
    return _f32(librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length))


@register_feature("spectral_contrast", input="audio", shape="(n_bands + 1, n_frames)")
def spectral_contrast(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_bands: int = 6) -> np.ndarray:
    """Octave-band spectral contrast in dB."""
    return _f32(librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_bands=n_bands))


@register_feature("spectral_centroid", input="audio", shape="(1, n_frames)")
def spectral_centroid(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Spectral centroid in Hz."""
    return _f32(librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length))


@register_feature("spectral_bandwidth", input="audio", shape="(1, n_frames)")
def spectral_bandwidth(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Second-order spectral bandwidth in Hz."""
    return _f32(librosa.feature.spectral_bandwidth(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length))


@register_feature("spectral_rolloff", input="audio", shape="(1, n_frames)")
def spectral_rolloff(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, roll_percent: float = 0.85) -> np.ndarray:
    """Roll-off frequency in Hz below which ``roll_percent`` of the energy lies."""
    return _f32(librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, roll_percent=roll_percent))


@register_feature("zcr", input="audio", shape="(1, n_frames)")
def zcr(y: np.ndarray, *, sr: int, frame_length: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Zero-crossing rate (crossings per sample) per frame."""
    return _f32(librosa.feature.zero_crossing_rate(y, frame_length=frame_length, hop_length=hop_length))


@register_feature("rms", input="audio", shape="(1, n_frames)")
def rms(y: np.ndarray, *, sr: int, frame_length: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Root-mean-square amplitude per frame (linear)."""
    return _f32(librosa.feature.rms(y=y, frame_length=frame_length, hop_length=hop_length))


@register_feature("hpss", input="audio", shape="(2, n_samples)", layout="waveform", rate=lambda params, sr: sr)
def hpss(y: np.ndarray, *, sr: int, kernel_size: int = 31, margin: float = 1.0) -> np.ndarray:
    """Harmonic (row 0) and percussive (row 1) waveforms by median-filtering HPSS (slow: ~2 s per 30 s)."""
    h, p = librosa.effects.hpss(y, kernel_size=kernel_size, margin=margin)
    return _f32(np.stack([h, p]))


@register_feature("tempo", input="audio", shape="(1,)", layout="vector")
def tempo(y: np.ndarray, *, sr: int, hop_length: int = 512, start_bpm: float = 120.0) -> np.ndarray:
    """Global tempo estimate in beats per minute."""
    return _f32(librosa.feature.tempo(y=y, sr=sr, hop_length=hop_length, start_bpm=start_bpm).reshape(1))


@register_feature("waveform", input="audio", shape="(1, n_samples)", layout="waveform",
                  rate=lambda params, sr: params["target_sr"])
def waveform(y: np.ndarray, *, sr: int, target_sr: int = 16000) -> np.ndarray:
    """The signal itself, resampled to ``target_sr`` (soxr), for sample-level models."""
    from genrefusion.audio import resample

    return _f32(resample(y, orig_sr=sr, target_sr=target_sr)[None, :])
