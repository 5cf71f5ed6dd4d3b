"""The GTZAN mel image recipe, the waveform image, and image-file input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from genrefusion.errors import FeatureError
from genrefusion.features.images import (
    image_pixels,
    load_image,
    magma_lut,
    mel_image,
    mel_image_to_db,
    waveform_image,
)
from tests.conftest import SR, chirp, noise


def test_indexed_renderer_equals_matplotlib_drawing():
    y = (chirp(100, 6000, 4.0) + noise(4.0)).astype(np.float32)
    fast = mel_image(y, sr=SR)
    slow = mel_image(y, sr=SR, renderer="matplotlib")
    assert fast.shape == slow.shape and fast.dtype == np.uint8
    assert np.array_equal(fast, slow)


def test_a_mel_image_reads_back_its_log_mel_to_within_half_a_colour():
    from genrefusion.features import dsp

    y = np.concatenate([chirp(100, 6000, 4.0) + noise(4.0), np.zeros(SR, np.float32)]).astype(np.float32)  # spans 80 dB
    S = dsp.power_to_db(dsp.mel_power(y, sr=SR), ref=None)
    img = mel_image(y, sr=SR)
    db, frames = mel_image_to_db(img, n_frames=S.shape[1])
    assert db.shape == (128, img.shape[1]) and frames.shape == (img.shape[1],)
    assert np.all(np.diff(frames) >= 0) and frames[-1] < S.shape[1]  # 5 s: fewer frames than columns
    assert np.abs(db - S[:, frames]).max() <= 80 / 256 / 2 + 1e-4  # S is float32
    colour = magma_lut()[img]
    assert np.array_equal(mel_image_to_db(colour, n_frames=S.shape[1])[0], db)
    with pytest.raises(FeatureError, match="not a GTZAN-recipe mel image.*got 100 x 387"):
        mel_image_to_db(img[:100], n_frames=S.shape[1])


def test_mel_image_high_bands_on_top():
    from tests.conftest import tone

    img = mel_image(tone(8000, 3.0), sr=SR).astype(float)
    rows = img.mean(axis=1)
    assert np.argmax(rows) < img.shape[0] // 4  # 8 kHz is near the top of a 0-11 kHz mel axis


def test_waveform_image_envelope():
    img = waveform_image(np.sin(np.linspace(0, 200 * np.pi, 22050)).astype(np.float32), sr=SR, height=65, width=100)
    assert img.shape == (65, 100) and set(np.unique(img)) <= {0, 255}
    assert img[0].all() and img[-1].all() and img[32].all()  # a full-scale sine reaches top and bottom
    quiet = waveform_image(0.01 * np.ones(100, np.float32), sr=SR, height=65, width=10, normalize=False)
    assert quiet[:30].sum() == 0


def test_image_pixels_modes(tmp_path):
    idx = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(magma_lut()[idx]).save(tmp_path / "colour.png")
    Image.fromarray(idx).save(tmp_path / "grey.png")
    colour, grey = load_image(tmp_path / "colour.png"), load_image(tmp_path / "grey.png")
    assert colour.shape == (20, 30, 3) and grey.shape == (20, 30)
    assert np.array_equal(image_pixels(colour), idx)  # colour spectrogram -> its magma index
    assert np.array_equal(image_pixels(grey), idx)
    assert image_pixels(grey, mode="rgb").shape == (3, 20, 30)
    assert image_pixels(colour, mode="grey", height=10, width=15).shape == (10, 15)


def test_bad_images_are_clear_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(FeatureError, match="empty image"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(FeatureError, match="not a readable image") as info:
        load_image(tmp_path / "text.png")
    assert "text.png" in str(info.value)


@pytest.mark.parametrize("shape", [(128, 1280), (128, 1292), (128, 1335)])
def test_shipped_pixel_maps_are_what_matplotlib_draws(shape):
    from genrefusion.features.images import (
        SHIPPED_SHAPES,
        _shipped_pixel_maps,
        measure_pixel_map,
    )

    assert shape in SHIPPED_SHAPES and _shipped_pixel_maps()
    rows, cols = measure_pixel_map(*shape)
    np.testing.assert_array_equal(_shipped_pixel_maps()[f"rows{shape[0]}"], rows)
    np.testing.assert_array_equal(_shipped_pixel_maps()[f"cols{shape[1]}"], cols)


def test_predicting_a_30_s_clip_loads_neither_librosa_nor_numba_nor_matplotlib():
    """Their imports and numba's JIT cost ~5 s in the first prediction of a process ("import librosa"
    alone is lazy: 14 ms, no submodule)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from genrefusion.features.dsp import shared_spectra\n"
            "from genrefusion.features.images import mel_image\n"
            "from genrefusion.features.summary import summary_gtzan\n"
            "y = (0.1 * np.random.default_rng(0).standard_normal(661500)).astype(np.float32)\n"
            "with shared_spectra(y):\n"
            "    assert mel_image(y, sr=22050).shape == (385, 387) and summary_gtzan(y, sr=22050, hpss=False).shape == (53,)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'matplotlib') or (m.startswith('librosa.') and m != 'librosa.version')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
