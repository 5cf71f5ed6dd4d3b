"""What the musicnn checkpoints expect and name: input rate, spectrogram, patch length, tags and
models. Importable without torch (the features that only need these numbers load fast)."""

from __future__ import annotations

import numpy as np

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s
PATCH_SECONDS = PATCH_FRAMES * HOP / SR  # 2.992 s: one patch's stretch of the signal
BN_EPS = 1e-3

MTT_LABELS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
              'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals',
              'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft',
              'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal',
              'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']
MSD_LABELS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
              'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul',
              'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies',
              'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop', '70s',
              'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal',
              'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']

#: model name -> (checkpoint folder in the musicnn package, architecture, tag names)
MODELS = {
    "msd-musicnn": ("MSD_musicnn", "musicnn", MSD_LABELS),
    "mtt-musicnn": ("MTT_musicnn", "musicnn", MTT_LABELS),
    "msd-vgg": ("MSD_vgg", "vgg", MSD_LABELS),
    "mtt-vgg": ("MTT_vgg", "vgg", MTT_LABELS),
}

#: architecture -> the layers that give each patch one vector (``run_patches``' ``layers``): ``penultimate``
#: (200 musicnn, 256 vgg); for musicnn also ``max_pool`` / ``mean_pool`` (753 each: the front and mid end's
#: feature maps pooled over the patch's time) and ``max_mean_pool`` (both, 1506: what the back end reads).
VECTOR_LAYERS = {
    "musicnn": ("tags", "penultimate", "max_pool", "mean_pool", "max_mean_pool"),
    "vgg": ("tags", "penultimate"),
}


def patch_indices(n: int, k: int) -> np.ndarray:
    """Which of ``n`` patches to read when reading ``k``: the middle patch of each of ``k`` equal stretches of
    the signal (``k`` = 0 or ``k >= n``: all of them, in order)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.floor((np.arange(k) + 0.5) * n / k).astype(int))
