"""JPEG-aligned patch grids, candidate image scores and the fused detector, on real camera photos."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from exiflang.eval.bench import FusionMethod, build_method
from exiflang.forensics import make_grid, model_grid
from exiflang.forensics.fusion import FusionRule, fuse
from exiflang.forensics.scores import CANDIDATES, IMAGE_SCORE, candidate_scores
from exiflang.imageio import load_rgb
from exiflang.models import create_model


def _jpeg(arr: np.ndarray, quality: int = 85) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def photo(photos_dir):
    """A real camera photo with texture (the harbour scene), as stored."""
    path = next(photos_dir.glob("Asahi-Optical-Co-Ltd_PENTAX-Optio-430/*.jpg"))
    return load_rgb(path)[0]


@pytest.fixture(scope="module")
def shifted_paste(photo):
    """The photo with a rectangle whose 8x8 grid is shifted by (3, 5) (JPEG-compressed on another grid)."""
    base = _jpeg(photo[:384, :512])
    other = np.roll(_jpeg(np.roll(photo[:384, :512], (3, 5), (0, 1)), 80), (-3, -5), (0, 1))
    out, mask = base.copy(), np.zeros(base.shape[:2], bool)
    out[96:288, 128:352], mask[96:288, 128:352] = other[96:288, 128:352], True
    return out, mask


def test_aligned_grid_starts_on_the_jpeg_grid_with_a_stride_of_whole_blocks(photo):
    grid = make_grid(768, 1024, 128, 30, origin=(5, 3))
    assert grid.stride % 8 == 0 and grid.origin == (5, 3)
    assert set(grid.patch_origins()[:, 0] % 8) == {5} and set(grid.patch_origins()[:, 1] % 8) == {3}
    assert grid.patch_origins()[:, 0].max() + 128 <= 768 and grid.patch_origins()[:, 1].max() + 128 <= 1024
    # Pixels before the origin join the first cells; every pixel lands in a cell.
    cells = grid.cells_to_pixels(np.arange(np.prod(grid.cell_shape)).reshape(grid.cell_shape))
    assert cells[0, 0] == 0 and cells.shape == (768, 1024)
    # A phase-aware model's grid follows the image's own JPEG grid; other models keep the paper's grid.
    cropped = _jpeg(photo[:400, :520])[3:, 5:]
    aware, plain = create_model("tiny"), create_model("tiny")
    aware.config = replace(aware.config, grid_aligned=True)
    assert model_grid(cropped, aware).origin == (5, 3)
    assert model_grid(cropped, plain).origin == (0, 0)
    assert model_grid(cropped, plain).stride == make_grid(*cropped.shape[:2], 64).stride


def test_candidate_scores_are_finite_and_the_shipped_one_is_among_them(shifted_paste):
    from exiflang.forensics import detect

    result = detect(shifted_paste[0], create_model("tiny").eval())
    scores = candidate_scores(result)
    assert set(scores) == set(CANDIDATES) and all(np.isfinite(v) for v in scores.values())
    assert IMAGE_SCORE in CANDIDATES and result.score == pytest.approx(scores[IMAGE_SCORE])
    assert result.gap == pytest.approx(scores["gap"])


def test_fuse_follows_the_grid_detector_when_it_is_significant():
    learned, grid, dq = np.full((4, 4), 0.2, np.float32), np.eye(4, dtype=np.float32), np.full((4, 4), 0.6, np.float32)
    rule = FusionRule(grid_gate=3.0, grid_weight=1.0, learned_weight=0.5,
                      calibration={"learned": {"median": 0.0, "scale": 1.0}, "grid": {"median": 1.0, "scale": 2.0},
                                   "dq": {"median": 0.0, "scale": 1.0}})
    heat, score = fuse(rule, (learned, 0.5), (grid, 9.0), (dq, 1.5))
    assert np.array_equal(heat, grid) and score == pytest.approx(4.0)  # (9 - 1) / 2 beats 0.5*0.5 + 0.5*1.5
    heat, score = fuse(rule, (learned, 0.5), (grid, 1.0), (dq, 1.5))
    assert np.allclose(heat, 0.4) and score == pytest.approx(1.0)  # below the gate: the learned/dq mix
    again = FusionRule(**{**rule.__dict__})
    assert FusionRule(**__import__("json").loads(rule.to_json())) == again


def test_fusion_method_flags_a_paste_that_kept_another_grid(shifted_paste, photo, tmp_path):
    image, mask = shifted_paste
    method = build_method("fusion", "default", tmp_path / "cache")
    assert isinstance(method, FusionMethod) and method.uses_trained_model
    analysis = method.analyse(image)
    inside, outside = analysis.heatmap[mask].mean(), analysis.heatmap[~mask].mean()
    assert analysis.extra["grid_score"] > method.rule.grid_gate
    assert inside > 0.5 > outside, (inside, outside)
    authentic = method.analyse(_jpeg(photo[:384, :512]))  # the same scene without the paste
    assert authentic.score < analysis.score and authentic.extra["grid_score"] < method.rule.grid_gate
