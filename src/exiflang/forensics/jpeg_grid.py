"""Classical, training-free detector: JPEG 8x8 grid origin from the number of DCT zeros (ZERO-style).

In the spirit of Nikoukhah, Anger, Ehret, Colom, Morel, Grompone von Gioi, "JPEG grid detection based
on the number of DCT zeros and its application to automatic and localized forgery detection" (CVPRW
2019): JPEG quantises the DCT of non-overlapping 8x8 blocks and sets many coefficients to zero. After
decoding, a block that lies *on* the compression grid still has those zeros (up to pixel rounding);
a block straddling the grid does not. So counting zeros over all 64 block phases reveals the grid.

1. Luminance: Y = 0.299 R + 0.587 G + 0.114 B, **rounded** (for a decoded JPEG this recovers the
   decoder's integer Y almost always, since the colour-conversion rounding error is below 0.5), minus 128.
2. Zeros: for every block position (y, x) the orthonormal 8x8 DCT-II of the block whose top-left pixel
   is (y, x) (the DCT JPEG/libjpeg uses, before dividing by the quantisation table), computed for all
   positions at once as a separable transform (8 row filters, then 8 column filters per row filter,
   as shifted adds); the count of AC coefficients with |round(c)| == 0 (63 AC, the DC is ignored).
3. Votes: each pixel looks at the 64 blocks that contain it, one per grid origin, and votes for the
   origin (dy, dx) = (top-left mod 8) of the block with the most zeros. No vote on a tie, nor when the
   best block is flat (all 63 AC zero: a constant patch says nothing about a grid, and near a flat area
   the content, not the compression, would pick the winner), nor within 7 px of the image border, where
   some of the 64 blocks fall outside the image and the remaining ones would bias the vote.
4. Global grid: the origin with the most votes, kept only when it is significant a contrario:
   NFA = 64 * P[Binomial(n, 1/64) >= k] < 1 for k of its n votes. Decision: votes of neighbouring
   pixels share most of their blocks and are far from independent (one block with many zeros wins the
   vote of all its 64 pixels), while a pixel's vote only depends on the 15 x 15 window around it, so k
   and n are divided by 225 (one effective vote per 15 x 15 window) before the (continuous) binomial
   tail. This is our choice, not the paper's: with 1/64 instead, never-compressed textures showed
   "significant" origins at 2.3-2.6% of the votes.
5. Off-grid regions: votes are histogrammed per 8x8 cell and smoothed over 4x4 cells (32 px); a cell is a
   candidate when its local majority origin differs from the global one and holds >= 20% of the local
   votes (with no global grid: any origin). Candidate cells are grouped into 4-connected regions per
   origin g. Each region is tested on its bounding box (rectangles are a family fixed in advance, so the
   test is not biased by the way the region was grown): NFA = N_tests * P[Bin(n/225, 1/64) >= k/225]
   with k the votes for g and n all votes in the box, N_tests = 64 origins x the number of cell-aligned
   rectangles. Score = -log10(NFA) of the most significant region, 0 when no region has NFA < 1.
6. Heatmap (cell-constant, float32 HxW in [0, 1], high = likely manipulated): 0.5 x the local fraction
   of votes for non-dominant origins (shrunk towards 0 where few pixels vote); cells of significant
   regions are raised to 0.5 + 0.5 x their local fraction of votes for the region's origin, so
   ``heatmap >= 0.5`` is exactly the set of a-contrario detections.

Known weaknesses:
* A global re-compression on the dominant grid writes a fresh grid over everything and hides the old
  one, so a region pasted with a shifted grid and then re-saved falls back to chance; the same holds for
  images that were resized, filtered or re-saved at high quality after the splice.
* Flat or saturated areas cast no votes; strongly textured areas at high quality cast few and noisy
  votes. The non-dominant fraction (the part of the heatmap below 0.5) is therefore noisy there.
* A pasted region that was itself compressed on the same grid (aligned) or never compressed ("missing
  grid") is not flagged: only a *different* grid origin is detected.
* Votes are not independent; the 1/225 effective-sample correction is a heuristic, so NFAs are
  indicative, not exact false-alarm rates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from ..imageio import check_min_side
from .errors import ForensicsError
from .cells import CellMap, block_map

METHOD_ID = "jpeg-grid-v1"
MIN_SIDE = 16  # a pixel votes from the 15 x 15 window around it, and no pixel within 7 px of a border votes
CELL = 8  # pixels per side of a vote-histogram cell
SMOOTH_CELLS = 4  # 4 x 4 cells = 32 px
MIN_LOCAL_FRACTION = 0.2
DEPENDENCE = 225.0  # pixel votes per effective independent vote: a vote depends on a 15 x 15 window
ORIGIN_BAND = 256  # rows per band when `grid_origin` counts votes band by band (a multiple of 8)
ORIGIN_SAMPLE_PIXELS = 8_000_000  # `Detector`'s vote budget for the grid origin of a large photo


@dataclass
class GridAnalysis:
    """Result of `grid_analysis`: heatmap (held per 8x8 cell), score and the per-pixel grid votes."""

    cell_map: CellMap  # float32 in [0, 1] per 8x8 cell, high = likely manipulated (96 MB less than pixels at 24 MP)
    score: float  # -log10(NFA) of the most significant off-grid region, 0 when none
    origin: tuple[int, int] | None  # (dy, dx) in 0..7; None when the image shows no significant grid
    votes: np.ndarray  # int8 HxW, origin index dy*8+dx or -1
    origin_fraction: float  # fraction of the votes cast for the dominant origin (0 when None)

    @property
    def heatmap(self) -> np.ndarray:
        """The map at full resolution: float32 HxW in [0, 1], high = likely manipulated."""
        return self.cell_map.full()


def _dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II matrix D[u, n] (JPEG's scaling)."""
    n = np.arange(8)
    d = np.sqrt(2.0 / 8.0) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16.0)
    d[0] /= np.sqrt(2.0)
    return d


