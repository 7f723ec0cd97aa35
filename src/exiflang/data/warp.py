"""Radial lens distortion (Brown–Conrady, radial part) as a warp of a whole frame.

A point at undistorted radius r_u appears at r_d = r_u * (1 + k1 r_u^2 + k2 r_u^4), radii normalised so that
r = 1 is half the image's shorter side (the lensfun/Hugin convention); k1 < 0 is barrel, k1 > 0 pincushion.
The warp keeps the image size and zooms so that every output pixel samples inside the source (lensfun-style
auto-scale: barrel maps corners to corners, pincushion maps the midpoints of the long sides to themselves and
crops the corners); bilinear. It lives here, below training and the probes, because both use it: training to
write a warp into a photo's processing history, the distortion probe to build its frames.
"""
from __future__ import annotations

import numpy as np

from ..errors import ExiflangError


class DistortionError(ExiflangError):
    """Distortion coefficients or images are unusable; the message says why."""


def radial_factor(r: np.ndarray, k1: float, k2: float = 0.0) -> np.ndarray:
    """r_d / r_u = 1 + k1 r^2 + k2 r^4."""
    r2 = np.square(r)
    return 1.0 + k1 * r2 + k2 * r2 * r2


def is_monotone(k1: float, k2: float, r_max: float) -> bool:
    """True when r_d(r_u) increases on [0, r_max] (otherwise the warp folds the image)."""
    r = np.linspace(0.0, r_max, 512)
    return bool(np.all(1.0 + 3.0 * k1 * r**2 + 5.0 * k2 * r**4 > 0.05))


def source_coordinates(height: int, width: int, k1: float, k2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """For every output pixel, the (y, x) in the undistorted image it shows (float64 HxW each)."""
    half = min(height, width) / 2.0
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    r_corner = np.hypot(cy, cx) / half
    if not is_monotone(k1, k2, r_corner):
        raise DistortionError(f"k1={k1}, k2={k2} fold the image within r={r_corner:.2f}; use smaller coefficients")
    # Invert r_d(r_u) on a dense 1-D table (monotone, so interpolation is exact enough: < 1e-4 px).
    r_u_table = np.linspace(0.0, r_corner * 1.001, 4096)
    r_d_table = r_u_table * radial_factor(r_u_table, k1, k2)
    # An output pixel at radius rho shows the source at r_d^-1(rho * zoom); it stays inside the frame when
    # zoom <= r_d(R) / R at every border radius R, from the long sides' midpoints to the corners (pixel centres).
    r_edge = (min(height, width) - 1) / 2.0 / half
    zoom = float(np.min(radial_factor(np.linspace(r_edge, r_corner, 257), k1, k2)))
    dy = (np.arange(height, dtype=np.float64) - cy)[:, None] / half
    dx = (np.arange(width, dtype=np.float64) - cx)[None, :] / half
    rho = np.hypot(dy, dx)  # output radius
    r_u = np.interp(rho * zoom, r_d_table, r_u_table)
    scale = np.divide(r_u, rho, out=np.ones_like(rho), where=rho > 0)
    return cy + dy * scale * half, cx + dx * scale * half


def distort(image: np.ndarray, k1: float, k2: float = 0.0) -> np.ndarray:
    """Apply radial distortion to an HxWx3 uint8 image (same size out, corners kept, bilinear)."""
    import torch

    h, w = image.shape[:2]
    if k1 == 0.0 and k2 == 0.0:
        return image.copy()
    src_y, src_x = source_coordinates(h, w, k1, k2)
    # grid_sample wants x, y in [-1, 1] with align_corners=True meaning pixel centres at the ends.
    grid = np.stack([src_x / (w - 1) * 2 - 1, src_y / (h - 1) * 2 - 1], axis=-1)[None].astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))[None].astype(np.float32))
    out = torch.nn.functional.grid_sample(x, torch.from_numpy(grid), mode="bilinear", padding_mode="border",
                                          align_corners=True)
    return out[0].round().clamp(0, 255).to(torch.uint8).numpy().transpose(1, 2, 0).copy()


def frame_radius(height: int, width: int, y: float, x: float) -> float:
    """The normalised radius (1 = half the shorter side) of the point (y, x) of a height x width frame."""
    return float(np.hypot(y - (height - 1) / 2.0, x - (width - 1) / 2.0) / (min(height, width) / 2.0))


__all__ = ["DistortionError", "radial_factor", "is_monotone", "source_coordinates", "distort", "frame_radius"]
