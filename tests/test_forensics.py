"""Consistency maths on synthetic embeddings: planted blocks, polarity, score, guards, loop agreement."""
from __future__ import annotations

import numpy as np
import pytest

from exiflang.forensics import consistency_from_embeddings, make_grid
from exiflang.imageio import ImageTooSmallError
from exiflang.forensics.consistency import box_sum_full, mean_shift_mode, mode_consistency_map
from exiflang.forensics.heatmap import apply_polarity, cell_areas, normalised_inconsistency
from reference_consistency import loop_mode_consistency_map, loop_overlap_vote, overlap_vote


def planted_embeddings(grid, inside_patch, dim=16, noise=0.01, seed=0):
    """Two camera signatures: patches where inside_patch is True get the second one, plus a little noise."""
    rng = np.random.default_rng(seed)
    base, other = rng.normal(size=dim), rng.normal(size=dim)
    emb = np.where(inside_patch[:, None], other, base)
    return emb + noise * rng.normal(size=emb.shape)


def test_grid_follows_the_paper():
    g = make_grid(768, 1024, 128)
    assert g.stride == (1024 - 128) // 30 == 29
    assert (g.gy, g.gx) == (23, 31) and g.spread == 4 and g.cell_shape == (26, 34)
    last = g.patch_origins()[-1]
    assert last[0] + 128 <= 768 and last[1] + 128 <= 1024
    assert make_grid(40, 33, 32).stride == 1  # stride never drops to zero


@pytest.mark.parametrize("h, w", [(100, 500), (127, 127), (128, 128)])
def test_too_small_images_get_a_clear_error(h, w):
    with pytest.raises(ImageTooSmallError, match=r"too small: .*128"):
        make_grid(h, w, 128)


def test_planted_block_is_marked_exactly_without_overlap():
    # stride == patch: every cell is one patch, so the map must reproduce the block pixel for pixel.
    g = make_grid(80, 96, 8, per_side=11)
    assert g.stride == 8 and g.spread == 1
    block = np.zeros((g.gy, g.gx), dtype=bool)
    block[3:6, 4:9] = True
    res = consistency_from_embeddings(planted_embeddings(g, block.ravel()), g)
    expected = np.kron(block, np.ones((8, 8), dtype=bool))
    assert np.array_equal(res.heatmap >= 0.5, expected)
    assert res.heatmap[expected].min() > 0.95 and res.heatmap[~expected].max() < 0.05
    assert np.array_equal(res.mask, expected)
    assert res.heatmap.dtype == np.float32 and res.heatmap.shape == (80, 96)
    assert not res.flipped


def test_planted_block_with_overlapping_patches():
    g = make_grid(768, 1024, 128)
    origins = g.patch_origins() // g.stride  # grid indices
    k = g.spread
    # patches lying wholly inside cells rows 10..19, cols 12..23
    inside = (origins[:, 0] >= 10) & (origins[:, 0] + k <= 20) & (origins[:, 1] >= 12) & (origins[:, 1] + k <= 24)
    res = consistency_from_embeddings(planted_embeddings(g, inside), g)
    cover = np.zeros(g.cell_shape)  # how many inside patches cover each cell
    for y, x in origins[inside]:
        cover[y : y + k, x : x + k] += 1
    untouched, core = cover == 0, cover > 0
    assert res.cell_heatmap[untouched].max() < 0.05  # no inside patch -> fully consistent
    assert res.cell_heatmap[10 + k - 1 : 20 - k + 1, 12 + k - 1 : 24 - k + 1].min() > 0.95  # only inside patches
    flagged = res.cell_heatmap >= 0.5
    assert flagged.any() and core[flagged].all()
    assert res.gap > 0.5
    uniform = consistency_from_embeddings(planted_embeddings(g, np.zeros_like(inside)), g)
    assert res.score > uniform.score + 0.01  # whichever score is shipped, the planted region raises it


