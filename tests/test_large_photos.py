"""Large photos stay cheap: maps per cell, reduced PNG views, banded grid votes, one uint8 decode (issue 14, item 6)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from exiflang.forensics import CellMap, make_grid, read_heatmap
from exiflang.forensics import jpeg_grid as J
from exiflang.forensics.report import map_view, reduce_image, view_step
from exiflang.imageio import load_rgb

PHOTO = "Apple_iPhone-13/apple_iPhone13_1_2.jpg"  # a 1024x768 camera JPEG


def _tiled(photos_dir, path, width: int, height: int, quality: int = 92):
    """A JPEG of width x height tiled from a real photo (mirrored tiles: no seams), saved at ``path``."""
    tile, _ = load_rgb(photos_dir / PHOTO)
    block = np.concatenate([tile, tile[:, ::-1]], axis=1)
    block = np.concatenate([block, block[::-1]], axis=0)
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    Image.fromarray(np.ascontiguousarray(np.tile(block, reps)[:height, :width])).save(path, quality=quality)
    return path


@pytest.fixture(scope="module")
def big_photo(photos_dir, tmp_path_factory):
    """A 24 MP (5664x4256) JPEG made from a real photo."""
    return _tiled(photos_dir, tmp_path_factory.mktemp("big") / "big24.jpg", 5664, 4256)


def test_detect_out_on_24mp_photo_is_cheap(big_photo, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "exiflang", "detect", str(big_photo), "--out", str(out), "--no-exif-check",
           "--method", "exiflang"]  # the learned map (per cell); the fusion holds full-resolution maps
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    meta = json.loads((out / "big24.json").read_text())
    assert meta["heatmap_npy"]["resolution"] == "cells" and meta["view_step"] == 3
    npy = out / "big24.heatmap.npy"
    assert npy.stat().st_size < 20_000  # per cell; the full-resolution float32 map was 96 MB
    heat = read_heatmap(npy)
    assert heat.shape == (4256, 5664) and heat.dtype == np.float32 and 0 <= heat.min() <= heat.max() <= 1
    assert float((heat >= 0.5).mean()) == pytest.approx(meta["flagged_fraction"], abs=1e-6)
    for kind in ("mask", "pca"):
        assert Image.open(out / f"big24.{kind}.png").size == (5664 // 3, 4256 // 3)
    assert Image.open(out / "big24.overlay.png").width == 5664 // 3
    assert (out / "index.html").is_file()


def _benchmark_module():
    """benchmarks/detect_memory.py (its PEAK_WRAPPER measures a child's own peak RSS)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "detect_memory.py"
    spec = importlib.util.spec_from_file_location("detect_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["exiflang", "fusion"])
def test_peak_memory_of_detect_on_24mp_photo(big_photo, tmp_path, method):
    """The child's own peak RSS (VmHWM): 2.5 GB before issue 14; decode + model + maps fit in 1 GB now, the
    default fusion included (1.13 GB while the classical maps were held per pixel)."""
    bench = _benchmark_module()
    cmd = [sys.executable, "-c", bench.PEAK_WRAPPER, "detect", str(big_photo), "--out", str(tmp_path / "o"),
           "--no-exif-check", "--method", method]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    peak = bench.peak_rss_bytes(proc.stderr)
    assert 0.2e9 < peak < 1.0e9, f"peak RSS {peak / 1e9:.2f} GB"


def test_banded_grid_votes_equal_the_whole_image(photos_dir, tmp_path):
    image, _ = load_rgb(_tiled(photos_dir, tmp_path / "t.jpg", 1600, 1200))
    image = image[3:, 5:]  # a grid origin off (0, 0)
    whole = J.grid_votes(J.luminance(image))
    for y0, y1 in ((0, 256), (256, 512), (1024, image.shape[0])):
        np.testing.assert_array_equal(J.band_votes(image, y0, y1), whole[y0:y1])
    assert J.grid_origin(image) == J._dominant(whole)[0] == (5, 3)
    np.testing.assert_array_equal(J.votes_by_band(image), whole)  # what grid_analysis reads, in bounded memory
    # the per-cell vote histograms, counted in bands, equal a plain count over the whole photo
    h, w = whole.shape
    rows, cols = h // J.CELL, w // J.CELL
    iy, ix = np.minimum(np.arange(h) // J.CELL, rows - 1), np.minimum(np.arange(w) // J.CELL, cols - 1)
    plain = np.zeros((rows, cols, 64))
    ok = whole >= 0
    np.add.at(plain, (np.broadcast_to(iy[:, None], whole.shape)[ok], np.broadcast_to(ix, whole.shape)[ok], whole[ok]), 1)
    np.testing.assert_array_equal(J._cell_histograms(whole), plain)
    # a few bands of votes find the same grid as all of them
    assert J.grid_origin(image, max_pixels=400_000) == (5, 3)
    # votes counted once (the fusion's) give the origin each reader would have counted for itself
    assert J.origin_from_votes(whole) == J.grid_origin(image)
    assert J.origin_from_votes(whole, max_pixels=400_000) == J.grid_origin(image, max_pixels=400_000)


def test_the_origin_from_counted_votes_reads_the_same_sampled_bands():
    """Eight 256-row bands: the sampled ones (max_pixels of two bands) vote (1, 1), the rest, more of them,
    (2, 2): the origin from counted votes follows the sample, as grid_origin's own count does."""
    h, w = 8 * J.ORIGIN_BAND, 64
    sampled = J._origin_bands(h, w, max_pixels=2 * J.ORIGIN_BAND * w)
    assert len(sampled) == 2
    votes = np.full((h, w), 2 * 8 + 2, dtype=np.int8)
    for y0, y1 in sampled:
        votes[y0:y1] = 1 * 8 + 1
    assert J.origin_from_votes(votes) == (2, 2)
    assert J.origin_from_votes(votes, max_pixels=2 * J.ORIGIN_BAND * w) == (1, 1)


def test_decode_of_a_large_photo_equals_pillow(big_photo):
    pixels, _ = load_rgb(big_photo)
    with Image.open(big_photo) as img:
        expected = np.asarray(img)
    assert pixels.dtype == np.uint8 and pixels.flags.writeable and np.array_equal(pixels, expected)


def test_cell_map_and_views():
    grid = make_grid(1000, 1500, 128, per_side=10, origin=(3, 5))
    cells = np.random.default_rng(0).random(grid.cell_shape).astype(np.float32)
    cmap = CellMap(cells, grid)
    full = np.asarray(cmap)
    assert full.shape == cmap.shape == (1000, 1500) and full.dtype == np.float32
    assert cmap.pixel_mean() == pytest.approx(float(full.mean(dtype=np.float64)), rel=1e-9)
    assert cmap.pixel_mean(cells >= 0.5) == pytest.approx(float((full >= 0.5).mean()), rel=1e-12)
    step = view_step(1000, 1500, max_side=400)
    assert step == 4 and cmap.view(step).shape == (250, 375)
    # each view pixel takes the cell of its block's centre pixel
    np.testing.assert_array_equal(cmap.view(step), full[2::4, 2::4][:250, :375])
    np.testing.assert_array_equal(map_view(full, step), cmap.view(step))
    image = np.random.default_rng(1).integers(0, 256, (1000, 1500, 3), dtype=np.uint8)
    reduced = reduce_image(image, step)
    means = image.reshape(250, 4, 375, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert reduced.shape == (250, 375, 3) and np.abs(reduced - means).max() <= 0.5 + 1e-9


def _expanded(cells: np.ndarray, shape: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    """How the detectors expanded their 8 px blocks to pixels before they kept them per block: pixels before the
    origin join the first block, the remainder the last."""
    rows, cols = cells.shape
    iy = np.clip((np.arange(shape[0]) - origin[0]) // 8, 0, rows - 1)
    ix = np.clip((np.arange(shape[1]) - origin[1]) // 8, 0, cols - 1)
    return cells[iy][:, ix]


def test_classical_maps_per_block_expand_and_fuse_as_pixel_maps(photos_dir, tmp_path):
    """The grid and dq maps are held per 8 px block; expanded, they are the pixel maps the detectors gave, and the
    fusion reading them a band of rows at a time gives the same map and score as from the pixel maps."""
    from exiflang.forensics.dq import dq_analysis, dq_analysis_file
    from exiflang.forensics.fusion import FusionRule, fuse

    photo, _ = load_rgb(photos_dir / PHOTO)
    # a square pasted from 3 px lower-right of its source (another grid phase, which the grid detector finds),
    # then the frame cut 3 and 5 px in: the camera's grid no longer starts at the corner, and the odd size
    # leaves a remainder past the last whole block
    image = photo[:766, :1026].copy()
    image[300:500, 400:650] = photo[303:503, 403:653]
    image = np.ascontiguousarray(image[3:, 5:])
    shape = image.shape[:2]
    grid = J.grid_analysis(image)
    assert grid.score > 3.0 and grid.cell_map.cells.shape == (763 // 8, 1021 // 8)
    np.testing.assert_array_equal(grid.heatmap, _expanded(grid.cell_map.cells, shape, (0, 0)))
    dq = dq_analysis(image)
    assert dq.origin == (5, 3) and dq.cell_map.shape == shape  # blocks start on the camera's grid
    np.testing.assert_array_equal(dq.heatmap, _expanded(dq.cell_map.cells, shape, dq.origin))
    path = tmp_path / "resaved.jpg"
    Image.fromarray(image).save(path, quality=85)
    from_file = dq_analysis_file(path, image=load_rgb(path)[0])
    np.testing.assert_array_equal(from_file.heatmap, _expanded(from_file.cell_map.cells, shape, (0, 0)))
    np.testing.assert_array_equal(dq.cell_map.rows(250, 517), dq.heatmap[250:517])
    learned = CellMap(np.random.default_rng(0).random((10, 14)).astype(np.float32),
                      make_grid(*shape, 128, per_side=10, origin=(0, 0)))
    for rule in (FusionRule(grid_gate=3.0, grid_weight=0.7, learned_weight=0.4, map_weight=0.5, smooth_px=8.0,
                            flip_majority=True), FusionRule(grid_gate=1e9, learned_weight=0.8)):
        by_block = fuse(rule, (learned, 0.3), (grid.cell_map, grid.score), (dq.cell_map, dq.score))
        by_pixel = fuse(rule, (np.asarray(learned), 0.3), (grid.heatmap, grid.score), (dq.heatmap, dq.score))
        np.testing.assert_array_equal(by_block[0], by_pixel[0])
        assert by_block[1] == by_pixel[1]
