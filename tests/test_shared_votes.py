"""The fusion counts the JPEG-grid votes once per image (issue 23, item 4: no repeated per-image work) and hands
them to the learned map's grid, the grid analysis and the pixel-domain dq analysis: each component equals what it
gives when it counts the votes itself, on a camera JPEG and on a lossless PNG of a shifted crop."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exiflang.eval.classical import DQMethod, GridMethod
from exiflang.eval.methods import build_method
from exiflang.forensics import jpeg_grid as J
from exiflang.imageio import load_rgb
from photo_helpers import shared_photos


@pytest.fixture(scope="module")
def fusion():
    return build_method("fusion", per_side=8, batch_size=16)


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a.heatmap), np.asarray(b.heatmap))
    assert a.score == b.score


@pytest.mark.parametrize("kind", ["jpeg", "png-shifted"])
def test_components_with_shared_votes_equal_their_own(fusion, photos_dir, tmp_path, kind):
    path = shared_photos(photos_dir, 1)[0]
    if kind == "png-shifted":  # a lossless crop from (3, 5), its camera grid now starts at (5, 3): dq reads pixels
        image, _ = load_rgb(path)
        path = tmp_path / "shifted.png"
        Image.fromarray(image[3:, 5:]).save(path)
    image, _ = load_rgb(path)
    parts = fusion.components(image, path)
    _same(parts["learned"], fusion.learned.analyse(image))
    _same(parts["grid"], GridMethod().analyse(image))
    _same(parts["dq"], DQMethod().analyse(image, path=path))
    origin = J.grid_origin(image)
    assert origin == ((5, 3) if kind == "png-shifted" else (0, 0))
    assert parts["learned"].result.grid.origin == origin  # the learned map's patches sit on the camera grid


def test_votes_of_another_image_are_refused(photos_dir):
    image, _ = load_rgb(shared_photos(photos_dir, 1)[0])
    with pytest.raises(J.ForensicsError, match="votes of shape"):
        J.grid_analysis(image, J.votes_by_band(image[:-8]))
