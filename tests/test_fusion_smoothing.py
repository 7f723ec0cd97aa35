"""The fused map's smoothing (`FusionRule.smooth_px`, chosen per band on validation p-mAP): a Gaussian of that
sigma on the map, applied after the score is read (so the score and the verdict do not change), at the map's own
pixel step, in place of the fused map, and absent from rules written before it (they load with 0); and the map's
polarity (`FusionRule.flip_majority`): a mostly-high map flipped, the score untouched."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from scipy import ndimage

from exiflang.forensics.fusion import SMOOTH_TRUNCATE, FusionRule, fuse
from exiflang.forensics.fusion_bands import ConditionalFusion


def _maps(seed: int = 0):
    rng = np.random.default_rng(seed)
    learned = rng.random((96, 128), dtype=np.float32)
    dq = (rng.random((96, 128)) > 0.7).astype(np.float32)  # blocky, noisy
    grid = np.zeros((96, 128), np.float32)
    return (learned, 0.4), (grid, 0.0), (dq, 1.2)


def test_smoothing_changes_the_map_not_the_score():
    rule = FusionRule(grid_gate=1.0, learned_weight=0.5, map_weight=0.5,
                      calibration={"contrast": {"median": 0.3, "scale": 0.05}})
    plain_heat, plain_score = fuse(rule, *_maps())
    heat, score = fuse(replace(rule, smooth_px=16.0), *_maps())
    assert score == plain_score  # the contrast term read the unsmoothed map
    expected = ndimage.gaussian_filter(plain_heat, 16.0, mode="nearest", truncate=SMOOTH_TRUNCATE)
    np.testing.assert_allclose(heat, expected, atol=1e-6)
    assert heat.std() < plain_heat.std() / 3


def test_a_map_of_every_4th_pixel_is_smoothed_by_a_quarter_of_the_sigma():
    rule = FusionRule(grid_gate=1.0, smooth_px=16.0)
    full, _ = fuse(replace(rule, smooth_px=0.0), *_maps())
    quarter, _ = fuse(rule, *_maps(), pixel_step=4)
    np.testing.assert_allclose(quarter, ndimage.gaussian_filter(full, 4.0, mode="nearest", truncate=SMOOTH_TRUNCATE), atol=1e-6)


def test_rules_written_before_smoothing_load_without_it(tmp_path):
    shipped = ConditionalFusion.load()
    data = shipped.to_dict()
    for band in data["bands"].values():
        band["rule"].pop("smooth_px", None)
    path = tmp_path / "old_rule.json"
    path.write_text(json.dumps(data))
    assert all(b.rule.smooth_px == 0.0 for b in ConditionalFusion.load(path).bands.values())


def _host_lit_maps():
    """Components whose fused map lights up most of the frame (as dq does where the host lacks the primary
    compression): a 20 % region low, the rest high."""
    learned = np.full((96, 128), 0.8, np.float32)
    learned[30:60, 40:80] = 0.1
    dq = learned.copy()
    return (learned, 0.4), (np.zeros_like(learned), 0.0), (dq, 1.2)


def test_a_mostly_high_map_is_flipped_only_under_flip_majority_and_the_score_stays():
    rule = FusionRule(grid_gate=1.0, learned_weight=0.5, map_weight=0.5,
                      calibration={"contrast": {"median": 0.3, "scale": 0.05}})
    plain, plain_score = fuse(rule, *_host_lit_maps())
    flipped, score = fuse(replace(rule, flip_majority=True), *_host_lit_maps())
    assert score == plain_score
    assert (plain >= 0.5).mean() > 0.5 and (flipped >= 0.5).mean() < 0.5
    np.testing.assert_allclose(flipped, 1.0 - plain, atol=1e-6)
    # a map whose high side is already the minority is left as it is
    minority, _ = fuse(replace(rule, flip_majority=True), *_maps())
    np.testing.assert_array_equal(minority, fuse(rule, *_maps())[0])


def test_rules_written_before_the_polarity_choice_load_without_flipping(tmp_path):
    data = ConditionalFusion.load().to_dict()
    for band in data["bands"].values():
        band["rule"].pop("flip_majority", None)
    path = tmp_path / "old_rule.json"
    path.write_text(json.dumps(data))
    assert not any(b.rule.flip_majority for b in ConditionalFusion.load(path).bands.values())
