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


# ------------------------------------------------------------------ camera-disjoint composites, phase, twins
def _manifest_keys(photos_dir):
    """camera_key of every photo, read straight from the collection's MANIFEST.csv (not the generator's lookup)."""
    from exiflang.data.cameras import camera_key

    return {r["path"]: camera_key(r["make"], r["model"]) for r in _rows(photos_dir / "MANIFEST.csv")}


@pytest.fixture(scope="module")
def heldout_dir(photos_dir, tmp_path_factory):
    """Held-out cameras only, block-aligned pastes, with the JPEG / resized twins (small: 3 + 2 images)."""
    out = tmp_path_factory.mktemp("heldout")
    make_splices(photos_dir, out, n=3, seed=11, n_authentic=2, cameras="heldout", phase="keep", twins=True,
                 progress=False)
    return out


def test_heldout_filter_uses_only_heldout_cameras_and_different_ones(heldout_dir, photos_dir):
    from exiflang.data.cameras import is_heldout

    keys = _manifest_keys(photos_dir)
    rows = _rows(heldout_dir / "manifest.csv")
    assert [r["label"] for r in rows] == ["1"] * 3 + ["0"] * 2
    for r in rows:
        assert r["target_camera"] == keys[r["target"]] and is_heldout(r["target_camera"])
        assert r["camera_filter"] == "heldout:camera-split-v1" and r["phase"] == "keep"
        if r["label"] == "1":
            assert r["source_camera"] == keys[r["source"]] and is_heldout(r["source_camera"])
            assert r["source_camera"] != r["target_camera"]


def test_train_and_file_filters(photos_dir, tmp_path):
    from exiflang.data.cameras import is_heldout
    from exiflang.eval.splices import list_photos, select_cameras

    photos = list_photos(photos_dir)
    train, label = select_cameras(photos, "train")
    held, _ = select_cameras(photos, "heldout")
    assert label == "train:camera-split-v1" and not any(is_heldout(p.camera) for p in train)
    assert len(train) + len(held) == len(photos) and len(held) > 0
    # A list file: un-normalised spellings are normalised with camera_key; comments and blanks are skipped.
    listed = tmp_path / "cams.txt"
    listed.write_text("# two cameras\nNIKON CORPORATION|NIKON D70s\n\nsamsung|gt-i9300\n")
    make_splices(photos_dir, tmp_path / "out", n=2, seed=1, n_authentic=1, cameras=listed, progress=False)
    rows = _rows(tmp_path / "out" / "manifest.csv")
    cams = {r["target_camera"] for r in rows} | {r["source_camera"] for r in rows if r["label"] == "1"}
    assert cams == {"nikon|nikon d70s", "samsung|gt-i9300"}
    assert rows[0]["camera_filter"].startswith("file:cams.txt:")
    listed.write_text("nikon|nikon d70s\nnobody|no such camera\n")
    with pytest.raises(SpliceError, match="at least 2 cameras"):
        select_cameras(photos, listed)


def test_phase_keep_preserves_the_8x8_phase(heldout_dir, photos_dir):
    for r in _rows(heldout_dir / "manifest.csv"):
        if r["label"] != "1":
            continue
        sx, sy, dx, dy = (int(r[k]) for k in ("src_x", "src_y", "dst_x", "dst_y"))
        assert (dx - sx) % 8 == 0 and (dy - sy) % 8 == 0
        assert r["grid_shift_x"] == r["grid_shift_y"] == "0"
        # The pixels really are the source's, moved by a multiple of 8.
        comp = np.asarray(Image.open(heldout_dir / r["lossless"]).convert("RGB"))
        mask = np.asarray(Image.open(heldout_dir / r["mask"])) == 255
        source = load_rgb(photos_dir / r["source"])[0]
        ys, xs = np.nonzero(mask)
        assert np.array_equal(comp[ys, xs], source[ys - dy + sy, xs - dx + sx])


