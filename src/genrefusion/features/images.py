"""Image features: the GTZAN log-mel image recipe, a waveform image, and image-file input.

The shared GTZAN PNGs were made by drawing the log-mel matrix with ``librosa.display.specshow``
(magma) on a 5x5 inch figure at 100 dpi, axis off, saved tight; each pixel stores the index
(0-255) of its magma colour. ``mel_image`` reproduces that pixel for pixel. Drawing with
matplotlib costs ~140 ms a clip, so the default renderer draws once per matrix shape to learn
which matrix cell each pixel shows (two probe drawings per axis), caches that map, and then
builds every image by indexing: same pixels, about 1 ms.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from genrefusion.errors import FeatureError
from genrefusion.features import dsp
from genrefusion.features.registry import register_feature

N_COLOURS = 256
FIGSIZE_IN = 5.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@lru_cache(maxsize=1)
def magma_lut() -> np.ndarray:
    """The 256 magma colours as ``(256, 3)`` uint8, as matplotlib rasterises them."""
    import matplotlib

    # Agg writes round(255 * c); the colormap's own bytes=True truncates, which is off by one.
    rgba = matplotlib.colormaps["magma"](np.arange(N_COLOURS))
    return np.ascontiguousarray(np.round(rgba[:, :3] * 255).astype(np.uint8))


def rgb_to_magma_index(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H, W)`` uint8: index of the nearest magma colour (exact where drawn with magma)."""
    lut = magma_lut().astype(np.int32)
    flat = rgb.reshape(-1, 3).astype(np.int32)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    dist = ((colours[:, None, :] - lut[None, :, :]) ** 2).sum(-1)
    return dist.argmin(1).astype(np.uint8)[inverse.ravel()].reshape(rgb.shape[:2])


