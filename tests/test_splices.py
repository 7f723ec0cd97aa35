"""Composite generator: exact masks, different cameras, determinism, the generic layout."""
from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
from PIL import Image

from exiflang.eval.datasets import load_dataset, load_mask
from exiflang.eval.splices import SpliceError, make_splices, rebuild_splices, smooth_region
from exiflang.imageio import load_rgb


def _rows(manifest):
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


def _pil_camera(path):
    """Make/Model straight from the file's EXIF (independent of the generator's own lookup)."""
    exif = Image.open(path).getexif()
    return str(exif.get(0x010F, "")).strip("\x00 ").lower(), str(exif.get(0x0110, "")).strip("\x00 ").lower()


@pytest.fixture(scope="module")
def splice_dir(photos_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("splices")
    make_splices(photos_dir, out, n=5, seed=3, jpeg_quality=90, n_authentic=3, progress=False)
    return out


def test_mask_lines_up_with_pasted_pixels_exactly(splice_dir, photos_dir):
    rows = [r for r in _rows(splice_dir / "manifest.csv") if r["label"] == "1"]
    assert len(rows) == 5
    for r in rows:
        comp = np.asarray(Image.open(splice_dir / r["lossless"]).convert("RGB"))
        mask = np.asarray(Image.open(splice_dir / r["mask"])) == 255
        target = load_rgb(photos_dir / r["target"])[0]
        source = load_rgb(photos_dir / r["source"])[0]
        sx, sy, dx, dy = (int(r[k]) for k in ("src_x", "src_y", "dst_x", "dst_y"))
        h = min(target.shape[0] - dy, source.shape[0] - sy)
        w = min(target.shape[1] - dx, source.shape[1] - sx)
        region = mask[dy:dy + h, dx:dx + w]
        assert region.sum() == mask.sum()  # the whole mask lies in the pasted window
        # Inside the mask: A's pixels, untouched; outside: B's pixels, untouched.
        assert np.array_equal(comp[dy:dy + h, dx:dx + w][region], source[sy:sy + h, sx:sx + w][region])
        assert np.array_equal(comp[~mask], target[~mask])
        assert np.mean(np.any(comp[mask] != target[mask], axis=1)) > 0.5  # the region really changed
        assert 0.04 <= mask.mean() <= 0.31
        assert float(r["area_frac"]) == pytest.approx(mask.mean(), abs=1e-4)


def test_source_and_target_come_from_different_cameras(splice_dir, photos_dir):
    for r in _rows(splice_dir / "manifest.csv"):
        if r["label"] != "1":
            continue
        src, dst = _pil_camera(photos_dir / r["source"]), _pil_camera(photos_dir / r["target"])
        assert src[1] and dst[1] and src != dst
        assert (r["source_model"].lower(), r["target_model"].lower()) == (src[1], dst[1])


def test_deterministic_for_a_seed(photos_dir, tmp_path):
    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        make_splices(photos_dir, tmp_path / name, n=2, seed=seed, n_authentic=1, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["manifest.csv"] != digest(tmp_path / "c")["manifest.csv"]


def test_rebuild_from_recipe_gives_the_same_pixels(splice_dir, photos_dir, tmp_path):
    import shutil

    recipe = tmp_path / "recipe"
    shutil.copytree(splice_dir, recipe, ignore=lambda d, names: [n for n in names if n.endswith(".jpg")
                                                                  or (n.endswith(".png") and "masks" not in d)])
    assert {p.parent.name for p in recipe.rglob("*.*")} == {"recipe", "masks"}  # only masks + manifest
    assert rebuild_splices(photos_dir, recipe, progress=False) == 8
    for r in _rows(splice_dir / "manifest.csv"):
        for col in ("lossless", "image"):  # PNG, and the JPEG re-save of identical pixels at the same quality
            assert np.array_equal(np.asarray(Image.open(splice_dir / r[col])), np.asarray(Image.open(recipe / r[col])))


def test_output_is_a_generic_benchmark_dataset(splice_dir):
    ds = load_dataset(f"generic:{splice_dir}", strict=True)
    assert (ds.n_manipulated, ds.n_authentic) == (5, 3)
    for s in ds.samples:
        assert s.image.suffix == ".jpg"  # --jpeg-quality: the benchmark reads the JPEG re-saves
        img = Image.open(s.image)
        assert img.format == "JPEG"
        mask = load_mask(s, (img.height, img.width))
        assert mask.any() == bool(s.label)


def test_region_shape_and_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    for frac in (0.05, 0.3):
        region = smooth_region(600, 800, frac, rng)
        assert region.sum() / (600 * 800) == pytest.approx(frac, rel=0.03)
    (tmp_path / "one").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "one" / "x.jpg")
    with pytest.raises(SpliceError, match="at least 2 cameras"):
        make_splices(tmp_path / "one", tmp_path / "out", n=1, progress=False)
    with pytest.raises(SpliceError, match="not found"):
        make_splices(tmp_path / "nope", tmp_path / "out", n=1, progress=False)
