"""librosa's spectral building blocks in plain numpy, and one STFT shared by every feature of a clip.

Why not librosa itself: importing it and JIT-compiling its numba kernels costs ~5 s when a process
first predicts (most of ``genrefusion predict song.mp3``), and its functions each recompute the
STFT. These functions give librosa 0.11's results with its default parameters (checked against
librosa by ``tests/features/test_dsp.py``, to float32 rounding) and share their work:

    with shared_spectra(y):        # inside: one STFT and one mel spectrogram of y, whoever asks
        image = mel_image(y, sr=sr)
        row = summary_gtzan(y, sr=sr)

Shapes follow librosa's centred framing: ``n_frames = 1 + n_samples // hop_length``.

The FFTs of many frames (the STFT, the tempogram) go through :func:`rfft_rows`, which uses ducc0
where it is installed (``pip install "genrefusion[fast]"``: ~1.8x faster than numpy on 2048-point
frames, the same values to ~1e-14) and numpy otherwise; ``GENREFUSION_FFT=numpy`` or
:func:`fft_backend` picks one.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np

from genrefusion.errors import FeatureError

# ---- real FFTs of many rows -------------------------------------------------------------------------


def _numpy_rfft_rows(x: np.ndarray) -> np.ndarray:
    return np.fft.rfft(x, axis=1)


def _ducc0_rfft_rows(x: np.ndarray) -> np.ndarray:
    try:
        import ducc0  # GPL-2.0-or-later, hence an optional extra; imports in ~20 ms (pyFFTW's ~0.4 s pulls scipy)
    except ImportError as err:
        raise FeatureError('the ducc0 FFT backend is not installed: pip install "genrefusion[fast]"') from err
    return ducc0.fft.r2c(x, axes=(1,))


#: name -> ``fn(x)``: the real FFT of each row of a float64 ``(rows, n)`` array, ``(rows, n // 2 + 1)`` complex128
FFT_BACKENDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"numpy": _numpy_rfft_rows, "ducc0": _ducc0_rfft_rows}
_FFT_CHOICE: ContextVar[str | None] = ContextVar("genrefusion_fft_backend", default=None)


@lru_cache(maxsize=1)
def default_fft_backend() -> str:
    """``$GENREFUSION_FFT`` if set, else ducc0 where it is installed, else numpy."""
    name = os.environ.get("GENREFUSION_FFT") or ("ducc0" if importlib.util.find_spec("ducc0") else "numpy")
    if name not in FFT_BACKENDS:
        raise FeatureError(f"GENREFUSION_FFT={name!r} is not an FFT backend; choose one of {sorted(FFT_BACKENDS)}")
    return name


def fft_backend_name() -> str:
    """The FFT backend that :func:`rfft_rows` uses here and now."""
    return _FFT_CHOICE.get() or default_fft_backend()


@contextmanager
def fft_backend(name: str) -> Iterator[None]:
    """Within the block (this thread or task only), :func:`rfft_rows` uses backend ``name``."""
    if name not in FFT_BACKENDS:
        raise FeatureError(f"unknown FFT backend {name!r}; choose one of {sorted(FFT_BACKENDS)}")
    token = _FFT_CHOICE.set(name)
    try:
        yield
    finally:
        _FFT_CHOICE.reset(token)


def rfft_rows(x: np.ndarray) -> np.ndarray:
    """``np.fft.rfft(x, axis=1)`` of a float64 ``(rows, n)`` array: ``(rows, n // 2 + 1)`` complex128."""
    return FFT_BACKENDS[fft_backend_name()](x)


# ---- one STFT per clip ------------------------------------------------------------------------------

_SHARED: ContextVar[tuple[np.ndarray, dict] | None] = ContextVar("genrefusion_shared_spectra", default=None)


@contextmanager
def shared_spectra(y: np.ndarray) -> Iterator[None]:
    """Within the block, spectrograms of this very array ``y`` are computed once and reused (returned
    read-only). Features of other arrays are computed as usual. A block inside a block for the same
    ``y`` shares the outer one's spectrograms (a feature opens its own, for callers that did not)."""
    current = _SHARED.get()
    if current is not None and current[0] is y:
        yield
        return
    token = _SHARED.set((y, {}))
    try:
        yield
    finally:
        _SHARED.reset(token)


def _shared(y: np.ndarray, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
    shared = _SHARED.get()
    if shared is None or shared[0] is not y:
        return compute()
    cache = shared[1]
    if key not in cache:
        cache[key] = compute()
        for a in cache[key].values() if isinstance(cache[key], dict) else (cache[key],):
            a.flags.writeable = False  # several features read it
    return cache[key]


def shared(y: np.ndarray, key: tuple, compute: Callable[[], np.ndarray | dict[str, np.ndarray]]):
    """``compute()`` (an array, or a dict of arrays), done once per ``key`` for this very ``y`` inside a
    :func:`shared_spectra` block (read-only), and every time outside one. For work that several features of
    one signal share beyond its spectrograms, e.g. one pass of a pretrained network whose layers they read."""
    return _shared(y, key, compute)


_STFT_CHUNK = 64  # frames per FFT call
_TEMPO_CHUNK = 128  # onset-envelope frames per FFT call


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic, float64


def stft_magnitude(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """``|STFT|`` ``(1 + n_fft // 2, n_frames)`` float32: periodic Hann window, frames centred with zero padding."""
    return _shared(y, ("stft", n_fft, hop_length), lambda: _stft_magnitude(y, n_fft, hop_length))


def _stft_magnitude(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = _hann(n_fft)
    out = np.empty((1 + n_fft // 2, frames.shape[0]), np.float32)
    windowed = np.empty((_STFT_CHUNK, n_fft))
    # in chunks of frames that stay in cache: 1.6x faster than whole-array steps, same bits
    for start in range(0, frames.shape[0], _STFT_CHUNK):
        chunk = frames[start:start + _STFT_CHUNK]
        buf = windowed[: len(chunk)]
        np.multiply(chunk, window, out=buf)
        # float64 FFT, then complex64, as librosa: a float32 FFT's rounding floor (~140 dB down) would
        # move what such faint bins decide, e.g. the bandwidth of a pure tone, by up to 2 %
        out[:, start:start + len(chunk)] = np.abs(rfft_rows(buf).astype(np.complex64)).T
    return out


def power_spectrogram(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """``|STFT|**2``, ``(1 + n_fft // 2, n_frames)`` float32."""
    return _shared(y, ("power", n_fft, hop_length), lambda: stft_magnitude(y, n_fft=n_fft, hop_length=hop_length) ** 2)


def mel_power(y: np.ndarray, *, sr: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
              fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Mel power spectrogram ``(n_mels, n_frames)`` float32 (Slaney mel scale and norm, ``fmin`` to ``fmax``
    Hz, default sr/2)."""
    return _shared(y, ("mel", sr, n_fft, hop_length, n_mels, fmin, fmax),
                   lambda: apply_filters(mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax),
                                         power_spectrogram(y, n_fft=n_fft, hop_length=hop_length),
                                         spans=_mel_spans(sr, n_fft, n_mels, fmin, fmax)))


def apply_filters(weights: np.ndarray, S: np.ndarray, *, spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    """``weights @ S`` ``(n_filters, n_frames)`` for a filter bank ``(n_filters, n_bins)`` whose rows are
    zero outside one run of bins, ``spans[row] = (first, past_last)`` (e.g. mel triangles): each row
    multiplies only its run, ~3x faster than the dense product."""
    spans = row_spans(weights) if spans is None else spans
    out = np.empty((weights.shape[0], S.shape[1]), np.result_type(weights, S))
    for row, (lo, hi) in enumerate(spans):
        np.dot(weights[row, lo:hi], S[lo:hi], out=out[row])
    return out


def row_spans(weights: np.ndarray) -> list[tuple[int, int]]:
    """Each row's first and past-the-last non-zero column; ``(0, 0)`` for an all-zero row."""
    spans = []
    for row in weights:
        nz = np.flatnonzero(row)
        spans.append((int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0))
    return spans


@lru_cache(maxsize=16)
def _mel_spans(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> list[tuple[int, int]]:
    return row_spans(mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))


# ---- filter banks -----------------------------------------------------------------------------------

def fft_frequencies(*, sr: int, n_fft: int) -> np.ndarray:
    """Centre frequency (Hz) of each STFT bin, ``(1 + n_fft // 2,)``."""
    return np.fft.rfftfreq(n_fft, 1.0 / sr)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=16)
def mel_filters(*, sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``(n_mels, 1 + n_fft // 2)`` float32 (read-only)."""
    fmax = sr / 2 if fmax is None else fmax
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    ramps = mel_f[:, None] - fft_frequencies(sr=sr, n_fft=n_fft)[None, :]
    fdiff = np.diff(mel_f)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None].astype(np.float32)
    weights.flags.writeable = False
    return weights


def hz_to_octs(hz: np.ndarray, *, tuning: float = 0.0, bins_per_octave: int = 12) -> np.ndarray:
    """Octaves above C0 (A440 / 16), for a tuning offset in fractions of a bin."""
    return np.log2(np.asarray(hz) / (440.0 * 2.0 ** (tuning / bins_per_octave) / 16))


@lru_cache(maxsize=64)
def chroma_filters(*, sr: int, n_fft: int, tuning: float = 0.0, n_chroma: int = 12) -> np.ndarray:
    """Ellis's STFT-to-chroma Gaussian weights ``(n_chroma, 1 + n_fft // 2)`` float32, starting at C
    (librosa's defaults: each bin's column of unit L2 norm, weighted around 5 octaves above C0, 2 octaves wide)."""
    frqbins = n_chroma * hz_to_octs(np.linspace(0, sr, n_fft, endpoint=False)[1:], tuning=tuning,
                                    bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidth = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidth, (n_chroma, 1))) ** 2)
    norm = np.sqrt(np.sum(wts**2, axis=0, keepdims=True))
    wts = wts / np.where(norm < np.finfo(wts.dtype).tiny, 1.0, norm)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2.0) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    out = np.ascontiguousarray(wts[:, : 1 + n_fft // 2], dtype=np.float32)
    out.flags.writeable = False
    return out


# ---- frame features ---------------------------------------------------------------------------------

def power_to_db(S: np.ndarray, *, ref: float | None = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(S / ref)``, floored at ``top_db`` below the peak; ``ref=None``: the array's maximum."""
    ref_value = np.max(S) if ref is None else ref
    db = 10.0 * np.log10(np.maximum(amin, S))
    db -= 10.0 * np.log10(np.maximum(amin, ref_value))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def normalize_max(S: np.ndarray) -> np.ndarray:
    """Each column divided by its largest magnitude; columns below the dtype's ``tiny`` left as they are."""
    length = np.max(np.abs(S), axis=0, keepdims=True).astype(np.float64)
    length[length < np.finfo(S.dtype).tiny] = 1.0
    return (S / length).astype(S.dtype)


def estimate_tuning(power: np.ndarray, *, sr: int, resolution: float = 0.01, bins_per_octave: int = 12,
                    fmin: float = 150.0, fmax: float = 4000.0, threshold: float = 0.1) -> float:
    """Deviation of the clip's tuning from A440 in fractions of a bin: a histogram of the residuals of
    the strong spectral peaks (librosa's ``piptrack`` + ``pitch_tuning``), from a spectrogram
    ``(1 + n_fft // 2, n_frames)``. Only the bins between ``fmin`` and ``fmax`` (and their neighbours) are read."""
    n_fft = 2 * (power.shape[0] - 1)
    freqs = fft_frequencies(sr=sr, n_fft=n_fft)
    band = np.flatnonzero((max(fmin, 0.0) <= freqs) & (freqs < min(fmax, sr / 2)))
    if band.size == 0:
        return 0.0
    lo, hi = max(band[0] - 1, 0), min(band[-1] + 2, power.shape[0])  # one neighbour each side
    x = power[lo:hi]
    peaks_of = np.where(x > threshold * power.max(axis=0, keepdims=True), x, 0)
    # a peak: above the bin below and not below the bin above; the stencil leaves the first row False
    is_max = np.zeros(x.shape, bool)
    is_max[1:-1] = (peaks_of[1:-1] > peaks_of[:-2]) & (peaks_of[1:-1] >= peaks_of[2:])
    if hi == power.shape[0]:
        is_max[-1] = peaks_of[-1] > peaks_of[-2]
    rows = np.arange(lo, hi)
    in_band = (rows >= band[0]) & (rows <= band[-1])
    r, t = np.nonzero(is_max & in_band[:, None])
    if r.size == 0:
        return 0.0
    below, here, above = x[np.maximum(r - 1, 0), t], x[r, t], x[np.minimum(r + 1, len(x) - 1), t]
    # librosa's parabolic-interpolation kernel: float32 sums, then float64 (its integer literals promote)
    a = (above + below).astype(np.float64) - 2 * here.astype(np.float64)
    b = (above - below).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(np.float32)
    edge = (rows[r] == 0) | (rows[r] == power.shape[0] - 1)
    shift[edge] = 0
    gradient = np.where(edge, np.float32(0), (above - below) / np.float32(2))  # np.gradient inside the band
    pitch = ((rows[r] + shift) * float(sr) / n_fft).astype(np.float32)
    mag = here + np.float32(0.5) * gradient * shift
    positive = pitch > 0
    if not positive.any():
        return 0.0
    strong = pitch[(mag >= np.median(mag[positive])) & positive]
    residual = np.mod(bins_per_octave * hz_to_octs(strong), 1.0)
    residual[residual >= 0.5] -= 1.0
    counts, edges = np.histogram(residual, np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1))
    return float(edges[np.argmax(counts)])


def chroma_stft(power: np.ndarray, *, sr: int, n_chroma: int = 12) -> np.ndarray:
    """Chromagram ``(n_chroma, n_frames)`` float32 of a power spectrogram, tuning estimated from it,
    each frame max-normalised."""
    n_fft = 2 * (power.shape[0] - 1)
    tuning = estimate_tuning(power, sr=sr, bins_per_octave=n_chroma)
    return normalize_max(chroma_filters(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma) @ power)


def rms(y: np.ndarray, *, frame_length: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Root-mean-square energy of centred, zero-padded frames, ``(n_frames,)``."""
    squared = np.pad(np.asarray(y, dtype=np.float32), frame_length // 2).astype(np.float64) ** 2
    n_frames = 1 + (squared.size - frame_length) // hop_length
    if frame_length % hop_length == 0:  # frames are runs of whole hops: sum each hop once
        k = frame_length // hop_length
        hops = squared[: (n_frames + k - 1) * hop_length].reshape(-1, hop_length).sum(axis=1)
        energy = np.lib.stride_tricks.sliding_window_view(hops, k).sum(axis=1)
    else:
        cumulative = np.concatenate([[0.0], np.cumsum(squared)])
        starts = np.arange(n_frames) * hop_length
        energy = cumulative[starts + frame_length] - cumulative[starts]
    return np.sqrt(np.maximum(energy, 0) / frame_length).astype(np.float32)


def onset_strength(mel_db: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Spectral flux onset envelope ``(n_frames,)``: the median over mel bands of each band's rise
    since the previous frame, delayed to centred frames (librosa's ``aggregate=np.median``)."""
    flux = np.median(np.maximum(0.0, mel_db[:, 1:] - mel_db[:, :-1]), axis=0)
    return np.pad(flux, (1 + n_fft // (2 * hop_length), 0))[: mel_db.shape[1]]


def tempo(onset_env: np.ndarray, *, sr: int, hop_length: int = 512, start_bpm: float = 120.0, std_bpm: float = 1.0,
          ac_size: float = 8.0, max_tempo: float = 320.0) -> float:
    """Global tempo (BPM): the peak of the mean local autocorrelation (tempogram) of the onset
    envelope under a log-normal prior around ``start_bpm``; 0 for an envelope with no onset."""
    if not np.any(onset_env):
        return 0.0
    win = int(ac_size * sr) // hop_length
    n = onset_env.size
    padded = np.pad(onset_env, win // 2, mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[:n]
    window = _hann(win)
    n_pad = _next_smooth(2 * win - 1)
    # Each frame's autocorrelation is scaled by its peak, the lag-0 value (its energy); their mean
    # is linear in the power spectra, so one inverse FFT of their weighted sum replaces one per frame.
    # In chunks of frames: whole-track arrays (~15 MB) cost more in fresh pages than in arithmetic.
    weighted = np.zeros(n_pad // 2 + 1)
    padded_chunk = np.zeros((_TEMPO_CHUNK, n_pad))  # each row: a windowed frame, then zeros to n_pad
    for start in range(0, n, _TEMPO_CHUNK):
        rows = padded_chunk[: min(_TEMPO_CHUNK, n - start)]
        chunk = np.multiply(frames[start:start + len(rows)], window, out=rows[:, :win])
        power = np.abs(rfft_rows(rows)) ** 2  # 10x faster than real**2 + imag**2 (strided)
        energy = np.einsum("ij,ij->i", chunk, chunk)
        weight = np.divide(1.0, energy, out=np.zeros_like(energy), where=energy >= np.finfo(energy.dtype).tiny)
        weighted += weight @ power
    mean_ac = np.fft.irfft(weighted, n=n_pad)[:win] / n
    with np.errstate(divide="ignore"):
        bpms = np.concatenate([[np.inf], 60.0 * sr / (hop_length * np.arange(1.0, win))])
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    logprior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    return float(bpms[np.argmax(np.log1p(1e6 * mean_ac) + logprior)])


def _next_smooth(n: int) -> int:
    """The smallest 2-3-5-smooth integer >= n (scipy's ``next_fast_len`` for real FFTs, as librosa pads)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=8)
def _dct_basis(n_mfcc: int, n_mels: int) -> np.ndarray:
    k, n = np.arange(n_mfcc)[:, None], np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc(mel_db: np.ndarray, *, n_mfcc: int = 20) -> np.ndarray:
    """MFCCs ``(n_mfcc, n_frames)``: the first rows of the orthonormal DCT-II of a log-mel
    spectrogram ``(n_mels, n_frames)`` (a matrix product: only ``n_mfcc`` of ``n_mels`` rows are kept)."""
    return (_dct_basis(n_mfcc, mel_db.shape[0]) @ mel_db).astype(mel_db.dtype)