def test_twins_hold_the_same_rows_at_their_sizes_and_qualities(heldout_dir):
    from PIL import JpegImagePlugin

    from exiflang.eval.splices import TWINS

    main = _rows(heldout_dir / "manifest.csv")
    assert all(r["twins"] == ";".join(TWINS) for r in main)
    luma_q = {}
    for twin, (quality, scale) in TWINS.items():
        rows = _rows(heldout_dir / twin / "manifest.csv")
        assert len(rows) == len(main)
        ds = load_dataset(f"generic:{heldout_dir / twin}", strict=True)
        assert (ds.n_manipulated, ds.n_authentic) == (3, 2)
        for r, m in zip(rows, main):
            same = ("label", "target", "source", "target_camera", "source_camera", "src_x", "dst_x", "pixel_sha256")
            assert {k: r[k] for k in same} == {k: m[k] for k in same}
            assert r["variant"] == twin and r["lossless"] == "../" + m["lossless"] and int(r["jpeg_quality"]) == quality
            img = Image.open(heldout_dir / twin / r["image"])
            lossless = Image.open(heldout_dir / m["lossless"])
            assert img.format == "JPEG" and JpegImagePlugin.get_sampling(img) == 2  # 4:2:0
            assert img.size == (round(scale * lossless.width), round(scale * lossless.height))
            assert (int(r["image_width"]), int(r["image_height"])) == img.size
            luma_q.setdefault(twin, sum(img.quantization[0]))
            if r["label"] == "1":
                mask = np.asarray(Image.open(heldout_dir / twin / r["mask"]))
                assert mask.shape == (img.height, img.width) and set(np.unique(mask)) <= {0, 255}
                full = np.asarray(Image.open(heldout_dir / m["mask"])) == 255
                assert abs((mask == 255).mean() - full.mean()) < 0.01
                if scale == 1.0:
                    assert np.array_equal(mask == 255, full)
            else:
                assert r["mask"] == ""
            if scale == 1.0:  # the very same composite, JPEG-compressed
                diff = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(lossless.convert("RGB"), np.int16))
                assert diff.mean() < 6
    assert luma_q["jpeg75"] > luma_q["jpeg90"] == luma_q["resized75_jpeg90"]  # coarser tables at q75


def test_twins_are_deterministic_and_rebuild_from_the_recipe(heldout_dir, photos_dir, tmp_path):
    import shutil

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    make_splices(photos_dir, tmp_path / "again", n=3, seed=11, n_authentic=2, cameras="heldout", phase="keep",
                 twins=True, progress=False)
    assert digest(tmp_path / "again") == digest(heldout_dir)  # byte-identical, twins included
    recipe = tmp_path / "recipe"
    (recipe / "masks").mkdir(parents=True)
    shutil.copy(heldout_dir / "manifest.csv", recipe)
    for p in (heldout_dir / "masks").iterdir():
        shutil.copy(p, recipe / "masks")
    assert rebuild_splices(photos_dir, recipe, progress=False) == 5
    assert digest(recipe) == digest(heldout_dir)
    with pytest.raises(SpliceError, match="twin"):
        rebuild_splices(photos_dir, recipe / "jpeg75", progress=False)


def test_cli_option_errors_are_one_line(photos_dir, tmp_path, capsys):
    from exiflang.cli import main

    one = tmp_path / "one.txt"
    one.write_text("nikon|nikon d70s\n")
    base = ["make-splices", str(photos_dir), "--out", str(tmp_path / "o"), "--n", "1"]
    for extra, expect in ((["--cameras", str(one)], "at least 2 cameras"),
                          (["--cameras", "heldoot"], "no camera-list file")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("exiflang make-splices: error:") and expect in err
    with pytest.raises(SystemExit) as exc:
        main(base + ["--phase", "sideways"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # ranges are checked at parse time (issue 14)
        main(base + ["--n", "0"])
    assert exc.value.code == 2 and "argument --n: must be in [1, 100000], got 0" in capsys.readouterr().err  # bounded (issue 20)
    assert not (tmp_path / "o" / "manifest.csv").exists()
