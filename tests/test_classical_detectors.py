"""Known-answer tests for the classical splice detectors: JPEG grid origin (ZERO-style) and double quantisation.

Every test image is a real JPEG made with Pillow, from a smooth-but-textured synthetic image and, where the
shared photos are present, from a real camera photo. Speed is measured by benchmarks/classical_speed.py.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from exiflang.errors import ExiflangError
from exiflang.eval.baselines import dq as dq_baseline
from exiflang.eval.baselines import grid as grid_baseline
from exiflang.forensics import dq, jpeg_grid
from exiflang.forensics.dq import DQAnalysis, dq_analysis, dq_analysis_file
from exiflang.forensics.jpeg_grid import GridAnalysis, grid_analysis, grid_origin

PHOTO = "Asahi-Optical-Co-Ltd_PENTAX-Optio-430/Pentax Optio 430.jpg"  # a harbour scene: texture and sky
BOX = (96, 288, 128, 352)  # y0, y1, x0, x1 of the manipulated region in a 384 x 512 image


def jpeg_bytes(arr: np.ndarray, quality: int) -> bytes:
    """The JPEG file Pillow writes for arr at this quality."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Decoded HxWx3 uint8 pixels of a JPEG file's bytes."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    """arr compressed at quality and decoded again."""
    return decode(jpeg_bytes(arr, quality))


