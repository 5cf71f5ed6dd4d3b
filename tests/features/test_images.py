"""The GTZAN mel image recipe, the waveform image, and image-file input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from genrefusion.errors import FeatureError
from genrefusion.features.images import image_pixels, load_image, magma_lut, mel_image, waveform_image
from tests.conftest import SR, chirp, noise


def test_indexed_renderer_equals_matplotlib_drawing():
    y = (chirp(100, 6000, 4.0) + noise(4.0)).astype(np.float32)
    fast = mel_image(y, sr=SR)
    slow = mel_image(y, sr=SR, renderer="matplotlib")
    assert fast.shape == slow.shape and fast.dtype == np.uint8
    assert np.array_equal(fast, slow)


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
