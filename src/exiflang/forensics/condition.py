"""What a file says about itself, read before any analysis: lossless or JPEG, the quality it was last saved at
(from its own quantisation tables), its size and how many independent patches it holds.

The detectors behave differently on each kind of file (issue 19's desk table: the JPEG-grid detector is blind
once a file is re-saved, double quantisation needs one, the learned map weakens with compression and with few
patches), so the fusion rule and the calibration that turns a score into a verdict are chosen per *condition
band*, and each band's numbers were fitted on validation composites whose files fall in that band
(`benchmarks/tune_desk_fusion.py`). The band is decided from the file alone, never from how a test set was made.

Quality: the IJG (libjpeg) quality whose scaled standard luminance table is closest to the file's table.
Cameras and many editors write tables of their own; the estimate then names the nearest IJG quality and
`standard_tables` is False (the report says so).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# The IJG standard luminance table (JPEG standard, Annex K), natural row-major order.
_STD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)

# Band edges (IJG quality), chosen before any fitting from the desk table's conditions: q95 and camera files
# ("high"), q90/q85 re-saves and platform chains ("mid"), q75 and below ("low").
HIGH_QUALITY = 93
LOW_QUALITY = 80
# Fewer independent 128-px patches than this makes a "small" file (512x384 holds 12, 640x480 15, 1024x768 48):
# there the learned map has little to compare, whatever the compression.
SMALL_PATCHES = 20
BANDS = ("lossless", "jpeg_high", "jpeg_mid", "jpeg_low", "small")
BAND_WORDS = {
    "lossless": "a lossless file",
    "jpeg_high": f"a JPEG saved at high quality (IJG {HIGH_QUALITY} or more)",
    "jpeg_mid": f"a JPEG saved at quality {LOW_QUALITY}-{HIGH_QUALITY - 1}",
    "jpeg_low": f"a heavily compressed JPEG (quality below {LOW_QUALITY})",
    "small": f"a small image (fewer than {SMALL_PATCHES} independent patches)",
}


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at `quality` (1-100), with its scaling rule and baseline clamp."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((_STD_LUMINANCE * scale + 50) // 100, 1, 255)


_IJG_TABLES = np.stack([ijg_table(q) for q in range(1, 101)])


def estimate_quality(luminance: list[int] | np.ndarray) -> tuple[int, bool]:
    """(nearest IJG quality, whether the table is exactly IJG's) for a 64-entry luminance table."""
    table = np.asarray(luminance, dtype=np.int64).reshape(64)
    # Distance in log steps: a camera's table at q97 (steps 1-3) and IJG q97 differ by one step, which matters
    # there far more than one step at q50.
    dist = np.abs(np.log(_IJG_TABLES) - np.log(np.maximum(table, 1))).sum(axis=1)
    best = int(np.argmin(dist))
    return best + 1, bool(dist[best] == 0)


@dataclass(frozen=True)
class FileCondition:
    """What the file says about itself, and the condition band chosen from it."""

    height: int
    width: int
    independent_patches: int
    lossy: bool | None  # the file is a JPEG (None: an array with no file)
    jpeg_quality: int | None = None  # nearest IJG quality of the last save (None: not a JPEG)
    standard_tables: bool | None = None  # the tables are exactly IJG's at that quality

    @property
    def band(self) -> str:
        """One of `BANDS`: small images first (size limits the analysis whatever the format), then the format."""
        if self.independent_patches < SMALL_PATCHES:
            return "small"
        if not self.lossy or self.jpeg_quality is None:
            return "lossless"
        if self.jpeg_quality >= HIGH_QUALITY:
            return "jpeg_high"
        return "jpeg_mid" if self.jpeg_quality >= LOW_QUALITY else "jpeg_low"

    def describe(self) -> str:
        """One line for a reader: 'JPEG, last saved at about quality 90 (standard tables), 1024x768, 48 patches'."""
        if self.lossy and self.jpeg_quality is not None:
            tables = "standard tables" if self.standard_tables else "the encoder's own tables, nearest IJG quality"
            kind = f"JPEG, last saved at about quality {self.jpeg_quality} ({tables})"
        else:
            kind = "lossless" if self.lossy is False else "pixels with no file"
        return f"{kind}, {self.width}x{self.height}, {self.independent_patches} independent 128-px patches"

    def to_dict(self) -> dict:
        """JSON-ready fields, with the band and the one-line description."""
        return {**asdict(self), "band": self.band, "description": self.describe()}


def read_condition(height: int, width: int, path: str | Path | None = None, patch: int = 128) -> FileCondition:
    """The condition of an image of height x width read from `path` (None: an array; format unknown)."""
    from exiflang.imageio import jpeg_quantization

    patches = (int(height) // patch) * (int(width) // patch)
    if path is None:
        return FileCondition(int(height), int(width), patches, None)
    tables = jpeg_quantization(path)
    if not tables:
        return FileCondition(int(height), int(width), patches, False)
    quality, standard = estimate_quality(tables[min(tables)])
    return FileCondition(int(height), int(width), patches, True, quality, standard)


__all__ = ["BANDS", "BAND_WORDS", "FileCondition", "HIGH_QUALITY", "LOW_QUALITY", "SMALL_PATCHES", "estimate_quality",
           "ijg_table", "read_condition"]
