"""Seeded training-time augmentation of a batch of windows.

Every random draw comes from the generator the trainer passes in (derived from the run seed and
the epoch), so an augmented epoch is reproduced exactly, also after a resume.
"""

from __future__ import annotations

import numpy as np
import torch

from genrefusion.config import AugmentConfig

DB_FEATURES = ("log_mel", "log_stft")  # inputs in dB, to which a gain is an offset


def augment(x: dict[str, torch.Tensor], layouts: dict[str, str], features: dict[str, str], cfg: AugmentConfig,
            rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Gain (dB inputs), SpecAugment-style time/frequency masks (spectrograms and images)."""
    out = {}
    for name, t in x.items():
        t = t.clone()
        n = t.shape[0]
        if cfg.gain_db and features[name] in DB_FEATURES:
            t += torch.from_numpy(rng.uniform(-cfg.gain_db, cfg.gain_db, n).astype(np.float32)).view(-1, *[1] * (t.ndim - 1))
        if layouts[name] in ("frames", "image") and t.ndim == 4:
            fill = t.mean()
            for axis, count in ((3, cfg.time_masks), (2, cfg.freq_masks)):
                size = t.shape[axis]
                for _ in range(count):
                    widths = rng.integers(0, max(1, int(cfg.mask_fraction * size)) + 1, n)
                    starts = rng.integers(0, size, n)
                    for i in range(n):
                        sl = [i, slice(None), slice(None), slice(None)]
                        sl[axis] = slice(starts[i], starts[i] + widths[i])
                        t[tuple(sl)] = fill
        out[name] = t
    return out


def mixup(x: dict[str, torch.Tensor], alpha: float, rng: np.random.Generator):
    """Mix each example with a random partner: returns mixed inputs, the partner order and the weight."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(next(iter(x.values())).shape[0]))
    return {n: lam * t + (1 - lam) * t[perm] for n, t in x.items()}, perm, lam
