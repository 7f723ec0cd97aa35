"""Issue 19, the desk regime: twins re-saved at q95/q90/q75, the social-media chain, small images, small pastes.

Every claim is read back from the files themselves: JPEG quality from the quantisation tables, sizes from the
images, mask fractions from the masks; the composites are the default set's (same rows, same pixels).
"""
from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from exiflang.eval.datasets import load_dataset
from exiflang.eval.splices import TWIN_GROUPS, make_splices, rebuild_splices

DESK = ["jpeg95", "jpeg90", "jpeg75", "social", "small_image"]
QUALITY = {"jpeg95": 95, "jpeg90": 90, "jpeg75": 75, "social": 85, "small_image": 90}


def _rows(manifest: Path) -> list[dict]:
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _tables_by_quality() -> dict[int, dict]:
    """libjpeg's (IJG) quantisation tables at every quality 1..100, as Pillow reads them back from a file."""
    out = {}
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, format="JPEG", quality=q, subsampling=2)
        out[q] = Image.open(buf).quantization
    return out


def quality_from_tables(img: Image.Image, tables: dict[int, dict]) -> int | None:
    """The IJG quality whose tables the file carries (None: no standard quality matches)."""
    found = [q for q, t in tables.items() if t == img.quantization]
    return found[0] if len(found) == 1 else None


@pytest.fixture(scope="module")
def desk(photos_dir, tmp_path_factory):
    """Held-out composites with the desk twins (3 + 2), and small pastes from the same seed (3 + 2, q90 twin)."""
    root = tmp_path_factory.mktemp("desk")
    make_splices(photos_dir, root / "big", n=3, seed=21, n_authentic=2, cameras="heldout", twins="desk", progress=False)
    make_splices(photos_dir, root / "small", n=3, seed=21, n_authentic=2, cameras="heldout", twins="jpeg90",
                 paste_fraction=(0.005, 0.03), progress=False)
    return root


def test_every_desk_twin_carries_the_quality_it_claims(desk):
    tables = _tables_by_quality()
    assert len({str(t) for t in tables.values()}) == 100  # every quality has its own tables, so the read-back is exact
    main = _rows(desk / "big" / "manifest.csv")
    assert all(r["twins"] == ";".join(DESK) for r in main)
    for twin in DESK:
        rows = _rows(desk / "big" / twin / "manifest.csv")
        assert [r["pixel_sha256"] for r in rows] == [r["pixel_sha256"] for r in main]  # the same composites
        ds = load_dataset(f"generic:{desk / 'big' / twin}", strict=True)
        assert (ds.n_manipulated, ds.n_authentic) == (3, 2)
        for r in rows:
            img = Image.open(desk / "big" / twin / r["image"])
            assert img.format == "JPEG" and JpegImagePlugin.get_sampling(img) == 2  # 4:2:0
            assert quality_from_tables(img, tables) == QUALITY[twin] == int(r["jpeg_quality"]), (twin, r["image"])
            assert r["variant"] == twin and (int(r["image_width"]), int(r["image_height"])) == img.size


def test_resaved_twins_keep_size_and_pixels_and_masks(desk):
    for twin in ("jpeg95", "jpeg90", "jpeg75"):
        errors = []
        for r in _rows(desk / "big" / twin / "manifest.csv"):
            img = Image.open(desk / "big" / twin / r["image"])
            lossless = Image.open(desk / "big" / r["lossless"].removeprefix("../"))
            assert img.size == lossless.size and r["scale"] == "1"
            diff = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(lossless.convert("RGB"), np.int16))
            errors.append(diff.mean())
            if r["label"] == "1":
                full = np.asarray(Image.open(desk / "big" / "masks" / Path(r["mask"]).name))
                assert np.array_equal(np.asarray(Image.open(desk / "big" / twin / r["mask"])), full)
        assert max(errors) < 6
    # Coarser tables, larger error: q95 < q90 < q75 on the very same pixels.
    err = {t: np.mean([np.abs(np.asarray(Image.open(desk / "big" / t / r["image"]).convert("RGB"), np.int16)
                              - np.asarray(Image.open(desk / "big" / r["lossless"][3:]).convert("RGB"), np.int16)).mean()
                       for r in _rows(desk / "big" / t / "manifest.csv")]) for t in ("jpeg95", "jpeg90", "jpeg75")}
    assert err["jpeg95"] < err["jpeg90"] < err["jpeg75"]


