"""musicnn features: pretrained embeddings and tag probabilities (see :mod:`genrefusion.pretrained.musicnn`).

They need the musicnn weights (``pip install --no-deps musicnn==0.1.0``); the network runs in
PyTorch. Each 3 s patch of a track gets its own features; a track's vector pools them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from genrefusion.errors import FeatureError
from genrefusion.features import dsp
from genrefusion.features.images import GTZAN_IMAGE_FRAMES, GTZAN_IMAGE_HOP, GTZAN_IMAGE_SR, mel_image, mel_image_to_db
from genrefusion.features.registry import register_feature
from genrefusion.pretrained import musicnn_spec as spec


def _mn():
    """The pretrained network module, imported on first use: it loads torch, which the other features
    (and a process that only predicts with them) do not need."""
    from genrefusion.pretrained import musicnn

    return musicnn


POOLS = {"mean": lambda a: a.mean(0), "max": lambda a: a.max(0),
         "meanmax": lambda a: np.concatenate([a.mean(0), a.max(0)])}


def _check(model: str, pool: str | None = None, layer: str | None = None) -> None:
    if model not in spec.MODELS:
        raise FeatureError(f"musicnn model must be one of {sorted(spec.MODELS)}, got {model!r}")
    if pool is not None and pool not in POOLS:
        raise FeatureError(f"musicnn pool must be one of {sorted(POOLS)}, got {pool!r}")
    layers = spec.VECTOR_LAYERS[spec.MODELS[model][1]]
    if layer is not None and layer not in layers:
        raise FeatureError(f"musicnn layer of {model} must be one of {list(layers)}, got {layer!r}")


#: the ``shape`` of the embedding features
EMBEDDING_SHAPE = ("(D,) or (2D,) for pool meanmax; D by layer: penultimate 200 musicnn, 256 vgg; "
                   "max_pool, mean_pool 753; max_mean_pool 1506; tags 50")


def _layers(model: str) -> tuple[str, ...]:
    return spec.VECTOR_LAYERS[spec.MODELS[model][1]]


def network_outputs(x: np.ndarray, key: tuple, model: str, patches: Callable[[], np.ndarray]) -> dict[str, np.ndarray]:
    """Every vector layer of ``model`` for each input patch ``(n_patches, D)``, from one forward pass per patch,
    shared by all the features of signal (or image) ``x`` inside its ``dsp.shared_spectra`` block: a model's
    tags, embeddings and pool layers then cost one pass. ``key``: what else decides the patches."""
    _check(model)
    return dsp.shared(x, ("musicnn", model, *key), lambda: _mn().run_patches(model, patches(), layers=_layers(model)))


def _audio_outputs(y: np.ndarray, sr: int, model: str, patches: int) -> dict[str, np.ndarray]:
    return network_outputs(y, ("audio", sr, patches), model, lambda: _mn().log_mel_patches(y, sr=sr, patches=patches))


def _pooled(outputs: dict[str, np.ndarray], *, pool: str, layer: str) -> np.ndarray:
    return np.ascontiguousarray(POOLS[pool](outputs[layer]), dtype=np.float32)


def _check_patches(patches: int) -> None:
    if not isinstance(patches, int) or isinstance(patches, bool) or patches < 0:
        raise FeatureError(f"musicnn patches must be a whole number >= 0 (0: every 3 s patch), got {patches!r}")


@register_feature("musicnn_embedding", input="audio", shape=EMBEDDING_SHAPE, layout="vector")
def musicnn_embedding(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", pool: str = "mean",
                      layer: str = "penultimate", patches: int = 0) -> np.ndarray:
    """One layer's musicnn features of each 3 s patch (``spec.VECTOR_LAYERS``), pooled over the track;
    ``patches`` > 0 reads only that many patches, spread over the signal (0: all)."""
    _check(model, pool, layer)
    _check_patches(patches)
    return _pooled(_audio_outputs(y, sr, model, patches), pool=pool, layer=layer)


@register_feature("musicnn_patches", input="audio", layout="sequence",
                  shape="(max_patches, D), D as musicnn_embedding's with one pool; zero rows past the track's end")
def musicnn_patches(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", layer: str = "penultimate",
                    max_patches: int = 10) -> np.ndarray:
    """One layer's musicnn features of the track's first ``max_patches`` 3 s patches, in order (for sequence
    models and co-attention; 10 patches cover 30 s)."""
    _check(model, layer=layer)
    if max_patches < 1:
        raise FeatureError(f"musicnn_patches: max_patches must be at least 1, got {max_patches}")
    out = _audio_outputs(y, sr, model, 0)[layer][:max_patches]
    seq = np.zeros((max_patches, out.shape[1]), np.float32)
    seq[:len(out)] = out
    return seq


@register_feature("musicnn_tags", input="audio", shape="(50,) tag probabilities", layout="vector")
def musicnn_tags(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", patches: int = 0) -> np.ndarray:
    """The 50 tag probabilities (MSD or MagnaTagATune tags), averaged over the track's patches (``patches``
    as in :func:`musicnn_embedding`)."""
    _check(model)
    _check_patches(patches)
    return _pooled(_audio_outputs(y, sr, model, patches), pool="mean", layer="tags")


@register_feature("musicnn_mel", input="audio", shape="(96, n_frames) at 62.5 frames/s (16 kHz, hop 256)",
                  rate=lambda params, sr: spec.SR / params["hop_length"])
def musicnn_mel(y: np.ndarray, *, sr: int, hop_length: int = spec.HOP) -> np.ndarray:
    """musicnn's input representation, ``log10(10000 mel + 1)``, for the musicnn branch (windows of 2.992 s = 187 frames).

    ``hop_length`` is in samples at 16 kHz and fixed by the pretrained models (frame rate = 16000 / 256).
    """
    if hop_length != spec.HOP:
        raise FeatureError(f"musicnn_mel: hop_length is fixed at {spec.HOP} by the pretrained models")
    return np.ascontiguousarray(_mn().log_mel(y, sr=sr).T)


#: The peak level (dB: ``10 log10`` of the loudest cell of musicnn's mel power) given to spectrograms read
#: back from images, which keep levels only relative to their track's peak: the median over the shared GTZAN
#: clips in the fault-filtered training split (40 clips; sd 4.8 dB across tracks). tests/realdata re-measures it.
IMAGE_PEAK_DB = 20.6


def musicnn_mel_from_image(img: np.ndarray, *, n_frames: int = GTZAN_IMAGE_FRAMES, peak_db: float = IMAGE_PEAK_DB) -> np.ndarray:
    """musicnn's input ``(96, n_frames)`` at 62.5 frames/s, read back from a GTZAN-recipe mel image.

    The image's 128 Slaney bands to 11 025 Hz are interpolated (in dB, on the mel scale) to musicnn's
    96 bands to 8 kHz, and its ~12.9 columns/s (linearly) to 62.5 frames/s; the track's peak is set to
    ``peak_db``. What the image lost stays lost: detail faster than ~6 Hz, and levels below 80 dB under the peak.
    ``n_frames``: the drawn matrix's frames (see :func:`mel_image_to_db`).
    """
    db, frames = mel_image_to_db(img, n_frames=n_frames)
    centres = lambda n, sr: np.linspace(0.0, dsp.hz_to_mel(sr / 2), n + 2)[1:-1]  # noqa: E731 - Slaney band centres, mel
    src, dst = centres(db.shape[0], GTZAN_IMAGE_SR), centres(spec.N_MELS, spec.SR)
    by_band = np.stack([np.interp(dst, src, column) for column in db.T], 1)  # (96, columns)
    t_src = frames * GTZAN_IMAGE_HOP / GTZAN_IMAGE_SR
    # the clip ran n_frames hops, less up to one (unknown): its length at 16 kHz, as musicnn_mel frames it
    t_dst = np.arange(1 + n_frames * GTZAN_IMAGE_HOP * spec.SR // (GTZAN_IMAGE_SR * spec.HOP)) * spec.HOP / spec.SR
    rep = np.stack([np.interp(t_dst, t_src, band) for band in by_band])
    return np.ascontiguousarray(np.log10(10000.0 * 10.0 ** ((rep + peak_db) / 10.0) + 1.0), dtype=np.float32)


@register_feature("musicnn_embedding_from_image", input="image", layout="vector", shape=EMBEDDING_SHAPE,
                  audio_twin="musicnn_embedding_via_mel_image")
def musicnn_embedding_from_image(img: np.ndarray, *, model: str = "msd-musicnn", pool: str = "mean",
                                 layer: str = "penultimate", peak_db: float = IMAGE_PEAK_DB, patches: int = 0) -> np.ndarray:
    """:func:`musicnn_embedding` of a GTZAN mel image's 3 s patches, read back (:func:`musicnn_mel_from_image`)."""
    return _embed_image(img, img, model=model, pool=pool, layer=layer, peak_db=peak_db, n_frames=GTZAN_IMAGE_FRAMES,
                        patches=patches)


