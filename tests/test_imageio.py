"""Image loading policy: modes, pixel limit, broken files, orientation for display."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from exiflang.imageio import ImageLoadError, as_rgb_array, load_rgb, upright


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1"])
def test_every_mode_becomes_rgb8(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray((rng.integers(0, 65535, (40, 50))).astype(np.uint16))
    else:
        img = base.convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}.{'tiff' if mode in ('CMYK', 'I;16') else 'png'}"
    img.save(path)
    arr, info = load_rgb(path)
    assert arr.shape == (40, 50, 3) and arr.dtype == np.uint8
    assert info.converted_from == (None if mode == "RGB" else img.mode)


def test_pixel_limit_and_broken_files(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(ImageLoadError, match="exceeds the limit"):
        load_rgb(path, max_pixels=1000)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        load_rgb(bad)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_rgb(tmp_path / "missing.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_matches_pillow(orientation):
    arr = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(upright(arr, orientation), expected)


def test_real_photo_keeps_stored_orientation(photos_dir):
    path = next(p for p in sorted(photos_dir.rglob("*.jpg")))
    arr, info = load_rgb(path)
    with Image.open(path) as img:
        assert arr.shape[:2] == (img.height, img.width)
    assert as_rgb_array(arr).shape == arr.shape


def test_starts_as_jpeg_sniffs_the_bytes_not_the_name(tmp_path, photos_dir):
    """A real camera JPEG is one, whatever it is called; a PNG named .jpg, an empty file or no file is not."""
    from exiflang.imageio import starts_as_jpeg

    camera_jpeg = next(p for p in sorted(photos_dir.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg"))
    renamed = tmp_path / "camera.png"
    renamed.write_bytes(camera_jpeg.read_bytes())
    fake = tmp_path / "fake.jpg"
    Image.new("RGB", (16, 16)).save(fake, format="PNG")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert starts_as_jpeg(camera_jpeg) and starts_as_jpeg(renamed)
    assert not starts_as_jpeg(fake) and not starts_as_jpeg(empty)
    assert not starts_as_jpeg(tmp_path / "missing.jpg") and not starts_as_jpeg(None)
