"""Vectorised consistency maths: all-pairs similarity, the 4-D overlap vote, mean shift to the dominant mode.

Notation: N patches on a gy x gx grid, M cells on a rows x cols grid (see `grid.PatchGrid`).

* ``pair[a, b]`` = cosine similarity of patch embeddings a and b (self-pairs included, = 1).
* The overlap vote turns the patch-pair tensor [gy, gx, gy, gx] into a cell-pair tensor
  [rows, cols, rows, cols]: ``vote[c1, c2]`` is the mean of ``pair[a, b]`` over every patch a that
  covers cell c1 and every patch b that covers cell c2. Summing over covering patches is a
  "full" box filter of width ``spread`` along each of the four axes, so it is done separably
  with cumulative sums (no loop over pairs); the count of pairs factorises the same way.
  tests/reference_consistency.py states this literally on the pair tensor (`overlap_vote`).
  `mode_consistency_map` uses the
  equivalent factorised form: cosine similarity is a dot product of unit vectors, so the filtered
  tensor is ``F @ F.T`` with F the box-averaged unit embeddings per cell ([M, D] instead of [N, N]).
* Row c of ``vote`` (reshaped to rows x cols) is cell c's *response map*: how consistent every
  cell is with c. Mean shift over the M response maps finds the dominant one (the map most cells
  agree on); that mode is the consistency map.
"""
from __future__ import annotations

import numpy as np

# Relative slack on the mean-shift radius so that a neighbour lying exactly on the radius (the
# percentile often *is* one of the distances) is counted the same whichever way distances are rounded.
RADIUS_SLACK = 1e-9


def cosine_similarity_matrix(emb: np.ndarray) -> np.ndarray:
    """All-pairs cosine similarity [N, N] (float64) of the rows of ``emb``."""
    e = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.maximum(norms, 1e-12)
    return np.clip(e @ e.T, -1.0, 1.0)


def box_sum_full(x: np.ndarray, width: int, axis: int) -> np.ndarray:
    """'Full' box filter along one axis: out[c] = sum of x[a] for a in [c - width + 1, c]; length n + width - 1."""
    if width == 1:
        return x
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    csum = np.concatenate([np.zeros((1,) + x.shape[1:], dtype=x.dtype), np.cumsum(x, axis=0)])
    c = np.arange(n + width - 1)
    out = csum[np.minimum(c + 1, n)] - csum[np.maximum(c - width + 1, 0)]
    return np.moveaxis(out, 0, axis)


def cover_counts(n: int, width: int) -> np.ndarray:
    """How many of n windows of the given width (at offsets 0..n-1) cover each of the n + width - 1 cells."""
    return box_sum_full(np.ones(n), width, 0)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a [n, d] and of b [m, d] (float64, [n, m])."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def meanshift_radius(points: np.ndarray, percentile: float = 10.0) -> float:
    """Bandwidth: the given percentile of distances between distinct points, guarded against zero."""
    d = pairwise_distances(points, points)
    off = d[np.triu_indices(len(points), k=1)]
    return radius_from_distances(off, percentile)


def radius_from_distances(off_diagonal: np.ndarray, percentile: float = 10.0) -> float:
    """The percentile of the distances, raised to 1e-6 of the largest one (or 1 if all are 0) when it is 0."""
    if off_diagonal.size == 0:
        return 1.0
    r = float(np.percentile(off_diagonal, percentile))
    if r <= 0.0:
        # Over 10% of the maps are identical: keep the kernel to exact duplicates, but never a zero radius.
        largest = float(off_diagonal.max())
        r = 1e-6 * largest if largest > 0 else 1.0
    return r


def mean_shift_mode(
    points: np.ndarray, iters: int = 5, percentile: float = 10.0, carry: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Flat-kernel mean shift of every point over the data; return (dominant mode, radius).

    Each seed y_i starts at x_i and moves, ``iters`` times, to the mean of the data points within the
    radius of it. The dominant mode is the mean of the converged seeds that have the most data
    points within the radius (ties averaged). With ``carry`` (one row per point), the same averaging
    weights are applied to ``carry`` instead and its mode is returned: this lets the search run in
    compact coordinates while the answer is read in the original ones.
    """
    x = np.asarray(points, dtype=np.float64)
    values = x if carry is None else np.asarray(carry, dtype=np.float64)
    radius = meanshift_radius(x, percentile)
    r = radius * (1.0 + RADIUS_SLACK)
    y, y_values = x.copy(), values.copy()
    for _ in range(iters):
        near = (pairwise_distances(y, x) <= r).astype(np.float64)  # [seeds, data]
        # counts >= 1 always: the centroid of points in a ball has one of them within the radius.
        counts = np.maximum(near.sum(1, keepdims=True), 1.0)
        y, y_values = (near @ x) / counts, (near @ values) / counts
    support = (pairwise_distances(y, x) <= r).sum(1)
    best = support == support.max()
    return y_values[best].mean(0), radius


def cell_features(emb: np.ndarray, gy: int, gx: int, spread: int) -> np.ndarray:
    """Mean unit embedding of the patches covering each cell, [M, D].

    The 4-D vote of the pair tensor is separable: vote[c1, c2] = f(c1) . f(c2) with f these cell
    features, because cosine similarity is a dot product of unit vectors and the box filters over
    the two patch indices act on the two factors independently.
    """
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    t = e.reshape(gy, gx, -1)
    t = box_sum_full(box_sum_full(t, spread, 0), spread, 1)
    t = t / np.outer(cover_counts(gy, spread), cover_counts(gx, spread))[..., None]
    return t.reshape(-1, e.shape[1])


def isometric_coordinates(features: np.ndarray) -> np.ndarray:
    """Coordinates z (one row per cell) with |z_i - z_j| = |v_i - v_j| for the response maps v = rows of F F^T."""
    gram = features.T @ features  # [D, D]
    lam, q = np.linalg.eigh(gram)
    return features @ (q * np.sqrt(np.maximum(lam, 0.0)))


def mode_consistency_map(emb: np.ndarray, gy: int, gx: int, spread: int, iters: int = 5,
                         percentile: float = 10.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Embeddings -> (mode map [M] of mean similarity to the dominant region, cell affinity [M, M], radius).

    Mean shift runs over the M response maps (rows of the vote). When the embedding is narrower than
    the number of cells they are searched in D-dimensional coordinates with the same distances.
    """
    feats = cell_features(emb, gy, gx, spread)
    vote = feats @ feats.T
    if feats.shape[1] < feats.shape[0]:
        mode_feats, radius = mean_shift_mode(isometric_coordinates(feats), iters, percentile, carry=feats)
        mode = feats @ mode_feats  # the mode response map is linear in the averaged features
    else:
        mode, radius = mean_shift_mode(vote, iters, percentile)
    return mode, vote, radius
