"""The EXIF thumbnail (IFD1) against the picture: the same scene and frame, another crop, or another scene.

A camera writes a small JPEG of the whole frame into the EXIF block when it takes the picture. Editors that
keep the EXIF block but do not rebuild the thumbnail leave the old one behind, so the thumbnail can show what
the picture looked like before it was cropped, retouched or replaced. `compare_thumbnail` says which:

* ``match``: the thumbnail is a reduced copy of the picture (same frame; no region differs);
* ``edited``: same frame, but one region of the picture differs from the thumbnail (changed after it was
  written, e.g. an object pasted in or removed);
* ``crop``: the picture is a part of the thumbnail's frame (cropped after the thumbnail was written);
* ``other``: the thumbnail shows something else;
* ``flat``: the picture (or thumbnail) is too flat to line up with the other.

Both are compared in grey at the thumbnail's scale (about 160 px), after removing the black bars some cameras
add to fit a 4:3 thumbnail, and with the picture's brightness and contrast fitted to the thumbnail's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Thresholds. SAME_FRAME_R: a thumbnail made from the picture itself correlates at about 0.99 (tests). CROP_R:
# on the shared photos (1024x768 centre crops whose thumbnail shows the uncropped frame) most find their crop
# window above it, but another photo's thumbnail is also taken for a crop in about a fifth of pairs (many
# shared photos are the same colour chart): docs/results/provenance.md, benchmarks/thumbnail_check.py.
SAME_FRAME_R = 0.9
CROP_R = 0.8
# A region whose mean absolute difference (after the brightness fit, 0..1 grey) is above this, and above
# EDIT_RATIO times the median region's, was changed after the thumbnail was written; the rest must then
# correlate at SAME_FRAME_R.
EDIT_DIFF = 0.08
EDIT_RATIO = 4.0
GRID = 8  # regions per side for the edit test
MAX_CHANGED = 0.3  # a picture differing in more of its regions than this is another picture, not an edit
ASPECT_TOLERANCE = 0.03
FLAT_PICTURE_STD = 0.03  # a picture or thumbnail flatter than this (grey std, 0..1) cannot be compared
FLAT_STD = 0.01  # grey standard deviation (0..1) below which a window is flat: no correlation is measured there  # |log(aspect ratio)| below which two frames have the same shape


@dataclass
class ThumbnailComparison:
    """What the thumbnail says about the picture."""

    outcome: str  # match / edited / crop / other / flat
    correlation: float  # of the best placement found
    thumbnail_size: tuple[int, int]  # (width, height) as stored, before the black bars are removed
    evidence: dict[str, Any] = field(default_factory=dict)


def extract_thumbnail(path: str | Path) -> bytes | None:
    """The EXIF thumbnail's JPEG bytes (IFD1 JPEGInterchangeFormat), or None when the file has none."""
    from PIL import Image

    from ..imageio import ImageLoadError, opened_image

    try:
        with opened_image(path, decode=False) as img:
            raw = img.info.get("exif")
            if not raw:
                return None
            exif = Image.Exif()
            exif.load(raw)
            ifd1 = _ifd1(exif)
    except (ImageLoadError, OSError, ValueError, SyntaxError):
        return None
    offset, length = ifd1.get(0x0201), ifd1.get(0x0202)
    if not isinstance(offset, int) or not isinstance(length, int) or length <= 0:
        return None
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw  # offsets count from the TIFF header
    blob = tiff[offset:offset + length]
    return blob if len(blob) == length and blob.startswith(b"\xff\xd8") else None


