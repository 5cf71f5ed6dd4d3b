"""Batched log-mel in torch, for training-time feature computation and augmentation.

``LogMel`` agrees with :func:`genrefusion.features.spectral.log_mel` (librosa) to within
``LOG_MEL_TOLERANCE_DB`` on every cell (checked by ``tests/features/test_torch_spectral.py``):
same Hann window, centred zero-padded frames, Slaney mel filters, dB re each clip's maximum.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

#: Largest |torch - librosa| allowed in dB on any cell (float32 FFTs differ in their last bits).
LOG_MEL_TOLERANCE_DB = 0.05


class LogMel(torch.nn.Module):
    """``(batch, n_samples)`` float waveforms -> ``(batch, n_mels, 1 + n_samples // hop_length)`` dB."""

    def __init__(self, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                 fmin: float = 0.0, fmax: float | None = None, top_db: float | None = 80.0):
        super().__init__()
        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, top_db
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 1:
            y = y[None]
        spec = torch.stft(y, n_fft=self.n_fft, hop_length=self.hop_length, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)
        amin = 1e-10
        db = 10.0 * torch.log10(mel.clamp_min(amin))
        ref = mel.amax(dim=(-2, -1), keepdim=True).clamp_min(amin)
        db = db - 10.0 * torch.log10(ref)
        if self.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - self.top_db)
        return db