def test_polarity_flags_the_smaller_region():
    g = make_grid(80, 96, 8, per_side=11)
    big = np.zeros((g.gy, g.gx), dtype=bool)
    big[:, :8] = True  # 8 of 12 columns: the "splice" is the majority
    res = consistency_from_embeddings(planted_embeddings(g, big.ravel()), g)
    small_side = np.kron(~big, np.ones((8, 8), dtype=bool))
    assert np.array_equal(res.heatmap >= 0.5, small_side)
    assert np.array_equal(res.mask, small_side)
    # The rule itself: a map whose high side covers most of the image is flipped.
    areas = cell_areas(g)
    heat, flipped = apply_polarity(np.kron(big, 1.0)[: g.gy, : g.gx], areas)
    assert flipped and np.array_equal(heat >= 0.5, ~big)


def test_uniform_image_has_flat_heatmap_and_zero_score():
    g = make_grid(200, 300, 32)
    emb = np.tile(np.random.default_rng(1).normal(size=8), (g.n_patches, 1))  # every distance 0: radius guard
    res = consistency_from_embeddings(emb, g)
    assert np.all(res.heatmap == 0) and res.gap == 0.0 and abs(res.score) < 1e-9 and not res.mask.any()
    assert res.radius > 0


def test_score_ranks_spliced_above_authentic():
    g = make_grid(256, 320, 32)
    block = np.zeros((g.gy, g.gx), dtype=bool)
    block[5:15, 8:20] = True
    authentic = [consistency_from_embeddings(planted_embeddings(g, np.zeros(g.n_patches, bool), noise=0.3, seed=s), g)
                 for s in range(3)]
    spliced = [consistency_from_embeddings(planted_embeddings(g, block.ravel(), noise=0.3, seed=s), g) for s in range(3)]
    assert min(r.gap for r in spliced) > 2 * max(r.gap for r in authentic)
    assert min(r.score for r in spliced) > max(r.score for r in authentic)  # the shipped score too


def test_zero_radius_guard_with_many_duplicates():
    pts = np.zeros((20, 3))
    pts[15:] = [[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0], [5, 0, 0]]
    mode, radius = mean_shift_mode(pts)
    assert radius > 0 and np.allclose(mode, 0)


def test_box_filter_vote_matches_a_pair_loop():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 7))
    out = box_sum_full(x, 3, 1)
    naive = np.stack([x[:, max(0, c - 2) : c + 1].sum(1) for c in range(9)], axis=1)
    assert np.allclose(out, naive)
    g = make_grid(200, 260, 64, per_side=10)
    emb = rng.normal(size=(g.n_patches, 12))
    from exiflang.forensics.consistency import cosine_similarity_matrix

    fast = overlap_vote(cosine_similarity_matrix(emb), g.gy, g.gx, g.spread)
    assert np.abs(fast - loop_overlap_vote(emb, g.gy, g.gx, g.spread)).max() < 1e-12


@pytest.mark.parametrize("planted", [False, True])
def test_vectorised_agrees_with_loop_version(planted):
    g = make_grid(300, 360, 64, per_side=12)
    block = np.zeros((g.gy, g.gx), dtype=bool)
    if planted:
        block[2:6, 3:8] = True
    emb = planted_embeddings(g, block.ravel(), noise=0.2, seed=3)
    fast_mode, _, fast_r = mode_consistency_map(emb, g.gy, g.gx, g.spread)
    slow_mode, _, slow_r = loop_mode_consistency_map(emb, g.gy, g.gx, g.spread)
    assert abs(fast_r - slow_r) < 1e-9
    assert np.abs(fast_mode - slow_mode).max() <= 1e-5
    heat_fast, heat_slow = normalised_inconsistency(fast_mode), normalised_inconsistency(slow_mode)
    assert np.abs(heat_fast - heat_slow).max() <= 1e-5


def test_ncut_survives_a_lanczos_failure(monkeypatch):
    """An eigen-solver that does not converge must not crash detection: the dense solver takes over."""
    from scipy.sparse.linalg import ArpackNoConvergence

    from exiflang.forensics import ncut

    def fail(*args, **kwargs):
        raise ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((0, 0)))

    monkeypatch.setattr(ncut, "eigsh", fail)
    g = make_grid(80, 96, 8, per_side=11)
    block = np.zeros((g.gy, g.gx), dtype=bool)
    block[3:6, 4:9] = True
    res = consistency_from_embeddings(planted_embeddings(g, block.ravel()), g)
    assert np.array_equal(res.mask, np.kron(block, np.ones((8, 8), dtype=bool)))
