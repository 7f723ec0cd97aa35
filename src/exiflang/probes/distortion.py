"""Synthetic radial lens distortion with realistic coefficients, and the distortion-bin labels.

Model (Brown–Conrady, radial part): a point at undistorted radius r_u appears at
    r_d = r_u * (1 + k1 r_u^2 + k2 r_u^4)
with radii normalised so that r = 1 is half the image's shorter side (the lensfun/Hugin convention).
k1 < 0 is barrel, k1 > 0 pincushion.

Realistic (k1, k2) pairs come from the lensfun calibration database shipped inside `lensfunpy`
(works offline): each PTLens / poly3 / poly5 calibration is rescaled to unit magnification at the centre
and least-squares fitted by k1 r^2 + k2 r^4 over 0 < r <= 1.5. Without `lensfunpy`, a fallback table of
the same pool's quantiles (measured with lensfunpy 1.18, 5694 calibrations) is used.

The warp keeps the image size and zooms so that every output pixel samples inside the source (lensfun-style
auto-scale: barrel maps corners to corners, pincushion maps the midpoints of the long sides to themselves and
crops the corners); so no border is ever replicated, and every bin, including the near-zero one, is resampled
the same way (bilinear), i.e. "was it resampled at all" is no cue. (Before issue 24 the corners were pinned for
pincushion too, which made the sides' midpoints sample up to a few pixels outside the frame: a replicated
border, a cue of the sign that no lens leaves.)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..data.warp import DistortionError, distort, is_monotone, radial_factor, source_coordinates

FIT_RADIUS = 1.5  # fit range of the lensfun conversion; a 4:3 frame's corner is at r = 5/3
# Quantiles (1, 5, 10, 20, 30, ..., 90, 95, 99 %) of (k1, k2) over the lensfun pool, measured once
# with lensfunpy 1.18; used to draw coefficients when lensfunpy is not installed.
_FALLBACK_Q = np.array([1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99], dtype=np.float64)
_FALLBACK_K1 = np.array([-0.0893, -0.0446, -0.0292, -0.0151, -0.0080, -0.0031, 0.0, 0.0034, 0.0075,
                         0.0127, 0.0261, 0.0357, 0.0715])
_FALLBACK_K2 = np.array([-0.0275, -0.0115, -0.0083, -0.0038, -0.0015, 0.0, 0.0, 0.0, 0.0012, 0.0034,
                         0.0069, 0.0112, 0.0236])


def _fit_k1_k2(excess: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares (k1, k2) with k1 r^2 + k2 r^4 ≈ excess(r)."""
    design = np.stack([r**2, r**4], axis=1)
    sol, *_ = np.linalg.lstsq(design, excess, rcond=None)
    return float(sol[0]), float(sol[1])


@lru_cache(maxsize=1)
def lensfun_pool() -> np.ndarray:
    """(k1, k2) pairs [N, 2] of every lensfun distortion calibration; empty when lensfunpy is absent."""
    try:
        import lensfunpy
    except ImportError:
        return np.zeros((0, 2))
    r = np.linspace(0.0, FIT_RADIUS, 61)[1:]
    pairs = []
    for lens in lensfunpy.Database().lenses:
        for cal in lens.calib_distortion or []:
            model, terms = str(cal.model).upper(), list(cal.terms)
            if "PTLENS" in model:
                a, b, c = terms[:3]
                d = 1.0 - a - b - c  # lensfun's magnification at the centre; we normalise it to 1
                excess = (a * r**3 + b * r**2 + c * r) / d
            elif "POLY3" in model:
                excess = (terms[0] / (1.0 - terms[0])) * r**2
            elif "POLY5" in model:
                excess = terms[0] * r**2 + terms[1] * r**4
            else:
                continue
            pairs.append(_fit_k1_k2(excess, r))
    return np.array(pairs, dtype=np.float64).reshape(-1, 2)


def coefficient_pool(r_max: float = 5.0 / 3.0) -> tuple[np.ndarray, str]:
    """Realistic (k1, k2) pairs that do not fold a frame up to `r_max`, and where they came from."""
    pool = lensfun_pool()
    source = "lensfun (lensfunpy)"
    if len(pool) == 0:
        # Pair the k1 and k2 quantiles (they are strongly correlated in the real pool).
        grid = np.linspace(1, 99, 197)
        pool = np.stack([np.interp(grid, _FALLBACK_Q, _FALLBACK_K1), np.interp(grid, _FALLBACK_Q, _FALLBACK_K2)], 1)
        source = "fallback quantile table (lensfunpy not installed)"
    keep = np.array([is_monotone(k1, k2, r_max) for k1, k2 in pool])
    return pool[keep], source


@dataclass
class DistortionBins:
    """Bins on k1 (inner edges ascending) and the coefficient pairs that fall in each."""

    edges: np.ndarray
    members: list[np.ndarray]
    source: str

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return len(self.members)

    def label(self, i: int) -> str:
        """Readable k1 range of bin i."""
        lo = f"{self.edges[i - 1]:.4f}" if i > 0 else "-inf"
        hi = f"{self.edges[i]:.4f}" if i < len(self.edges) else "inf"
        return f"k1 in [{lo}, {hi})"

    def sample(self, i: int, rng: np.random.Generator) -> tuple[float, float]:
        """A random realistic (k1, k2) from bin i."""
        k1, k2 = self.members[i][rng.integers(len(self.members[i]))]
        return float(k1), float(k2)


def distortion_bins(n_bins: int = 5, r_max: float = 5.0 / 3.0) -> DistortionBins:
    """Equal-frequency bins of k1 over the realistic pool (so barrel, none and pincushion all appear)."""
    if n_bins < 2:
        raise DistortionError(f"need at least two distortion bins, got {n_bins}")
    pool, source = coefficient_pool(r_max)
    # Clip the 1 % tails: extreme fisheye-like calibrations would make the outer bins trivially easy.
    lo, hi = np.quantile(pool[:, 0], [0.01, 0.99])
    pool = pool[(pool[:, 0] >= lo) & (pool[:, 0] <= hi)]
    edges = np.quantile(pool[:, 0], np.linspace(0, 1, n_bins + 1)[1:-1])
    idx = np.searchsorted(edges, pool[:, 0], side="right")
    members = [pool[idx == i] for i in range(n_bins)]
    if any(len(m) == 0 for m in members):
        raise DistortionError(f"{n_bins} bins leave an empty bin (many identical k1 values); use fewer bins")
    return DistortionBins(edges=edges, members=members, source=source)


__all__ = [
    "DistortionError", "radial_factor", "is_monotone", "source_coordinates", "distort", "lensfun_pool", "coefficient_pool",
    "DistortionBins", "distortion_bins",
]
