"""The file's own condition (issue 19 item 3) and the evidence's reliability (issue 21 item 4), on real photos:
re-saved, resized, lossless, flat; and the per-band verdict rules that read them."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from exiflang.forensics.calibration import CANNOT_JUDGE, Band, Calibration, default_bands
from exiflang.forensics.condition import (BANDS, HIGH_QUALITY, FileCondition, estimate_quality, ijg_table,
                                          read_condition)
from exiflang.forensics.fusion import FusionRule
from exiflang.forensics.fusion_bands import MIN_AUC, BandFusion, ConditionalFusion, fuse_file
from exiflang.forensics.reliability import measure_reliability
from exiflang.imageio import load_rgb


@pytest.fixture(scope="module")
def camera_photo(photos_dir):
    """A held-in camera JPEG as the camera wrote it (1024x768 lossless crop, the camera's own tables)."""
    path = sorted(photos_dir.rglob("*.jpg"))[0]
    image, _ = load_rgb(path)
    return path, image


def _save(image: np.ndarray, path, **options):
    Image.fromarray(image).save(path, **options)
    return path


def test_the_ijg_table_is_libjpegs():
    """Pillow (libjpeg) writes exactly the table `ijg_table` computes, at every quality."""
    for q in (10, 50, 75, 90, 99):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=q)
        assert np.array_equal(np.asarray(Image.open(buf).quantization[0]), ijg_table(q)), q


@pytest.mark.parametrize("quality,band", [(95, "jpeg_high"), (90, "jpeg_mid"), (85, "jpeg_mid"), (75, "jpeg_low"),
                                          (60, "jpeg_low")])
def test_a_resaved_photo_reads_as_the_quality_it_was_saved_at(camera_photo, tmp_path, quality, band):
    _, image = camera_photo
    path = _save(image, tmp_path / "resaved.jpg", quality=quality)
    cond = read_condition(*image.shape[:2], path)
    assert (cond.lossy, cond.jpeg_quality, cond.standard_tables, cond.band) == (True, quality, True, band)
    assert f"about quality {quality} (standard tables)" in cond.describe()


def test_a_camera_file_has_its_own_tables(photos_dir):
    """Cameras write tables of their own: the estimate is the nearest IJG quality, flagged as non-standard."""
    own = []
    for path in sorted(photos_dir.rglob("*.jpg"))[:40]:
        with Image.open(path) as img:
            h, w = img.height, img.width
        cond = read_condition(h, w, path)
        assert cond.lossy and 1 <= cond.jpeg_quality <= 100 and cond.band in BANDS
        own.append(not cond.standard_tables)
    assert sum(own) >= 10  # most of the shared cameras' tables are not IJG's


def test_resized_and_small_files_fall_in_the_band_their_size_says(camera_photo, tmp_path):
    """The social-media chain (downscale, q85) and a 512-px image: the band comes from the file, not its history."""
    _, image = camera_photo
    h, w = image.shape[:2]
    for factor, band in ((0.8, "jpeg_mid"), (0.5, "small")):
        small = np.asarray(Image.fromarray(image).resize((round(w * factor), round(h * factor)), Image.BICUBIC))
        path = _save(small, tmp_path / f"social{factor}.jpg", quality=85)
        cond = read_condition(*small.shape[:2], path)
        assert cond.jpeg_quality == 85 and cond.band == band, (factor, cond)
    png = _save(image, tmp_path / "lossless.png")
    assert read_condition(h, w, png).band == "lossless" and read_condition(h, w, png).lossy is False
    assert read_condition(h, w, None).lossy is None  # an array: no file to read


def test_estimate_quality_names_a_nonstandard_table_nearest():
    table = ijg_table(HIGH_QUALITY).copy()
    table[5] += 1  # one step off: no longer IJG's, still nearest to it
    assert estimate_quality(table) == (HIGH_QUALITY, False)