def _check_resized_mask(desk: Path, twin: str, r: dict, size: tuple[int, int]) -> None:
    """The twin's mask: the image's size, binary, and the full mask resized by area (> half covered)."""
    mask = np.asarray(Image.open(desk / "big" / twin / r["mask"]))
    assert mask.shape == (size[1], size[0]) and set(np.unique(mask)) <= {0, 255}
    full = np.asarray(Image.open(desk / "big" / "masks" / Path(r["mask"]).name)) == 255
    assert abs((mask == 255).mean() - full.mean()) < 0.01
    # Independent check: the pasted share of each output pixel's footprint, by summing full-resolution pixels.
    h, w = full.shape
    ys = (np.arange(size[1]) + 0.5) * h / size[1]
    xs = (np.arange(size[0]) + 0.5) * w / size[0]
    centre = full[np.clip(ys.astype(int), 0, h - 1)][:, np.clip(xs.astype(int), 0, w - 1)]
    assert np.mean(centre == (mask == 255)) > 0.97  # differs only along the outline


def test_social_chain_factor_in_range_recorded_and_applied(desk):
    factors = []
    for r in _rows(desk / "big" / "social" / "manifest.csv"):
        img = Image.open(desk / "big" / "social" / r["image"])
        factor = float(r["scale"])
        assert 0.5 <= factor <= 0.8
        w, h = int(r["width"]), int(r["height"])
        assert img.size == (round(factor * w), round(factor * h))
        factors.append(factor)
        if r["label"] == "1":
            _check_resized_mask(desk, "social", r, img.size)
        else:
            assert r["mask"] == ""
    assert len(set(factors)) == len(factors)  # drawn per image, not one factor for all


def test_small_images_have_a_512_pixel_long_side(desk):
    for r in _rows(desk / "big" / "small_image" / "manifest.csv"):
        img = Image.open(desk / "big" / "small_image" / r["image"])
        w, h = int(r["width"]), int(r["height"])
        assert max(img.size) == 512 and max(w, h) > 512
        assert abs(img.size[0] / img.size[1] - w / h) < 2 / min(img.size)  # aspect kept to the pixel
        assert float(r["scale"]) == pytest.approx(512 / max(w, h), abs=1e-4)
        if r["label"] == "1":
            _check_resized_mask(desk, "small_image", r, img.size)


def test_small_pastes_share_pairs_and_controls_and_cover_half_to_three_percent(desk, photos_dir):
    from exiflang.imageio import load_rgb

    big, small = _rows(desk / "big" / "manifest.csv"), _rows(desk / "small" / "manifest.csv")
    assert [r["label"] for r in small] == ["1"] * 3 + ["0"] * 2
    for b, s in zip(big, small):
        assert (s["target"], s["source"], s["target_camera"], s["source_camera"]) == \
               (b["target"], b["source"], b["target_camera"], b["source_camera"])
        assert s["area_range"] == "0.005,0.03" and b["area_range"] == "0.05,0.3"
        if s["label"] == "0":
            assert s["pixel_sha256"] == b["pixel_sha256"]  # the very same controls
            continue
        mask = np.asarray(Image.open(desk / "small" / s["mask"])) == 255
        assert 0.005 <= mask.mean() <= 0.03 and float(s["area_frac"]) == pytest.approx(mask.mean(), abs=1e-4)
        # A real paste: inside the mask the source's pixels, outside the target's, untouched.
        comp = np.asarray(Image.open(desk / "small" / s["lossless"]).convert("RGB"))
        target = load_rgb(photos_dir / s["target"])[0]
        source = load_rgb(photos_dir / s["source"])[0]
        sx, sy, dx, dy = (int(s[k]) for k in ("src_x", "src_y", "dst_x", "dst_y"))
        ys, xs = np.nonzero(mask)
        assert np.array_equal(comp[ys, xs], source[ys - dy + sy, xs - dx + sx])
        assert np.array_equal(comp[~mask], target[~mask])
    tables = _tables_by_quality()
    for r in _rows(desk / "small" / "jpeg90" / "manifest.csv"):
        assert quality_from_tables(Image.open(desk / "small" / "jpeg90" / r["image"]), tables) == 90