DCT8 = _dct_matrix()


def check_image(image: np.ndarray) -> None:
    """Raise ForensicsError unless image is an HxW or HxWx3 uint8 array, ImageTooSmallError unless its sides are
    at least MIN_SIDE."""
    if not isinstance(image, np.ndarray):
        raise ForensicsError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ForensicsError(f"expected a uint8 image (0..255), got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ForensicsError(f"expected an HxW gray or HxWx3 RGB image, got shape {image.shape}")
    check_min_side(image.shape[0], image.shape[1], MIN_SIDE, "the JPEG grid analysis")


def luminance(image: np.ndarray) -> np.ndarray:
    """Rounded JPEG luminance of an HxW / HxWx3 uint8 image, minus 128, as float32 HxW."""
    check_image(image)
    if image.ndim == 2 or image.shape[2] == 1:
        y = image.reshape(image.shape[:2]).astype(np.float32)
    else:
        rgb = image.astype(np.float32)
        y = np.round(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    return y - 128.0


def zero_counts(lum: np.ndarray) -> np.ndarray:
    """Number of AC DCT coefficients with |round(c)| == 0 of the block at every (y, x): int8 (H-7)x(W-7)."""
    lum = np.asarray(lum, dtype=np.float32)
    h, w = lum.shape
    d = DCT8.astype(np.float32)
    # Row transform of every horizontal 8-window: rows[u] is (H, W-7).
    rows = np.empty((8, h, w - 7), dtype=np.float32)
    for u in range(8):
        acc = d[u, 0] * lum[:, 0 : w - 7]
        for k in range(1, 8):
            acc += d[u, k] * lum[:, k : k + w - 7]
        rows[u] = acc
    counts = np.zeros((h - 7, w - 7), dtype=np.int8)
    acc = np.empty((h - 7, w - 7), dtype=np.float32)
    tmp = np.empty_like(acc)
    for u in range(8):
        ru = rows[u]
        for v in range(8):
            if u == 0 and v == 0:
                continue  # the DC coefficient
            np.multiply(ru[0 : h - 7], d[v, 0], out=acc)
            for k in range(1, 8):
                np.multiply(ru[k : k + h - 7], d[v, k], out=tmp)
                acc += tmp
            counts += np.abs(acc) < 0.5
    return counts


def grid_votes(lum: np.ndarray) -> np.ndarray:
    """Per-pixel vote (dy*8+dx of the block with most zeros among the 64 containing it, -1 for none): int8 HxW."""
    h, w = lum.shape
    padded = np.full((h + 7, w + 7), -1, dtype=np.int8)
    padded[7:h, 7:w] = zero_counts(lum)  # the block starting at (i, j) sits at padded[i + 7, j + 7]
    best = np.full((h, w), -1, dtype=np.int8)
    tie = np.zeros((h, w), dtype=bool)
    arg = np.zeros((h, w), dtype=np.int8)
    for a in range(8):
        for b in range(8):
            cand = padded[7 - a : 7 - a + h, 7 - b : 7 - b + w]  # block starting at (y - a, x - b)
            greater = cand > best
            tie |= cand == best
            tie &= ~greater
            np.maximum(best, cand, out=best)
            arg[greater] = a * 8 + b
    a, b = arg // 8, arg % 8
    dy = (np.arange(h)[:, None] - a) % 8
    dx = (np.arange(w)[None, :] - b) % 8
    votes = (dy * 8 + dx).astype(np.int8)
    votes[tie | (best >= 63) | (best < 0)] = -1
    # Within 7 px of the border some of the 64 blocks are missing, which would bias the vote: no vote there.
    votes[:7], votes[h - 7 :], votes[:, :7], votes[:, w - 7 :] = -1, -1, -1, -1
    return votes


def log10_binom_tail(k: float, n: float, p: float) -> float:
    """log10 P[X >= k] for X ~ Binomial(n, p), continuous in k and n (regularised incomplete beta)."""
    if n <= 0 or k <= 0:
        return 0.0
    k = min(k, n)
    if k <= n * p:
        return float(np.log10(max(special.betainc(k, n - k + 1.0, p), 1e-300)))
    tail = special.betainc(k, n - k + 1.0, p)
    if tail > 1e-250:
        return float(np.log10(tail))
    # Underflow: the first term of the tail times the geometric bound on the rest (an upper bound).
    log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    logpmf = log_choose + k * np.log(p) + (n - k) * np.log1p(-p)
    ratio = (n - k) * p / ((k + 1.0) * (1.0 - p))
    return float((logpmf - np.log1p(-min(ratio, 0.999))) / np.log(10.0))


def _vote_histogram(votes: np.ndarray) -> np.ndarray:
    """Vote counts of the 64 origins."""
    return np.bincount(votes[votes >= 0].ravel().astype(np.int64), minlength=64)[:64]


def _dominant(votes: np.ndarray) -> tuple[tuple[int, int] | None, float, np.ndarray]:
    """Dominant origin (None when not significant), its fraction of the votes, and the 64 vote counts."""
    return _dominant_from_histogram(_vote_histogram(votes))


def _dominant_from_histogram(hist: np.ndarray) -> tuple[tuple[int, int] | None, float, np.ndarray]:
    """`_dominant` from the 64 vote counts."""
    total = int(hist.sum())
    if total == 0:
        return None, 0.0, hist
    g = int(np.argmax(hist))
    log_nfa = np.log10(64.0) + log10_binom_tail(hist[g] / DEPENDENCE, total / DEPENDENCE, 1.0 / 64.0)
    if log_nfa >= 0.0:
        return None, 0.0, hist
    return (g // 8, g % 8), float(hist[g] / total), hist


def band_votes(image: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """The votes `grid_votes` gives rows y0..y1-1 of the whole image (y0 a multiple of 8), from those rows alone.

    A pixel's vote reads the 15 rows around it, so a crop with 8 rows of context on each side gives exactly the
    whole image's votes there (8, not 7: the crop then starts on a multiple of 8 and the origins keep their
    meaning), at the memory cost of the band instead of the photo's (the DCT of all positions is 32 bytes/px).
    """
    h = image.shape[0]
    a, b = max(0, y0 - 8), min(h, y1 + 8)
    return grid_votes(luminance(image[a:b]))[y0 - a : y1 - a]


def _bands(h: int) -> list[tuple[int, int]]:
    """Rows [y0, y1) of the bands `band_votes` reads, ORIGIN_BAND rows each (a sliver at the bottom joins the band
    above it)."""
    bounds = list(range(0, h, ORIGIN_BAND)) + [h]
    if bounds[-1] - bounds[-2] < 8:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


def votes_by_band(image: np.ndarray) -> np.ndarray:
    """`grid_votes` of the whole image, computed band by band: the same int8 HxW votes, with the DCT of every
    position (32 bytes per pixel) held for one band at a time instead of for the whole photo (770 MB at 24 MP)."""
    check_image(image)
    return np.concatenate([band_votes(image, y0, y1) for y0, y1 in _origin_bands(*image.shape[:2], None)])


def grid_origin(image: np.ndarray, max_pixels: int | None = None) -> tuple[int, int] | None:
    """Dominant JPEG grid origin (dy, dx) of an HxW / HxWx3 uint8 image, or None when no grid is significant.

    Votes are counted band by band (`band_votes`: the same counts as the whole image at once, in bounded
    memory). With ``max_pixels``, an image larger than that votes with evenly spaced bands holding about
    ``max_pixels`` pixels only: the grid is one global property, and a few megapixels of votes decide it as
    surely as a hundred (`Detector` uses `ORIGIN_SAMPLE_PIXELS`, so time stays flat on large photos).
    """
    check_image(image)
    return _origin_of_bands(*image.shape[:2], max_pixels, lambda y0, y1: band_votes(image, y0, y1))


def origin_from_votes(votes: np.ndarray, max_pixels: int | None = None) -> tuple[int, int] | None:
    """`grid_origin(image, max_pixels)` from the image's `votes_by_band`, without counting them again: the same
    bands are read, so the same origin (the fusion counts the votes once for the learned map's grid, the grid
    analysis and the pixel-domain dq analysis)."""
    return _origin_of_bands(*votes.shape, max_pixels, lambda y0, y1: votes[y0:y1])


def _origin_of_bands(h: int, w: int, max_pixels: int | None, votes_of) -> tuple[int, int] | None:
    """The dominant origin of the votes ``votes_of(y0, y1)`` gives for the bands that decide it (`_origin_bands`)."""
    hist = np.zeros(64, dtype=np.int64)
    for y0, y1 in _origin_bands(h, w, max_pixels):
        hist += _vote_histogram(votes_of(y0, y1))
    return _dominant_from_histogram(hist)[0]


def _origin_bands(h: int, w: int, max_pixels: int | None) -> list[tuple[int, int]]:
    """The bands whose votes decide the origin: the whole image when it is under two bands high (one band's votes
    are the whole image's), else all bands, or evenly spaced ones holding about ``max_pixels``."""
    if h < 2 * ORIGIN_BAND:
        return [(0, h)]
    bands = _bands(h)
    if max_pixels is not None and h * w > max_pixels:
        n = max(1, int(max_pixels) // (ORIGIN_BAND * w))
        bands = [bands[i] for i in sorted(set(np.linspace(0, len(bands) - 1, n).round().astype(int)))]
    return bands


def _cell_histograms(votes: np.ndarray) -> np.ndarray:
    """Vote counts per 8x8 cell and origin: uint8 (rows, cols, 64); the remainder joins the last cell (at most
    15 x 15 = 225 pixels, so a count fits a byte: a quarter of float32's 96 MB at 24 MP)."""
    h, w = votes.shape
    rows, cols = h // CELL, w // CELL
    ix = np.minimum(np.arange(w) // CELL, cols - 1)
    hist = np.empty((rows, cols, 64), dtype=np.uint8)
    # 32 cell rows at a time: the per-pixel int64 indices of a whole 24 MP photo took 0.6 GB
    for r0 in range(0, rows, 32):
        r1 = min(rows, r0 + 32)
        y0, y1 = r0 * CELL, (r1 * CELL if r1 < rows else h)
        band = votes[y0:y1]
        iy = np.minimum(np.arange(y0, y1) // CELL, rows - 1) - r0
        ok = band >= 0
        flat = (iy[:, None] * cols + ix[None, :])[ok] * 64 + band[ok]
        hist[r0:r1] = np.bincount(flat, minlength=(r1 - r0) * cols * 64).reshape(r1 - r0, cols, 64)
    return hist


def _regions(hist: np.ndarray, smooth: np.ndarray, g0: int | None) -> list[tuple[float, int, np.ndarray | None]]:
    """Candidate off-grid regions as (log10 NFA, origin, cell mask), most significant first; the mask only for the
    significant ones (log10 NFA < 0), the only ones read: a large noisy photo has thousands of candidates."""
    rows, cols, _ = hist.shape
    total = smooth.sum(axis=2)
    mode = np.argmax(smooth, axis=2)
    frac = np.take_along_axis(smooth, mode[..., None], axis=2)[..., 0] / np.maximum(total, 1e-6)
    cand = (frac >= MIN_LOCAL_FRACTION) & (total > 0)
    if g0 is not None:
        cand &= mode != g0
    # Summed-area tables for box counts: all votes, and votes per origin.
    sat_all = np.pad(hist.sum(axis=2, dtype=np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # exact counts
    log_tests = np.log10(64.0) + np.log10(rows * (rows + 1) / 2.0) + np.log10(cols * (cols + 1) / 2.0)
    found = []
    for g in np.unique(mode[cand]):
        labels, n = ndimage.label(cand & (mode == g))
        if n == 0:
            continue
        sat_g = np.pad(hist[..., g].astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        for idx, box in enumerate(ndimage.find_objects(labels), start=1):
            y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
            k = sat_g[y1, x1] - sat_g[y0, x1] - sat_g[y1, x0] + sat_g[y0, x0]
            nv = sat_all[y1, x1] - sat_all[y0, x1] - sat_all[y1, x0] + sat_all[y0, x0]
            log_nfa = log_tests + log10_binom_tail(k / DEPENDENCE, nv / DEPENDENCE, 1.0 / 64.0)
            found.append((float(log_nfa), int(g), labels == idx if log_nfa < 0.0 else None))
    found.sort(key=lambda r: r[0])
    return found


def grid_analysis(image: np.ndarray, votes: np.ndarray | None = None) -> GridAnalysis:
    """Grid votes, dominant origin, a-contrario off-grid regions, heatmap and score of an HxW / HxWx3 uint8 image
    (``votes``: its `votes_by_band`, when the caller has counted them already)."""
    check_image(image)
    votes = votes_by_band(image) if votes is None else votes
    if votes.shape != image.shape[:2]:
        raise ForensicsError(f"votes of shape {votes.shape} for an image of {image.shape[:2]}")
    h, w = votes.shape
    origin, fraction, _ = _dominant(votes)
    g0 = None if origin is None else origin[0] * 8 + origin[1]
    hist = _cell_histograms(votes)
    # float32 output: scipy filters each line in float64 whatever the input type, so byte counts give the same
    # means as float32 counts did
    smooth = ndimage.uniform_filter(hist, size=(SMOOTH_CELLS, SMOOTH_CELLS, 1), output=np.float32, mode="nearest")
    total = smooth.sum(axis=2)
    if g0 is None:
        cell_heat = np.zeros(total.shape, dtype=np.float32)
    else:
        # A cell-average of 4 votes (of 64 pixels) as prior: cells with few votes lean towards 0.
        cell_heat = 0.5 * (total - smooth[..., g0]) / (total + 4.0)
    regions = _regions(hist, smooth, g0)
    score = 0.0
    for log_nfa, g, mask in regions:
        if log_nfa >= 0.0:
            break
        score = max(score, -log_nfa)
        local = smooth[..., g] / np.maximum(total, 1e-6)
        cell_heat = np.where(mask, np.maximum(cell_heat, 0.5 + 0.5 * local), cell_heat)
    # clipped per cell and kept per cell: pixels take their cell's value (the remainder joins the last cell)
    heat = block_map(np.clip(cell_heat, 0.0, 1.0).astype(np.float32), h, w, CELL)
    return GridAnalysis(cell_map=heat, score=float(score), origin=origin, votes=votes, origin_fraction=fraction)


__all__ = ["METHOD_ID", "ORIGIN_SAMPLE_PIXELS", "GridAnalysis", "band_votes", "check_image", "grid_analysis", "grid_origin", "grid_votes", "luminance", "origin_from_votes",
           "votes_by_band",
           "zero_counts"]