def render_specshow(S: np.ndarray, *, sr: int = 22050, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Draw ``S`` exactly as the GTZAN recipe did; returns the magma indices ``(H, W)`` uint8.

    This is the reference renderer (matplotlib, ~140 ms); :func:`mel_image` uses it to learn its map.
    """
    import librosa.display
    from PIL import Image

    plt = _pyplot()
    fig = plt.figure(figsize=(FIGSIZE_IN, FIGSIZE_IN))
    try:
        ax = fig.add_subplot(111)
        librosa.display.specshow(S, sr=sr, cmap="magma", ax=ax, vmin=vmin, vmax=vmax)
        ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0)
    finally:
        plt.close(fig)
    buf.seek(0)
    return rgb_to_magma_index(np.asarray(Image.open(buf).convert("RGB")))


#: Pixel maps measured once for the matrices of 29.7-31 s clips (128 mel bands, 1280-1335 frames;
#: GTZAN's clips run to 30.6 s), shipped so that predicting never draws a figure; other shapes are
#: measured on first use (~1 s).
SHIPPED_PIXEL_MAPS = Path(__file__).with_name("pixel_maps.npz")
SHIPPED_SHAPES = tuple((128, n) for n in range(1280, 1336))


@lru_cache(maxsize=1)
def _shipped_pixel_maps() -> dict[str, np.ndarray]:
    try:
        with np.load(SHIPPED_PIXEL_MAPS) as z:
            return dict(z)
    except OSError:
        return {}


def write_pixel_maps(path: str | Path = SHIPPED_PIXEL_MAPS, shapes=SHIPPED_SHAPES) -> Path:
    """Measure the pixel maps of ``shapes`` with matplotlib and save them; by default rewrites the
    shipped file (``python -c "from genrefusion.features.images import write_pixel_maps; write_pixel_maps()"``)."""
    maps = {}
    for n_rows, n_cols in shapes:
        rows, cols = measure_pixel_map(n_rows, n_cols)
        maps[f"rows{n_rows}"], maps[f"cols{n_cols}"] = rows.astype(np.int16), cols.astype(np.int16)
    np.savez_compressed(path, **maps)
    return Path(path)


@lru_cache(maxsize=256)
def _pixel_map(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """For a matrix of this shape: the matrix row shown by each image row, and column by each image column."""
    shipped = _shipped_pixel_maps()
    if f"rows{n_rows}" in shipped and f"cols{n_cols}" in shipped:
        return shipped[f"rows{n_rows}"].astype(np.int64), shipped[f"cols{n_cols}"].astype(np.int64)
    return measure_pixel_map(n_rows, n_cols)


def measure_pixel_map(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pixel_map` measured: draw matrices whose cells hold their own row (column) number in
    base-256 digits, and read back which cell each pixel shows."""

    def probe(size: int, axis: int) -> np.ndarray:
        idx = np.arange(size)
        found = np.zeros(0, np.int64)
        for digit in range(int(np.ceil(np.log(max(size, 2)) / np.log(N_COLOURS))) or 1):
            values = (idx // N_COLOURS**digit) % N_COLOURS
            grid = np.broadcast_to(values[:, None] if axis == 0 else values[None, :], (n_rows, n_cols))
            img = render_specshow(np.ascontiguousarray(grid, dtype=np.float32), vmin=0.0, vmax=N_COLOURS - 1.0)
            line = (img[:, img.shape[1] // 2] if axis == 0 else img[img.shape[0] // 2, :]).astype(np.int64)
            found = line * N_COLOURS**digit + (found if found.size else 0)
        return found

    return probe(n_rows, 0), probe(n_cols, 1)


def colour_index(S: np.ndarray, *, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """matplotlib's Normalize + 256-colour lookup, giving the colour index of each cell, uint8
    (the same float arithmetic as matplotlib, without importing it)."""
    S = np.asarray(S)
    S = S if S.dtype in (np.float32, np.float64) else S.astype(np.float64)
    lo = S.dtype.type(S.min() if vmin is None else vmin)
    hi = S.dtype.type(S.max() if vmax is None else vmax)
    return lookup_index(np.zeros_like(S) if lo == hi else (S - lo) / (hi - lo))


def lookup_index(x: np.ndarray) -> np.ndarray:
    """matplotlib's 256-colour lookup of values normalised to [0, 1]: the colour index, uint8."""
    x = x * x.dtype.type(N_COLOURS)
    x[x == N_COLOURS] = N_COLOURS - 1
    return np.clip(x, -1, N_COLOURS).astype(np.int64).clip(0, N_COLOURS - 1).astype(np.uint8)


@register_feature("mel_image", input="audio", version=2, shape="(385, 387) uint8 magma indices, row 0 = highest band", default=True,
                  layout="image")
def mel_image(y: np.ndarray, *, sr: int, n_mels: int = 128, renderer: str = "indexed") -> np.ndarray:
    """The GTZAN log-mel spectrogram image (``power_to_db(melspectrogram, ref=max)`` drawn with magma).

    ``renderer="indexed"`` (default) uses the cached pixel map; ``"matplotlib"`` draws the figure.
    """
    with dsp.shared_spectra(y):
        S = dsp.power_to_db(dsp.mel_power(y, sr=sr, n_mels=n_mels), ref=None)
    if renderer == "matplotlib":
        return render_specshow(S, sr=sr)
    if renderer != "indexed":
        raise FeatureError(f"mel_image: renderer must be 'indexed' or 'matplotlib', got {renderer!r}")
    rows, cols = _pixel_map(*S.shape)
    return colour_index(S)[np.ix_(rows, cols)]


#: The GTZAN recipe's matrix: 128 mel bands of 22 050 Hz audio, hop 512; 1293 frames for a 30.0 s clip
GTZAN_IMAGE_SR, GTZAN_IMAGE_HOP, GTZAN_IMAGE_FRAMES = 22050, 512, 1293


def mel_image_to_db(img: np.ndarray, *, n_mels: int = 128, n_frames: int = GTZAN_IMAGE_FRAMES,
                    top_db: float = 80.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mel_image` read back: the log-mel matrix a GTZAN-recipe image shows.

    ``img``: ``(385, 387)`` magma indices (or the colour image). Returns ``(n_mels, 387)`` dB below
    the track's loudest cell, row 0 = lowest band, and the matrix frame each column shows ``(387,)``.
    Each band is drawn on ~3 rows (averaged); each column shows one of ~3.3 frames, so time comes back
    at ~12.9 columns/s; a colour stands for ``top_db / 256`` dB (0.31), read at its middle, assuming
    the track spans ``top_db`` (the floor ``power_to_db`` applies). The image does not record the
    clip's length: ``n_frames`` (GTZAN's clips have 1280-1335) moves a column's time by at most 3 %.
    """
    img = np.asarray(img)
    index = rgb_to_magma_index(img) if img.ndim == 3 else img
    rows, cols = _pixel_map(n_mels, n_frames)
    if index.ndim != 2 or index.shape != (len(rows), len(cols)):
        raise FeatureError(f"not a GTZAN-recipe mel image: expected {len(rows)} x {len(cols)} pixels "
                           f"(a 5 x 5 inch figure at 100 dpi), got {' x '.join(map(str, img.shape))}")
    sums = np.zeros((n_mels, index.shape[1]))
    np.add.at(sums, rows, index.astype(np.float64))
    counts = np.bincount(rows, minlength=n_mels)[:, None]
    if (counts == 0).any():
        raise FeatureError(f"mel_image_to_db: {int((counts == 0).sum())} of {n_mels} bands are not drawn at this size")
    return -top_db + top_db * (sums / counts + 0.5) / N_COLOURS, cols.copy()


@register_feature("waveform_image", input="audio", shape="(height, width) uint8", layout="image")
def waveform_image(y: np.ndarray, *, sr: int, height: int = 128, width: int = 512, normalize: bool = True) -> np.ndarray:
    """The waveform drawn as a min/max envelope: 255 where the signal reaches, 0 elsewhere; row 0 = +1."""
    if y.size == 0:
        raise FeatureError("waveform_image: empty signal")
    x = y / max(float(np.max(np.abs(y))), 1e-9) if normalize else np.clip(y, -1, 1)
    edges = np.linspace(0, x.size, width + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, x.size)
    starts = np.minimum(edges[:-1], x.size - 1)
    lo = np.minimum.reduceat(x, starts)
    hi = np.maximum.reduceat(x, starts)
    to_row = lambda v: np.clip(np.round((1 - v) / 2 * (height - 1)), 0, height - 1).astype(np.int64)  # noqa: E731
    top, bottom = to_row(hi), to_row(lo)
    rows = np.arange(height)[:, None]
    return ((rows >= top[None, :]) & (rows <= bottom[None, :])).astype(np.uint8) * 255


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8, ``(H, W)`` greyscale or ``(H, W, 3)`` colour."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FeatureError("image file not found", path=path)
    if path.stat().st_size == 0:
        raise FeatureError("empty image file (0 bytes)", path=path)
    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L") if im.mode in ("L", "I", "I;16", "1", "P") and _is_grey(im) else im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise FeatureError(f"not a readable image ({err})", path=path) from None


def _is_grey(im) -> bool:
    if im.mode != "P":
        return True
    palette = np.asarray(im.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool(np.all(palette[:, 0] == palette[:, 1]) and np.all(palette[:, 1] == palette[:, 2]))


@register_feature("image_pixels", input="image", shape="(H, W) or (3, H, W) uint8", default=True)
def image_pixels(img: np.ndarray, *, mode: str = "magma_index", height: int | None = None, width: int | None = None) -> np.ndarray:
    """An image file's pixels: ``mode`` "magma_index" (colour spectrograms -> 0-255 magma index,
    greyscale kept), "grey", or "rgb" (channels first); optionally resized (bilinear) to height x width."""
    from PIL import Image

    if mode not in ("magma_index", "grey", "rgb"):
        raise FeatureError(f"image_pixels: mode must be magma_index, grey or rgb, got {mode!r}")
    if mode == "magma_index":
        out = img if img.ndim == 2 else rgb_to_magma_index(img)
    elif mode == "grey":
        out = img if img.ndim == 2 else np.asarray(Image.fromarray(img).convert("L"))
    else:
        out = np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img
    if height or width:
        h, w = out.shape[:2]
        resample = Image.NEAREST if mode == "magma_index" else Image.BILINEAR
        out = np.asarray(Image.fromarray(out).resize((width or w, height or h), resample))
    return np.ascontiguousarray(out.transpose(2, 0, 1) if out.ndim == 3 else out)


@register_feature("table_row", input="table", shape="(n_columns,) float32", default=True)
def table_row(row: np.ndarray) -> np.ndarray:
    """A track's row of a feature table, as float32."""
    return np.asarray(row, dtype=np.float32)