@register_feature("musicnn_tags_from_image", input="image", layout="vector", shape="(50,) tag probabilities",
                  audio_twin="musicnn_tags_via_mel_image")
def musicnn_tags_from_image(img: np.ndarray, *, model: str = "msd-musicnn", peak_db: float = IMAGE_PEAK_DB,
                            patches: int = 0) -> np.ndarray:
    """:func:`musicnn_tags` of a GTZAN mel image's 3 s patches, read back (:func:`musicnn_mel_from_image`)."""
    return _embed_image(img, img, model=model, pool="mean", layer="tags", peak_db=peak_db, n_frames=GTZAN_IMAGE_FRAMES,
                        patches=patches)


@register_feature("musicnn_embedding_via_mel_image", input="audio", layout="vector", shape=EMBEDDING_SHAPE)
def musicnn_embedding_via_mel_image(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", pool: str = "mean",
                                    layer: str = "penultimate", peak_db: float = IMAGE_PEAK_DB,
                                    patches: int = 0) -> np.ndarray:
    """:func:`musicnn_embedding_from_image` of the signal's own GTZAN mel image: what a model trained on the
    PNGs' embeddings expects from audio (musicnn on the audio itself differs: the picture blurs time)."""
    return _embed_image(y, lambda: mel_image(y, sr=sr), model=model, pool=pool, layer=layer, peak_db=peak_db,
                        n_frames=1 + y.size // GTZAN_IMAGE_HOP, patches=patches, sr=sr)


@register_feature("musicnn_tags_via_mel_image", input="audio", layout="vector", shape="(50,) tag probabilities")
def musicnn_tags_via_mel_image(y: np.ndarray, *, sr: int, model: str = "msd-musicnn", peak_db: float = IMAGE_PEAK_DB,
                               patches: int = 0) -> np.ndarray:
    """:func:`musicnn_tags_from_image` of the signal's own GTZAN mel image (as
    :func:`musicnn_embedding_via_mel_image`)."""
    return _embed_image(y, lambda: mel_image(y, sr=sr), model=model, pool="mean", layer="tags", peak_db=peak_db,
                        n_frames=1 + y.size // GTZAN_IMAGE_HOP, patches=patches, sr=sr)


def _embed_image(x: np.ndarray, img: np.ndarray | Callable[[], np.ndarray], *, model: str, pool: str, layer: str,
                 peak_db: float, n_frames: int, patches: int, sr: int | None = None) -> np.ndarray:
    """``layer`` of the patches read back from a mel image, pooled; ``x``: the image, or the signal it is drawn
    from (``img`` then draws it), which the network's outputs are shared by."""
    _check(model, pool, layer)
    _check_patches(patches)

    def read_back() -> np.ndarray:
        picture = img() if callable(img) else img
        return _mn().cut_patches(musicnn_mel_from_image(picture, n_frames=n_frames, peak_db=peak_db).T, patches=patches)

    outputs = network_outputs(x, ("image", sr, n_frames, float(peak_db), patches), model, read_back)
    return _pooled(outputs, pool=pool, layer=layer)