def test_reliability_finds_flat_and_clipped_regions(camera_photo):
    _, image = camera_photo
    textured = measure_reliability(image)
    assert textured.patches == 48 and textured.usable_patches >= 30
    flat = image.copy()
    flat[:, : image.shape[1] * 3 // 4] = 255  # three quarters blown out
    rel = measure_reliability(flat)
    assert rel.usable_patches <= 12 and rel.flat_share >= 0.7
    assert rel.block_map[:, :4].sum() == 0 and rel.block_map.shape == (24, 32)


def _calibration(a: float = 1.0, b: float = 0.0) -> Calibration:
    return Calibration("platt", {"a": a, "b": b}, default_bands(), model_id="m", score="fusion", per_side=15)


def _fusion(auc: float) -> ConditionalFusion:
    bands = {band: BandFusion(FusionRule(), _calibration(), auc, 40, 40) for band in BANDS}
    return ConditionalFusion(bands, model_id="m", per_side=15)


def test_a_band_that_does_not_separate_gives_cannot_judge_with_its_auc():
    cond = FileCondition(768, 1024, 48, True, 75, True)
    d = _fusion(MIN_AUC - 0.05).decide(5.0, cond, "m", 15, 128)
    assert d.verdict == CANNOT_JUDGE and "AUC 0.65" in d.reason and d.probability > 0.99
    d = _fusion(0.9).decide(5.0, cond, "m", 15, 128)
    assert d.verdict == "likely manipulated" and d.reason is None and d.caveat is None


def test_small_flat_other_model_and_other_density_are_said():
    fusion = _fusion(0.9)
    small = fusion.decide(5.0, FileCondition(256, 384, 6, True, 75, True), "m", 15, 128)
    assert small.verdict == CANNOT_JUDGE and small.reason.startswith("too small: 6")
    flat = measure_reliability(np.full((768, 1024, 3), 250, np.uint8))
    d = fusion.decide(5.0, FileCondition(768, 1024, 48, False), "m", 15, 128, flat)
    assert d.verdict == CANNOT_JUDGE and d.reason.startswith("mostly flat or saturated: only 0 of its 48")
    other = fusion.decide(5.0, FileCondition(768, 1024, 48, False), "another-model", 15, 128)
    assert other.verdict is None and "calibrated with model m" in other.caveat
    denser = fusion.decide(-5.0, FileCondition(768, 1024, 48, False), "m", 30, 128)
    assert denser.verdict == "likely authentic" and "30 patches per side, calibrated at 15" in denser.caveat
    big = fusion.decide(-5.0, FileCondition(3024, 4032, 23 * 31, True, 95, False), "m", 15, 128)
    assert big.verdict == "likely authentic" and big.caveat == ("its longer side is 4032 px (the calibration saw "
                                                                "512-1024 px)")
    assert fusion.decide(-5.0, FileCondition(384, 512, 12, True, 90, True), "m", 15, 128).caveat is None


def test_the_band_picks_its_own_rule():
    grid_rule, learned_rule = FusionRule(grid_gate=1.0, learned_weight=0.0), FusionRule(grid_gate=1e9, learned_weight=1.0)
    fusion = ConditionalFusion({"lossless": BandFusion(grid_rule), "jpeg_mid": BandFusion(learned_rule)})
    learned = np.full((4, 4), 0.9, np.float32), 0.5
    grid, dq = (np.zeros((4, 4), np.float32), 5.0), (np.full((4, 4), 0.1, np.float32), 0.0)
    heat, _, decision = fuse_file(fusion, learned, grid, dq, FileCondition(768, 1024, 48, False), "m", 15)
    assert np.allclose(heat, 0.0) and decision.verdict is None  # lossless: the grid map; no calibration, no verdict
    heat, _, _ = fuse_file(fusion, learned, grid, dq, FileCondition(768, 1024, 48, True, 90, True), "m", 15)
    assert np.allclose(heat, 0.9)  # q90: the learned map


def test_the_rule_file_round_trips_and_a_format_one_file_still_reads(tmp_path):
    import json

    fusion = _fusion(0.8)
    again = ConditionalFusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again.to_dict() == fusion.to_dict()
    old = ConditionalFusion.from_dict(json.loads(FusionRule(grid_gate=2.0).to_json()))
    assert set(old.bands) == set(BANDS) and old.rule_for_band("small").grid_gate == 2.0
    assert all(b.calibration is None for b in old.bands.values())
    assert isinstance(default_bands()[0], Band)


def test_a_band_says_when_a_file_is_outside_the_sizes_it_was_fitted_on():
    fusion = _fusion(0.9)
    fusion.bands["lossless"].long_sides = (1024, 1024)  # the tune script records each band's own fit sizes
    again = ConditionalFusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again.bands["lossless"].long_sides == (1024, 1024)
    lossless_800 = again.decide(-5.0, FileCondition(600, 800, 24, False), "m", 15, 128)
    assert lossless_800.caveat == "its longer side is 800 px (the calibration saw 1024 px)"
    q75_800 = again.decide(-5.0, FileCondition(600, 800, 24, True, 75, True), "m", 15, 128)
    assert q75_800.caveat is None  # a band without recorded sizes keeps the desk sets' 512-1024 px


def test_the_learned_map_leaning_manipulated_withholds_likely_authentic():
    fusion = _fusion(0.9)
    fusion.bands["lossless"].learned_calibration = _calibration()  # the learned score alone: p = 0.5 at score 0
    again = ConditionalFusion.from_dict(json.loads(json.dumps(fusion.to_dict())))
    assert again.to_dict() == fusion.to_dict()
    lossless = FileCondition(768, 1024, 48, False)
    dissent = again.decide(-5.0, lossless, "m", 15, 128, learned_score=2.0)
    assert dissent.verdict == "inconclusive" and dissent.probability < 0.01
    assert "the learned map alone leans manipulated" in dissent.reason
    agree = again.decide(-5.0, lossless, "m", 15, 128, learned_score=-2.0)
    assert agree.verdict == "likely authentic" and agree.reason is None
    red = again.decide(5.0, lossless, "m", 15, 128, learned_score=2.0)
    assert red.verdict == "likely manipulated" and red.reason is None  # the rule only ever withholds green
    other_band = again.decide(-5.0, FileCondition(768, 1024, 48, True, 90, True), "m", 15, 128, learned_score=2.0)
    assert other_band.verdict == "likely authentic"  # a band fitted without it keeps its verdict