def test_desk_sets_are_deterministic_and_rebuild_from_the_recipe(desk, photos_dir, tmp_path):
    import shutil

    make_splices(photos_dir, tmp_path / "big", n=3, seed=21, n_authentic=2, cameras="heldout", twins="desk",
                 progress=False)
    make_splices(photos_dir, tmp_path / "small", n=3, seed=21, n_authentic=2, cameras="heldout", twins="jpeg90",
                 paste_fraction=(0.005, 0.03), progress=False)
    assert _digest(tmp_path / "big") == _digest(desk / "big")
    assert _digest(tmp_path / "small") == _digest(desk / "small")
    # Another seed: other composites, other social factors.
    make_splices(photos_dir, tmp_path / "other", n=3, seed=22, n_authentic=2, cameras="heldout", twins="social",
                 progress=False)
    assert [r["scale"] for r in _rows(tmp_path / "other" / "social" / "manifest.csv")] != \
           [r["scale"] for r in _rows(desk / "big" / "social" / "manifest.csv")]
    # Fewer composites of the same seed: the same first images, the same social factors.
    make_splices(photos_dir, tmp_path / "fewer", n=2, seed=21, n_authentic=0, cameras="heldout", twins="social",
                 progress=False)
    fewer = _rows(tmp_path / "fewer" / "social" / "manifest.csv")
    assert [(r["pixel_sha256"], r["scale"]) for r in fewer] == \
           [(r["pixel_sha256"], r["scale"]) for r in _rows(desk / "big" / "social" / "manifest.csv")[:2]]
    # The recipe (manifest + masks) re-creates every desk twin byte for byte.
    recipe = tmp_path / "recipe"
    (recipe / "masks").mkdir(parents=True)
    shutil.copy(desk / "big" / "manifest.csv", recipe)
    for p in (desk / "big" / "masks").iterdir():
        shutil.copy(p, recipe / "masks")
    assert rebuild_splices(photos_dir, recipe, progress=False) == 5
    assert _digest(recipe) == _digest(desk / "big")


def test_cli_twins_by_name_and_group(photos_dir, tmp_path, capsys):
    from exiflang.cli import build_parser, main

    base = ["make-splices", str(photos_dir), "--out", str(tmp_path / "o")]
    parser = build_parser()
    assert parser.parse_args(base + ["--twins"]).twins == list(TWIN_GROUPS["classic"])  # bare --twins: as before
    assert parser.parse_args(base + ["--twins", "desk"]).twins == list(TWIN_GROUPS["desk"])
    assert parser.parse_args(base + ["--twins", "social,jpeg95,social"]).twins == ["social", "jpeg95"]
    assert parser.parse_args(base).twins is None
    for argv, expect in ((["--twins", "jpeg85"], "unknown twin 'jpeg85'"),
                         (["--paste-fraction", "0.03,0.005"], "0 < LO <= HI <= 0.3"),
                         (["--paste-fraction", "small"], "expected LO,HI")):
        with pytest.raises(SystemExit) as exc:
            main(base + argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and expect in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    assert main(base + ["--n", "1", "--n-authentic", "1", "--cameras", "heldout", "--twins", "small_image,jpeg95"]) == 0
    out = capsys.readouterr().out
    assert "small_image/manifest.csv" in out and "jpeg95/manifest.csv" in out
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir()) == ["authentic", "jpeg95", "masks",
                                                                                 "small_image", "spliced"]