def _ifd1(exif) -> dict:
    """The thumbnail's IFD as {tag: value} (Pillow's Exif keeps it apart from IFD0)."""
    from PIL import ExifTags

    try:
        return dict(exif.get_ifd(ExifTags.IFD.IFD1))
    except (KeyError, ValueError, TypeError, OSError):
        return {}


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def _resize(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average resize of a grey image (Pillow's BOX filter: every source pixel counts once)."""
    from PIL import Image

    img = Image.fromarray(grey.astype(np.float32), mode="F")
    return np.asarray(img.resize((max(width, 1), max(height, 1)), Image.Resampling.BOX), dtype=np.float32)


def trim_black_bars(grey: np.ndarray, level: float = 0.06) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The thumbnail without the flat black bars around it, and the box kept (top, bottom, left, right)."""
    rows = np.where((grey.mean(axis=1) > level) | (grey.std(axis=1) > 0.03))[0]
    cols = np.where((grey.mean(axis=0) > level) | (grey.std(axis=0) > 0.03))[0]
    if rows.size < 8 or cols.size < 8:
        return grey, (0, grey.shape[0], 0, grey.shape[1])
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return grey[box[0]:box[1], box[2]:box[3]], box


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


def _cells(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``diff`` over a GRID x GRID split, and the split's row and column edges."""
    h, w = diff.shape
    ys, xs = np.linspace(0, h, GRID + 1).astype(int), np.linspace(0, w, GRID + 1).astype(int)
    cells = np.array([[diff[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean() for j in range(GRID)] for i in range(GRID)])
    return cells, ys, xs


def _changed_regions(thumb: np.ndarray, pic: np.ndarray) -> tuple[float, dict[str, Any]]:
    """How well the picture matches the thumbnail outside the regions that differ, and those regions.

    The thumbnail encoder's brightness and contrast are fitted (a line from picture grey to thumbnail grey),
    refitted on the regions that agree so that a large pasted object does not bend the fit. Returns the
    correlation over the agreeing regions and the evidence: the changed regions (row, column) and the worst.
    """
    keep = np.ones(thumb.shape, bool)
    for _ in range(2):
        slope, offset = np.polyfit(pic[keep], thumb[keep], 1)
        cells, ys, xs = _cells(np.abs(thumb - (slope * pic + offset)))
        typical = float(np.median(cells))
        changed = (cells >= EDIT_DIFF) & (cells >= EDIT_RATIO * max(typical, 1e-3))
        keep = np.ones(thumb.shape, bool)
        for i, j in zip(*np.nonzero(changed)):
            keep[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = False
    if changed.mean() > MAX_CHANGED or not keep.any():
        return _correlation(thumb, pic), {}
    i, j = np.unravel_index(int(cells.argmax()), cells.shape)
    found = {"changed_regions": int(changed.sum()), "grid": GRID, "median_difference": round(typical, 3)}
    if changed.any():
        found.update(region_row=int(i), region_col=int(j), region_difference=round(float(cells[i, j]), 3))
    return _correlation(thumb[keep], pic[keep]), found


def _ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of the template at every position where it lies wholly inside the image."""
    from scipy.signal import correlate

    th, tw = template.shape
    image = image.astype(np.float64)
    t = template.astype(np.float64) - template.mean()
    num = correlate(image, t, mode="valid", method="fft")
    pad = np.pad(image, ((1, 0), (1, 0)))
    s1, s2 = pad.cumsum(0).cumsum(1), (pad * pad).cumsum(0).cumsum(1)
    box = lambda s: s[th:, tw:] - s[:-th, tw:] - s[th:, :-tw] + s[:-th, :-tw]  # noqa: E731 - window sums
    n = th * tw
    var = box(s2) - box(s1) ** 2 / n  # the window's variance times n
    t_energy = float((t * t).sum())
    flat = (var < n * FLAT_STD ** 2) | (t_energy < n * FLAT_STD ** 2)  # a flat window or template matches nothing
    ncc = num / np.sqrt(np.maximum(var, 1e-12) * max(t_energy, 1e-12))
    return np.where(flat, 0.0, np.clip(ncc, -1.0, 1.0))


def _best_crop(thumb: np.ndarray, pic_grey: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Where the picture fits best as a window of the thumbnail, over scales from the whole width down to 1/8."""
    th, tw = thumb.shape
    ph, pw = pic_grey.shape
    best, where = -1.0, {}
    for scale in np.geomspace(1.0, 0.125, 24):
        w = int(round(min(tw, th * pw / ph) * scale))
        h = int(round(w * ph / pw))
        if w < 12 or h < 12 or h > th or w > tw:
            continue
        ncc = _ncc_map(thumb, _resize(pic_grey, w, h))
        k = int(ncc.argmax())
        if ncc.flat[k] > best:
            y, x = divmod(k, ncc.shape[1])
            best = float(ncc.flat[k])
            where = {"window_fraction": round(w * h / (tw * th), 3), "window_x": round(x / tw, 3),
                     "window_y": round(y / th, 3), "window_width": round(w / tw, 3), "window_height": round(h / th, 3)}
    return best, where


def compare_thumbnail(thumbnail: np.ndarray, picture: np.ndarray) -> ThumbnailComparison:
    """Compare a decoded EXIF thumbnail (HxWx3) with the picture's stored pixels (HxWx3)."""
    size = (int(thumbnail.shape[1]), int(thumbnail.shape[0]))
    thumb, box = trim_black_bars(_grey(thumbnail))
    pic_grey = _grey(picture)
    th, tw = thumb.shape
    ph, pw = pic_grey.shape
    evidence: dict[str, Any] = {"thumbnail_box": list(box)}
    if float(_resize(pic_grey, tw, th).std()) < FLAT_PICTURE_STD or float(thumb.std()) < FLAT_PICTURE_STD:
        return ThumbnailComparison("flat", 0.0, size, evidence)  # nothing to line up: a blank wall, a dark frame
    if abs(np.log((tw / th) / (pw / ph))) < ASPECT_TOLERANCE:
        r, found = _changed_regions(thumb, _resize(pic_grey, tw, th))
        if r >= SAME_FRAME_R and found:
            outcome = "edited" if found["changed_regions"] else "match"
            return ThumbnailComparison(outcome, r, size, {**evidence, **found})
    r, where = _best_crop(thumb, pic_grey)
    if r >= CROP_R and where.get("window_fraction", 1.0) < 0.97:
        return ThumbnailComparison("crop", r, size, {**evidence, **where})
    return ThumbnailComparison("other", r, size, {**evidence, **where})


def thumbnail_rgb(blob: bytes, name: str) -> np.ndarray:
    """Decode thumbnail bytes through the one decoder (an ImageLoadError when they are not an image)."""
    from ..imageio import decode_bytes

    return decode_bytes(blob, f"{name} (EXIF thumbnail)")


__all__ = ["ThumbnailComparison", "compare_thumbnail", "extract_thumbnail", "thumbnail_rgb", "trim_black_bars"]