def box_mask(shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of BOX."""
    y0, y1, x0, x1 = BOX
    mask = np.zeros(shape[:2], dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def textured(height: int = 384, width: int = 512, seed: int = 0) -> np.ndarray:
    """A smooth-but-textured RGB image: blurred colour noise on a slowly varying background."""
    rng = np.random.default_rng(seed)
    fine = np.stack([ndimage.gaussian_filter(rng.normal(size=(height, width)), 2.0) for _ in range(3)], axis=-1)
    coarse = ndimage.gaussian_filter(rng.normal(size=(height, width)), 12.0)[..., None]
    img = fine + 4.0 * coarse
    img = (img - img.mean()) / img.std() * 35.0 + 128.0
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo(photos_dir: Path) -> np.ndarray:
    """The real camera photo PHOTO (1024 x 768 camera JPEG) as stored pixels."""
    path = photos_dir / PHOTO
    if not path.is_file():
        pytest.skip(f"real photo {PHOTO} not found in {photos_dir}")
    return np.asarray(Image.open(path).convert("RGB"))


def shifted_splice(img: np.ndarray, quality: int = 85, shift: tuple[int, int] = (3, 5)) -> tuple[np.ndarray, ...]:
    """(img compressed at quality, the same with BOX replaced by img compressed on a grid shifted by `shift`)."""
    base = jpeg(img, quality)
    sy, sx = shift
    unshifted = base.copy()
    unshifted[sy:, sx:] = jpeg(np.ascontiguousarray(img[sy:, sx:]), quality)  # shift, compress, unshift
    spliced = base.copy()
    mask = box_mask(img.shape)
    spliced[mask] = unshifted[mask]
    return base, spliced


def check_grid_splice(img: np.ndarray) -> None:
    """grid_analysis finds origin (0, 0), flags BOX (IoU >= 0.6, heat in >> out), scores it above the plain image."""
    base, spliced = shifted_splice(img)
    mask = box_mask(img.shape)
    plain = grid_analysis(base)
    res = grid_analysis(spliced)
    assert res.origin == (0, 0) and plain.origin == (0, 0)
    # Most voting pixels inside the region vote for the shifted origin (3, 5).
    inside = res.votes[mask]
    assert np.mean(inside[inside >= 0] == 3 * 8 + 5) > 0.5
    flagged = res.heatmap >= 0.5
    iou = (flagged & mask).sum() / (flagged | mask).sum()
    assert iou >= 0.6, f"IoU {iou:.2f}"
    heat_in, heat_out = float(res.heatmap[mask].mean()), float(res.heatmap[~mask].mean())
    assert heat_in >= 0.6 and heat_out <= 0.15 and heat_in > 4 * heat_out, (heat_in, heat_out)
    assert plain.score < 1.0 < 10.0 < res.score, (plain.score, res.score)


def test_grid_finds_shifted_region_synthetic() -> None:
    check_grid_splice(textured())


def test_grid_finds_shifted_region_real_photo(photo: np.ndarray) -> None:
    # The camera JPEG's own grid is (0, 0) (the shared crops are on the MCU grid); q85 keeps it there.
    check_grid_splice(np.ascontiguousarray(photo[:384, :512]))


def test_grid_result_types_and_plain_image() -> None:
    res = grid_analysis(jpeg(textured(), 85))
    assert isinstance(res, GridAnalysis)
    assert res.heatmap.dtype == np.float32 and res.heatmap.shape == (384, 512)
    assert 0.0 <= res.heatmap.min() and res.heatmap.max() <= 1.0
    assert res.votes.dtype == np.int8 and res.votes.shape == (384, 512)
    assert res.votes.min() >= -1 and res.votes.max() <= 63
    assert res.origin == (0, 0) and res.origin_fraction > 0.5
    assert res.score == 0.0 and res.heatmap.max() < 0.5  # nothing significant off the grid


def test_grid_origin_of_cropped_jpeg_and_gray_input() -> None:
    # Cropping a JPEG by (3, 5) moves its grid origin to (8 - 3, 8 - 5) = (5, 3).
    cropped = np.ascontiguousarray(jpeg(textured(), 85)[3:, 5:])
    assert grid_origin(cropped) == (5, 3)
    gray = np.ascontiguousarray(cropped.mean(axis=2).round().astype(np.uint8))
    gray_jpeg = np.asarray(Image.open(io.BytesIO(jpeg_bytes(gray, 80))).convert("L"))
    assert gray_jpeg.ndim == 2 and grid_origin(gray_jpeg) == (0, 0)
    assert grid_origin(np.ascontiguousarray(gray_jpeg[2:, 7:])) == (6, 1)


def test_grid_origin_none_without_compression() -> None:
    res = grid_analysis(textured())  # never compressed: no grid to find
    assert res.origin is None and res.origin_fraction == 0.0
    assert grid_origin(textured(seed=1)) is None


def dq_composite(img: np.ndarray, q1: int = 60, q2: int = 90) -> tuple[bytes, np.ndarray]:
    """JPEG bytes of img with BOX taken from img compressed at q1, the whole compressed at q2; and the DQ mask."""
    mask = box_mask(img.shape)
    composite = img.copy()
    composite[mask] = jpeg(img, q1)[mask]
    return jpeg_bytes(composite, q2), mask


def block_auc(res: DQAnalysis, single: np.ndarray) -> float:
    """AUC of the heatmap at block centres for telling singly-compressed blocks (positives) from double ones."""
    oy, ox = res.origin
    ys = np.arange(oy + 4, res.heatmap.shape[0] - 3, 8)
    xs = np.arange(ox + 4, res.heatmap.shape[1] - 3, 8)
    heat = res.heatmap[np.ix_(ys, xs)].ravel()
    pos = single[np.ix_(ys, xs)].ravel()
    # Mann-Whitney U with ties counted half.
    from scipy.stats import rankdata

    ranks = rankdata(heat)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def check_dq_separates(res: DQAnalysis, dq_mask: np.ndarray) -> None:
    """Heat is high on the singly-compressed part, low on the double part (AUC >= 0.8 over blocks)."""
    single = ~dq_mask
    heat_single, heat_double = float(res.heatmap[single].mean()), float(res.heatmap[dq_mask].mean())
    assert heat_single - heat_double > 0.4, (heat_single, heat_double)
    auc = block_auc(res, single)
    assert auc >= 0.8, f"block AUC {auc:.3f}"
    assert res.score > 1.0


def test_dq_file_and_pixels_synthetic(tmp_path: Path) -> None:
    data, dq_mask = dq_composite(textured())
    path = tmp_path / "composite.jpg"
    path.write_bytes(data)
    res_file = dq_analysis_file(path)
    assert isinstance(res_file, DQAnalysis) and res_file.origin == (0, 0)
    assert res_file.heatmap.dtype == np.float32 and res_file.heatmap.shape == (384, 512)
    assert 0.0 <= res_file.heatmap.min() and res_file.heatmap.max() <= 1.0
    check_dq_separates(res_file, dq_mask)
    pixels = decode(data)
    res_pix = dq_analysis(pixels)
    assert res_pix.origin == (0, 0)
    check_dq_separates(res_pix, dq_mask)
    # A given decoded array gives the same answer as decoding inside.
    np.testing.assert_array_equal(dq_analysis_file(path, image=pixels).heatmap, res_file.heatmap)
    # A single compression at q2 has no double-quantised reference: nothing is flagged.
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(jpeg_bytes(textured(), 90))
    res_plain = dq_analysis_file(plain)
    assert res_plain.score < res_file.score and res_plain.score == 0.0 and res_plain.heatmap.max() == 0.0


def test_dq_real_photo(photo: np.ndarray, tmp_path: Path) -> None:
    # Halving the photo (box filter) removes the camera's own JPEG traces, so the background is truly single.
    small = np.asarray(Image.fromarray(photo).resize((512, 384), Image.BOX))
    data, dq_mask = dq_composite(small)
    path = tmp_path / "composite.jpg"
    path.write_bytes(data)
    check_dq_separates(dq_analysis_file(path), dq_mask)
    check_dq_separates(dq_analysis(decode(data)), dq_mask)


def test_dq_pixels_follow_the_grid_and_png_falls_back(tmp_path: Path) -> None:
    data, dq_mask = dq_composite(textured())
    # Crop by (3, 5): the grid moves to (5, 3); the pixel path finds it and still separates the parts.
    cropped = np.ascontiguousarray(decode(data)[3:, 5:])
    res = dq_analysis(cropped)
    assert res.origin == (5, 3)
    check_dq_separates(res, np.ascontiguousarray(dq_mask[3:, 5:]))
    # A non-JPEG file is analysed from its pixels.
    png = tmp_path / "composite.png"
    Image.fromarray(cropped).save(png)
    np.testing.assert_array_equal(dq_analysis_file(png).heatmap, res.heatmap)


BAD_ARRAYS = [
    (np.zeros((15, 64, 3), np.uint8), "too small"),
    (np.zeros((64, 10), np.uint8), "too small"),
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    (np.zeros((64, 64, 4), np.uint8), "shape"),
    (np.zeros((64,), np.uint8), "shape"),
    ([[0] * 64] * 64, "numpy array"),
]


@pytest.mark.parametrize("func", [grid_analysis, grid_origin, dq_analysis])
@pytest.mark.parametrize("bad,message", BAD_ARRAYS)
def test_bad_inputs_raise_project_errors(func, bad, message) -> None:
    with pytest.raises(ExiflangError, match=message):  # one line for the CLI, never a traceback (issue 20)
        func(bad)


def test_dq_file_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ExiflangError, match="no such file"):
        dq_analysis_file(tmp_path / "missing.jpg")
    tiny = tmp_path / "tiny.jpg"
    tiny.write_bytes(jpeg_bytes(np.zeros((12, 40, 3), np.uint8), 90))
    with pytest.raises(ExiflangError, match="too small"):
        dq_analysis_file(tiny)
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(textured(64, 96), 90))
    with pytest.raises(ExiflangError, match="64x96|96x64"):
        dq_analysis_file(good, image=np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ExiflangError, match="uint8"):
        dq_analysis_file(good, image=np.zeros((64, 96, 3), np.float64))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ExiflangError, match=r"broken.png: not an image \(text\)"):  # issue 14: says why
        dq_analysis_file(broken)


def test_baselines_re_export_the_forensics_api() -> None:
    assert grid_baseline.grid_analysis is jpeg_grid.grid_analysis and grid_baseline.METHOD_ID == "jpeg-grid-v1"
    assert grid_baseline.grid_origin is jpeg_grid.grid_origin and grid_baseline.GridAnalysis is GridAnalysis
    assert dq_baseline.dq_analysis is dq.dq_analysis and dq_baseline.dq_analysis_file is dq.dq_analysis_file
    assert dq_baseline.DQAnalysis is DQAnalysis and dq_baseline.METHOD_ID == "dq-v1"


def test_dq_reads_a_camera_file_whose_many_app2_segments_libjpeg_refuses(photos_dir: Path, tmp_path: Path) -> None:
    """A shared HP PhotoSmart photo carries more APP2 segments than libjpeg accepts ("Too many markers"): its DCT
    coefficients are read from the same bytes without the metadata segments, not from the decoded pixels."""
    import warnings

    hp = photos_dir / "Hewlett-Packard_hp-PhotoSmart-43x-series" / "IM000292.jpg"
    if not hp.is_file():
        pytest.skip(f"{hp} not in the shared photos")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback to pixels warns: here it must not happen
        found = dq_analysis_file(hp)
    assert found.origin == (0, 0)  # the file's own grid: the coefficients, not a pixel re-estimate
    # the same on an ordinary photo given 60 extra APP2 segments: equal to the file without them
    plain = tmp_path / "plain.jpg"
    Image.fromarray(np.asarray(Image.open(hp).convert("RGB"))).save(plain, quality=90)
    data = plain.read_bytes()
    app2 = b"\xff\xe2" + (2 + 100).to_bytes(2, "big") + bytes(100)
    crowded = tmp_path / "crowded.jpg"
    crowded.write_bytes(data[:2] + app2 * 60 + data[2:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = dq_analysis_file(plain), dq_analysis_file(crowded)
    assert a.score == b.score and np.array_equal(a.heatmap, b.heatmap)
    assert dq.without_metadata_segments(b"not a jpeg") == b"not a jpeg"
