"""From the dominant-mode consistency map to a [0, 1] heatmap, its polarity, and the image-level score.

Polarity rule: the heatmap is high where a cell is *inconsistent* with the dominant mode
(min-max normalised negative consistency). Mean shift usually lands on the larger region's mode,
so the smaller region comes out high; when it does not (the region at or above 0.5 covers more
than half of the image's pixels), the map is flipped, so that **the smaller of the two
self-consistent regions is always the one flagged** (a splice is assumed to be the minority).
The normalised-cut mask follows this map (`ncut.pick_side`): it is the side of the cut with the higher
mean heat, so both always point at the same region.

Score: the gap between the mean consistency (cosine-similarity units, pixel-area weighted) of the
cells above and below the heatmap's 0.5 threshold, in [0, 2]. A self-consistent photo has a flat
consistency map (gap near 0 whatever the threshold picks); a spliced one has two plateaus far
apart. Higher = more likely manipulated.
"""
from __future__ import annotations

import numpy as np

FLAT_RANGE = 1e-6  # a consistency map whose range is below this is treated as perfectly uniform
THRESHOLD = 0.5


def cell_areas(grid) -> np.ndarray:
    """Pixel area of every cell [rows, cols] (the last row/column also hold the uncovered remainder)."""
    rows, cols = grid.cell_shape
    oy, ox = getattr(grid, "origin", (0, 0))
    h = np.bincount(np.clip((np.arange(grid.height) - oy) // grid.stride, 0, rows - 1), minlength=rows)
    w = np.bincount(np.clip((np.arange(grid.width) - ox) // grid.stride, 0, cols - 1), minlength=cols)
    return np.outer(h, w).astype(np.float64)


def normalised_inconsistency(mode_map: np.ndarray) -> np.ndarray:
    """Negative consistency, min-max scaled to [0, 1]; all zeros when the map is flat."""
    lo, hi = float(mode_map.min()), float(mode_map.max())
    if hi - lo < FLAT_RANGE:
        return np.zeros_like(mode_map, dtype=np.float64)
    return (hi - mode_map) / (hi - lo)


def apply_polarity(heat: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, bool]:
    """Flip the heatmap when its high side covers more than half of the pixels; return (heatmap, flipped)."""
    flagged = float(areas[heat >= THRESHOLD].sum())
    if flagged > 0.5 * float(areas.sum()):
        return 1.0 - heat, True
    return heat, False


def consistency_gap(mode_map: np.ndarray, heat: np.ndarray, areas: np.ndarray) -> float:
    """Image-level score: |mean consistency above the threshold - mean below|, area-weighted (0 if one side is empty)."""
    high = heat >= THRESHOLD
    if not high.any() or high.all():
        return 0.0
    mean_high = float((mode_map * areas)[high].sum() / areas[high].sum())
    mean_low = float((mode_map * areas)[~high].sum() / areas[~high].sum())
    return abs(mean_high - mean_low)
