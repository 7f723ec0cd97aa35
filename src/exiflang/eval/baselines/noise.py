"""Classical, training-free baseline: local noise-level inconsistency.

Every camera pipeline leaves its own level of sensor/processing noise; a region pasted from another
photo usually carries a different one. We estimate the noise standard deviation in small blocks and
flag blocks whose (log) noise level departs from the image's typical level.

1. Residual: luminance filtered with Immerkaer's 3x3 kernel [[1,-2,1],[-2,4,-2],[1,-2,1]], which cancels
   locally linear image content; for white noise of std s its output has std 6 s.
2. Block noise level: the *median* of |residual| in each ``block`` x ``block`` square, divided by 0.6745·6
   (robust: edges and texture inflate a mean far more than a median), stored as log(s + 0.25).
3. Smoothing: a 3x3-block mean of the log levels, because a splice is a connected region larger than a block.
4. Heatmap: robust z-score of each block against the whole image (median, 1.4826·MAD); the map is
   |z| / (|z| + 2), i.e. 0.5 at two robust standard deviations, upsampled to pixels (block-constant).
5. Score: the 95th percentile of |z| over blocks (a splice makes a sizeable set of blocks deviate).

Known weaknesses (why it is a baseline): strong texture, saturation and dark regions change the residual
as much as a different camera does, and recompression flattens the noise of the whole image.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...imageio import check_min_side

KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
METHOD_ID = "noise-v1"


def block_noise_levels(image: np.ndarray, block: int = 16) -> np.ndarray:
    """Log noise level of every block x block square (the right/bottom remainder joins the last block);
    ImageTooSmallError when a side is shorter than one block."""
    check_min_side(image.shape[0], image.shape[1], block, f"the noise baseline's {block} px blocks")
    rgb = np.asarray(image, dtype=np.float64)
    gray = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    residual = np.abs(ndimage.convolve(gray, KERNEL, mode="reflect"))
    rows, cols = max(1, gray.shape[0] // block), max(1, gray.shape[1] // block)
    core = residual[: rows * block, : cols * block].reshape(rows, block, cols, block)
    med = np.median(core.transpose(0, 2, 1, 3).reshape(rows, cols, -1), axis=2)
    sigma = med / (0.6745 * 6.0)
    return np.log(sigma + 0.25)


def noise_inconsistency(image: np.ndarray, block: int = 16) -> tuple[np.ndarray, float]:
    """Heatmap (float32 HxW in [0, 1], high = atypical noise level) and image score for an HxWx3 image."""
    height, width = image.shape[:2]
    levels = ndimage.uniform_filter(block_noise_levels(image, block), size=3, mode="nearest")
    med = float(np.median(levels))
    mad = float(np.median(np.abs(levels - med))) * 1.4826
    z = np.abs(levels - med) / max(mad, 1e-3)
    cell = z / (z + 2.0)
    # Pixels take their block's value; the remainder beyond the last full block joins it.
    iy = np.minimum(np.arange(height) // block, cell.shape[0] - 1)
    ix = np.minimum(np.arange(width) // block, cell.shape[1] - 1)
    heat = cell[iy][:, ix].astype(np.float32)
    return heat, float(np.percentile(z, 95))


__all__ = ["METHOD_ID", "block_noise_levels", "noise_inconsistency"]
