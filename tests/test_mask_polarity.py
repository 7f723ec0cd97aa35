"""One polarity rule for the heatmap and the mask: the mask always covers the hotter side (issue 14, item 7)."""
from __future__ import annotations

import numpy as np
import pytest

from exiflang.forensics import Detector
from exiflang.forensics.ncut import pick_side

# Real images where the old rule ("the smaller side of the cut") put the mask on the cold side: mean heat
# inside 0.075 vs 0.561 outside (the CASIA splice of the issue), and two authentic iPhone photos.
INVERTED_BEFORE = ["casia1/tampered/Sp_D_CNN_R_art0027_art0066_0100.jpg",
                   "photos/Apple_iPhone-6s/train.jpg", "photos/Apple_iPhone-XR/IMG_3610.jpg"]
# ... and images where it already agreed (the new rule must keep those masks).
AGREED_BEFORE = ["photos/Apple_iPhone-8/apple_iPhone8_1_1.jpg", "casia1/authentic/Au_ani_0002.jpg",
                 "casia1/tampered/Sp_D_CND_A_sec0056_sec0015_0282.jpg"]


@pytest.fixture(scope="module")
def detector():
    return Detector.load("default")


def _inside_outside(result) -> tuple[float, float, bool]:
    """Mean heat inside and outside the mask, over the full-resolution pixel maps; whether it is the smaller side."""
    heat, mask = result.heatmap, result.mask
    assert heat.shape == mask.shape == result.image_size and 0 < mask.sum() < mask.size
    return float(heat[mask].mean()), float(heat[~mask].mean()), bool(mask.mean() <= 0.5)


@pytest.mark.parametrize("rel", INVERTED_BEFORE + AGREED_BEFORE)
def test_mask_covers_the_hotter_side(detector, photos_dir, rel):
    result = detector.detect(photos_dir.parent / rel)
    inside, outside, smaller = _inside_outside(result)
    assert inside > outside + 0.1, (rel, inside, outside)
    # The image's flagged region (heatmap >= 0.5) lies mostly inside the mask, as a reader of both expects.
    flagged = result.heatmap >= 0.5
    assert flagged.any() and (flagged & result.mask).sum() > 0.5 * flagged.sum()
    if rel in AGREED_BEFORE:
        assert smaller  # nothing changes where the smaller side was already the hotter one
    else:
        assert not smaller  # here the hotter side is the larger one: the old rule pointed at the other


def test_pick_side_rule():
    areas = np.ones(6)
    side = np.array([1, 1, 0, 0, 0, 0], bool)
    assert pick_side(side, areas, np.array([0.9, 0.8, 0.1, 0.0, 0.2, 0.1])).tolist() == side.tolist()
    assert pick_side(side, areas, np.array([0.1, 0.0, 0.6, 0.9, 0.7, 0.8])).tolist() == (~side).tolist()
    # equal heat (a flat map) or no heat: the smaller side, as before
    assert pick_side(~side, areas, np.zeros(6)).tolist() == side.tolist()
    assert pick_side(~side, areas).tolist() == side.tolist()
    # areas weigh the means: outside, one large cold cell outweighs three small hot ones (unweighted: 0.75 > 0.5)
    assert pick_side(side, np.array([1, 1, 10, 1, 1, 1.0]), np.array([0.5, 0.5, 0.0, 1, 1, 1])).tolist() == \
        side.tolist()
