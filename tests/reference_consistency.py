"""Test oracle (not part of the package): a straightforward re-statement of the official post-processing, loops and all, to check the vectorised one.

Same definitions as `consistency` (see there), computed the way the original code does: a Python
loop over every patch pair adding its similarity into the 4-D vote and count tensors, and mean
shift moving one point at a time. One deliberate difference from the official code: its mean
shift updates points in place, so a point can see neighbours already moved in the same sweep
(the result depends on the order); here every sweep moves all points from the previous sweep's
positions (the textbook algorithm), in both versions. Slow by design: used by tests on small
grids and by benchmarks/detect_speed.py for the speed-up.
"""
from __future__ import annotations

import numpy as np

from exiflang.forensics.consistency import RADIUS_SLACK, box_sum_full, cover_counts, radius_from_distances


def loop_overlap_vote(emb: np.ndarray, gy: int, gx: int, spread: int) -> np.ndarray:
    """Cell-pair mean similarity [M, M] by looping over all patch pairs."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    rows, cols = gy + spread - 1, gx + spread - 1
    vote = np.zeros((rows, cols, rows, cols))
    count = np.zeros((rows, cols, rows, cols))
    n = gy * gx
    for a in range(n):
        ay, ax = divmod(a, gx)
        for b in range(n):
            by, bx = divmod(b, gx)
            sim = min(1.0, max(-1.0, float(np.dot(e[a], e[b]))))
            vote[ay : ay + spread, ax : ax + spread, by : by + spread, bx : bx + spread] += sim
            count[ay : ay + spread, ax : ax + spread, by : by + spread, bx : bx + spread] += 1
    return (vote / count).reshape(rows * cols, rows * cols)


def loop_mean_shift_mode(points: np.ndarray, iters: int = 5, percentile: float = 10.0) -> tuple[np.ndarray, float]:
    """Flat-kernel mean shift, one point at a time; return (dominant mode, radius)."""
    x = np.asarray(points, dtype=np.float64)
    m = len(x)
    dists = [np.sqrt(((x[i + 1 :] - x[i]) ** 2).sum(1)) for i in range(m - 1)]
    radius = radius_from_distances(np.concatenate(dists) if dists else np.zeros(0), percentile)
    r = radius * (1.0 + RADIUS_SLACK)
    y = x.copy()
    for _ in range(iters):
        moved = np.empty_like(y)
        for i in range(m):
            near = np.sqrt(((x - y[i]) ** 2).sum(1)) <= r
            moved[i] = x[near].mean(0) if near.any() else y[i]
        y = moved
    support = np.array([int((np.sqrt(((x - y[i]) ** 2).sum(1)) <= r).sum()) for i in range(m)])
    return y[support == support.max()].mean(0), radius


def loop_mode_consistency_map(emb: np.ndarray, gy: int, gx: int, spread: int, iters: int = 5,
                              percentile: float = 10.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Loop version of `consistency.mode_consistency_map`: (mode [M], vote [M, M], radius)."""
    vote = loop_overlap_vote(emb, gy, gx, spread)
    mode, radius = loop_mean_shift_mode(vote, iters, percentile)
    return mode, vote, radius


def overlap_vote(pair: np.ndarray, gy: int, gx: int, spread: int) -> np.ndarray:
    """4-D overlap vote: patch-pair similarities [N, N] -> cell-pair mean similarities [M, M]."""
    t = pair.reshape(gy, gx, gy, gx).astype(np.float64, copy=False)
    for axis in range(4):
        t = box_sum_full(t, spread, axis)
    cy, cx = cover_counts(gy, spread), cover_counts(gx, spread)
    count = np.einsum("a,b,c,d->abcd", cy, cx, cy, cx)
    rows, cols = gy + spread - 1, gx + spread - 1
    return (t / count).reshape(rows * cols, rows * cols)
