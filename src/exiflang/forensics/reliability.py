"""Where the evidence is weak: flat, saturated or clipped regions carry no camera or compression trace.

A patch of blown-out sky or a uniformly black border holds no sensor noise, no demosaicing pattern and no JPEG
coefficients to speak of, so every detector's heat there is noise. This module measures, on a grid of blocks,
how much texture each region holds, and counts the independent model-sized patches that hold enough: that
count (not the image's size alone) is what the analysis had to go on. The "cannot judge" rule of
`forensics.calibration` applies to it, with the same threshold as to an image's size, so an image of 48
patches of which 40 are sky is treated like a small one, and the reason says which it was.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 32  # reliability-map resolution in pixels (the report draws it beside the heatmap)
# A region is "flat" below this standard deviation of luminance (grey levels, 0-255): sensor noise alone gives
# 1-3 in a camera JPEG's smooth sky, JPEG at q75 flattens it to under 1; texture gives tens.
FLAT_STD = 1.0
SATURATED_LOW, SATURATED_HIGH = 3, 252  # clipped shadows and highlights
# A patch (or block) is unreliable when more than this share of it is clipped or it is flat.
MAX_CLIPPED = 0.5


@dataclass
class Reliability:
    """The reliability map (1 = texture to read, 0 = flat or clipped) and the count of usable patches."""

    block_map: np.ndarray  # float32 [rows, cols] in {0, 1}, one value per BLOCK x BLOCK block
    block: int
    usable_patches: int  # non-overlapping model patches with texture
    patches: int  # non-overlapping model patches in all
    flat_share: float  # share of the image's blocks that are flat or clipped

    def to_dict(self) -> dict:
        return {"block": self.block, "usable_patches": self.usable_patches, "patches": self.patches,
                "flat_or_clipped_share": round(self.flat_share, 4),
                "map": self.block_map.astype(np.uint8).tolist()}


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance (float32) of an HxWx3 uint8 band."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _usable(image: np.ndarray, size: int) -> np.ndarray:
    """[rows, cols] bool: each non-overlapping size x size tile has texture and is not mostly clipped. One row
    of tiles at a time, so a 24 MP photo never has a float copy of itself in memory (issue 14's budget)."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    out = np.zeros((rows, cols), bool)
    for r in range(rows):
        band = _luminance(image[r * size:(r + 1) * size, :cols * size])
        tiles = band.reshape(size, cols, size).transpose(1, 0, 2).reshape(cols, size * size)
        clipped = ((tiles <= SATURATED_LOW) | (tiles >= SATURATED_HIGH)).mean(axis=1)
        out[r] = (tiles.std(axis=1) >= FLAT_STD) & (clipped <= MAX_CLIPPED)
    return out


def measure_reliability(image: np.ndarray, patch: int = 128) -> Reliability:
    """The reliability of an HxWx3 image for a model of `patch`-px patches."""
    blocks = _usable(image, BLOCK)
    patches = _usable(image, patch)
    return Reliability(blocks.astype(np.float32), BLOCK, int(patches.sum()), int(patches.size),
                       float(1.0 - blocks.mean()) if blocks.size else 1.0)


def too_little_texture(rel: Reliability, minimum: int) -> str | None:
    """Why an image whose size would do holds too little texture for a verdict, or None."""
    if rel.usable_patches >= minimum or rel.patches < minimum:
        return None  # enough texture; or the image is simply small, which `too_little_to_judge` says
    return (f"mostly flat or saturated: only {rel.usable_patches} of its {rel.patches} independent patches hold "
            f"texture (a verdict needs at least {minimum}; flat and clipped regions carry no camera traces)")


def too_little_evidence(height: int, width: int, patch: int, rel: Reliability | None) -> str | None:
    """Why an image gives the analysis too little to go on for any verdict (too small, or mostly flat or
    clipped: `reliability` None when it was not measured), or None; the one rule for every method."""
    from .calibration import MIN_INDEPENDENT_PATCHES, too_little_to_judge

    return too_little_to_judge(height, width, patch) or (
        too_little_texture(rel, MIN_INDEPENDENT_PATCHES) if rel is not None else None)


__all__ = ["BLOCK", "FLAT_STD", "Reliability", "measure_reliability", "too_little_evidence", "too_little_texture"]
