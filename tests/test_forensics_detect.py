"""detect() on real pixels: generated composites, every input policy, reports, the built-in models."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from exiflang.forensics import ForensicsError, detect, embed_patches, make_grid, read_heatmap, write_report
from exiflang.forensics.synthetic import make_composite
from exiflang.forensics.report import colour_bar_height
from exiflang.imageio import ImageLoadError, ImageTooSmallError
from test_forensics_support import NoiseStatsModel


def pixel_ap(heat: np.ndarray, mask: np.ndarray) -> float:
    """Pixel average precision of a heatmap against a mask."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(mask.ravel(), heat.ravel()))


@pytest.fixture(scope="module")
def composite():
    return make_composite(256, 320, seed=1, area=0.2)


@pytest.fixture(scope="module")
def model():
    return NoiseStatsModel()


def test_composite_is_localised_and_scores_above_an_authentic_image(composite, model):
    image, mask = composite
    res = detect(image, model)
    assert res.heatmap.shape == mask.shape and res.heatmap.dtype == np.float32
    assert 0.0 <= res.heatmap.min() and res.heatmap.max() <= 1.0
    ap = pixel_ap(res.heatmap, mask)
    assert ap > 0.6, f"p-AP {ap:.2f} vs chance {mask.mean():.2f}"
    iou = (res.mask & mask).sum() / (res.mask | mask).sum()
    assert iou > 0.2  # a random mask of this area would get about 0.11
    # The same generator's host image alone (no paste) must score lower.
    from exiflang.forensics.synthetic import camera_pipeline, render_scene

    rng = np.random.default_rng(5)
    authentic = camera_pipeline(render_scene(256, 320, rng), rng)
    assert detect(authentic, model).score < res.score
    assert res.model_id == "test-noise-stats" and res.seconds > 0


def test_embed_patches_matches_manual_crops(composite, model):
    image = composite[0]
    emb, grid = embed_patches(image, model, batch_size=7)
    assert emb.shape == (grid.n_patches, 6) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    import torch

    y, x = grid.patch_origins()[37]
    crop = torch.from_numpy(image[y : y + 32, x : x + 32]).permute(2, 0, 1)[None].float() / 255
    ref = torch.nn.functional.normalize(model.encode_image(crop), dim=1)[0].detach().numpy()
    assert np.allclose(emb[37], ref, atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "I;16"])
def test_every_image_mode_is_analysed(tmp_path, composite, model, mode):
    image = composite[0][:96, :128]
    if mode == "I;16":
        img = Image.fromarray((image.mean(2) * 257).astype(np.uint16))
    else:
        img = Image.fromarray(image).convert(mode)
    path = tmp_path / f"x.{'tiff' if mode in ('CMYK', 'I;16') else 'png'}"
    img.save(path)
    res = detect(path, model)
    assert res.heatmap.shape == (96, 128) and np.isfinite(res.heatmap).all()


def test_exif_rotated_file_keeps_stored_coordinates(tmp_path, composite, model):
    image = composite[0][:96, :160]
    img = Image.fromarray(image)
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    res = detect(path, model)
    assert res.heatmap.shape == (96, 160) and res.orientation == 6
    paths = write_report(res, path, tmp_path / "out", "rotated")
    assert Image.open(paths["mask.png"]).size == (96, 160)  # PNG upright: width and height swapped
    # the overlay is upright too, with its colour bar below the picture
    assert Image.open(paths["overlay.png"]).size == (96, 160 + colour_bar_height(96))


def test_bad_inputs_raise_clear_errors(tmp_path, model):
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 300)).save(small)
    with pytest.raises(ImageTooSmallError, match=r"too small: 20x300 px, the smallest side must be at least 32 px"):
        detect(small, model)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        detect(broken, model)
    with pytest.raises(ForensicsError, match="model must be"):
        detect(np.zeros((64, 64, 3), np.uint8), model=42)
    import exiflang.imageio as imageio

    big = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(big)
    old = imageio.load_rgb.__defaults__
    imageio.load_rgb.__defaults__ = (1000,)  # shrink the pixel limit instead of writing a huge file
    try:
        with pytest.raises(ImageLoadError, match="exceeds the limit"):
            detect(big, model)
    finally:
        imageio.load_rgb.__defaults__ = old


def test_write_report_files(tmp_path, composite, model):
    image, _ = composite
    res = detect(image, model)
    paths = write_report(res, image, tmp_path, "comp")
    meta = json.loads(paths["json"].read_text())
    assert meta["score"] == pytest.approx(res.score, abs=1e-5) and meta["model_id"] == "test-noise-stats"
    assert meta["grid"]["patch"] == 32 and meta["image_size"] == {"height": 256, "width": 320}
    heat = read_heatmap(paths["heatmap.npy"])  # stored per cell, read back at full resolution
    assert heat.dtype == np.float32 and heat.shape == (256, 320) and np.array_equal(heat, res.heatmap)
    assert np.load(paths["heatmap.npy"]).shape == res.grid.cell_shape and meta["heatmap_npy"]["resolution"] == "cells"
    for kind in ("mask.png", "pca.png"):
        assert Image.open(paths[kind]).size == (320, 256)
    assert Image.open(paths["overlay.png"]).size == (320, 256 + colour_bar_height(320))  # + the colour bar


def test_tiny_model_runs_end_to_end(composite):
    models = pytest.importorskip("exiflang.models")
    net = models.create_model("tiny").eval()
    res = detect(composite[0], net, per_side=10)
    grid = make_grid(256, 320, net.patch_size, per_side=10)
    assert res.grid == grid and res.embeddings.shape == (grid.n_patches, net.embed_dim)
    assert res.heatmap.shape == (256, 320)


def test_default_model_finds_a_pasted_region_in_real_photos(photos_dir):
    """Hand-made composites of two shared photos from different cameras: the heatmap beats chance."""
    from exiflang.imageio import load_rgb
    from exiflang.paths import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "default" / "model.safetensors").is_file():
        pytest.skip("built-in weights not present")
    folders = sorted(p for p in photos_dir.iterdir() if p.is_dir())
    photos = []
    for folder in folders:  # the first 768x1024 photo of each camera folder, six cameras
        for path in sorted(folder.glob("*.jpg")):
            if load_rgb(path)[0].shape[:2] == (768, 1024):
                photos.append(path)
                break
        if len(photos) == 6:
            break
    if len(photos) < 6:
        pytest.skip("not enough 1024x768 photos in the shared collection")
    yy, xx = np.mgrid[0:768, 0:1024]
    region = ((yy - 400) / 180.0) ** 2 + ((xx - 560) / 220.0) ** 2 < 1  # an ellipse, ~16% of the frame
    aps = []
    for host, donor in zip(photos[0::2], photos[1::2]):
        composite = np.where(region[..., None], load_rgb(donor)[0], load_rgb(host)[0])
        aps.append(pixel_ap(detect(composite, "default").heatmap, region))
    assert np.mean(aps) > 2 * region.mean(), f"per-image AP {np.round(aps, 2)} vs chance {region.mean():.2f}"
