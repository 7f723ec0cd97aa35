"""Candidate image-level scores of a consistency analysis (all: higher = more likely manipulated).

Which one `detect` reports is chosen on validation composites (held-out cameras, another seed than the test
composites) by `benchmarks/detect_scores.py`; `IMAGE_SCORE` names the winner, documented in
docs/results/detection.md. The candidates:

* ``gap``: the consistency gap between the cells above and below the heatmap's 0.5 threshold
  (`heatmap.consistency_gap`), the score shipped before.
* ``ncut``: 1 - Ncut/2 of the normalised-cut partition (a strong two-region structure has a small cut).
* ``far_fraction``: area share of cells whose consistency to the dominant mode lies more than 3 robust
  standard deviations (1.4826 MAD) below the median cell's, capped by nothing: a splice is a sizeable far set.
* ``spread``: area-weighted standard deviation of the cells' consistency to the dominant mode.
* ``low_tail``: median minus 5th percentile of the cells' consistency (how far the least consistent 5 % of
  the image sit from the typical cell, in cosine units).
* ``dissim``: 1 - mean cosine similarity over all patch pairs (no mean shift at all).
"""
from __future__ import annotations

import numpy as np

from .consistency import cell_features
from .heatmap import cell_areas
from .ncut import ncut_values

CANDIDATES = ("gap", "ncut", "far_fraction", "spread", "low_tail", "dissim")


def _chosen_score() -> str:
    """The score `detect` reports: the validation choice recorded in fusion_rule.json ("gap" without one)."""
    import json
    from pathlib import Path

    path = Path(__file__).with_name("fusion_rule.json")
    try:
        choice = json.loads(path.read_text()).get("learned_score", "gap")
    except (OSError, ValueError):
        return "gap"
    return choice if choice in CANDIDATES else "gap"


# DetectionResult.score, chosen on validation composites by benchmarks/tune_fusion.py (see the module docstring).
IMAGE_SCORE = _chosen_score()


def _weighted_std(values: np.ndarray, weights: np.ndarray) -> float:
    """Standard deviation with weights."""
    mean = float((values * weights).sum() / weights.sum())
    return float(np.sqrt(((values - mean) ** 2 * weights).sum() / weights.sum()))


def candidate_scores(result) -> dict[str, float]:
    """Every candidate score of one `DetectionResult`."""
    grid = result.grid
    mode = np.asarray(result.consistency, dtype=np.float64).ravel()
    areas = cell_areas(grid).ravel()
    med = float(np.median(mode))
    mad = 1.4826 * float(np.median(np.abs(mode - med)))
    far = (med - mode) > 3.0 * max(mad, 1e-6)
    feats = cell_features(result.embeddings, grid.gy, grid.gx, grid.spread)
    vote = feats @ feats.T
    affinity = (vote - vote.min()) / max(float(vote.max() - vote.min()), 1e-12) + 1e-9
    cells = np.asarray(result.cell_mask if getattr(result, "cell_mask", None) is not None
                       else _cell_mask(result), dtype=bool).ravel()
    ncut = float(ncut_values(affinity, cells[None, :])[0]) if 0 < cells.sum() < cells.size else 2.0
    emb = np.asarray(result.embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # embed_patches' are unit already
    mean_vec = emb.mean(0)
    mean_sim = float(mean_vec @ mean_vec)  # mean of all pairwise dots of unit vectors (self-pairs included)
    return {
        "gap": float(result.gap if getattr(result, "gap", None) is not None else result.score),
        "ncut": 1.0 - min(ncut, 2.0) / 2.0,
        "far_fraction": float(areas[far].sum() / areas.sum()),
        "spread": _weighted_std(mode, areas),
        "low_tail": med - float(np.percentile(mode, 5)),
        "dissim": max(0.0, 1.0 - mean_sim),
    }


def _cell_mask(result) -> np.ndarray:
    """The normalised-cut mask on cells, read back from the pixel mask at each cell's first pixel."""
    grid = result.grid
    rows, cols = grid.cell_shape
    oy, ox = getattr(grid, "origin", (0, 0))
    ys = np.minimum(oy + np.arange(rows) * grid.stride, grid.height - 1)
    xs = np.minimum(ox + np.arange(cols) * grid.stride, grid.width - 1)
    return np.asarray(result.mask)[np.ix_(ys, xs)]


__all__ = ["CANDIDATES", "IMAGE_SCORE", "candidate_scores"]
