"""Classical, training-free detector: aligned double-JPEG-quantisation (DQ) likelihood map.

In the line of Lin, He, Tang, Tang, "Fast, automatic and fine-grained tampered JPEG image detection via
DCT coefficient analysis" (Pattern Recognition 2009) and Bianchi & Piva, "Image forgery localization via
block-grained analysis of JPEG artifacts" (IEEE TIFS 2012). When a JPEG (primary step Q1) is decoded,
edited and saved again (step Q2) on the same 8x8 grid, the untouched background is quantised twice and
the histogram of each DCT coefficient (in units of Q2) becomes periodic: with Q1 > Q2 some bins are
nearly empty, with Q1 < Q2 some are doubled. A region pasted from elsewhere (never compressed, or
compressed on another grid) was quantised once and has a smooth histogram. Each block is scored by how
much better the single-quantisation model explains its coefficients than the double-quantisation one.

Model, per frequency (the first `N_FREQ` = 9 AC coefficients in zig-zag order, luminance only):

1. Coefficients c (integers, units of the last step Q2) on the image's JPEG grid. From a JPEG file: the
   file's own quantised coefficients and quantisation table (`jpeglib.read_dct`), grid (0, 0), no
   decoding. From decoded pixels: the orthonormal block DCT of the rounded luminance on the grid
   `jpeg_grid.grid_origin` finds ((0, 0) when it finds none); Q2 is estimated as the largest step q on
   whose multiples the coefficients with |x| > 0.4 q sit (mean cos(2 pi x / q) >= 0.35); c = round(x / Q2).
2. Content model: the unquantised coefficient is a scale mixture of zero-mean Laplacians (`SCALES`, 20
   scales from 0.2 to 300; the mixing weights are free, so any smooth, unimodal, heavy-tailed histogram
   fits). Single quantisation: p_SQ(c) = P[round(x / Q2) = c]. Double quantisation with primary step Q1:
   p_DQ(c) = sum_k P[round(x / Q1) = k] P[round((k Q1 + e) / Q2) = c], e ~ N(0, 0.35^2) the rounding
   noise of the first decoding (it decides the bins where k Q1 / Q2 falls on a half integer). With
   Q1 > Q2 p_DQ has empty bins, with Q1 < Q2 doubled ones: a periodic comb no Laplacian mixture makes.
   Values beyond +-`MAX_BIN` join the edge bins. We fit the content model to the image's own histogram
   instead of "calibrating" it on a grid-shifted copy: the shifted copy carries blocking noise, which
   makes it too wide near zero, and an excess of zeros was then mistaken for double compression.
3. Primary step and mixture: for every Q1 in 1..`MAX_Q1` (except Q2), EM fits the weights of the
   SQ and DQ halves of the mixture on the histogram of c (all blocks, the zero bin included); the
   gain is the log-likelihood over the best pure-SQ fit. The best Q1 is kept when the gain is at least
   `MIN_GAIN` = 20 nats and the DQ half weighs at least `MIN_ALPHA`; otherwise the frequency carries no
   DQ evidence and is left out. This is the histogram-periodicity (primary step) estimate.
4. Block log-likelihood ratio: one content distribution (the fitted scale weights of both halves
   together), quantised once or twice, gives p_SQ and p_DQ, so the ratio compares two quantisations of
   the same content rather than two differently fitted contents. L(block) = sum over kept frequencies of log p_SQ(c) - log p_DQ(c),
   each term clipped to +-`LLR_CLIP` (one odd coefficient cannot decide alone), then averaged over the
   3x3 block neighbourhood and multiplied by 3 (a splice spans many blocks: this pools neighbours'
   evidence without letting one block's noise dominate).
5. Heatmap: posterior P(single | block) = sigmoid(L) with equal priors, block-constant, upsampled to
   pixels (pixels before the first block join it; the remainder beyond the last full block joins the
   last). All zeros when no frequency shows DQ: without a double-compressed reference there is nothing
   to contrast against, and a plain single JPEG is not evidence of a splice.
6. Score: connected regions of blocks with L > 0; the most suspicious is the one with the largest summed
   L; score = median L inside it minus median L in the rest of the image (nats; 0 when no DQ evidence,
   no region, or no rest).

Known weaknesses:
* Only *aligned* double compression is modelled (non-aligned DQ is not): blocks are always taken on the
  grid of the *last* compression (the file's, or the one `grid_origin` finds in decoded pixels, so pixels
  cropped after the last save are still read on the right grid). If the image was cropped by a
  non-multiple of 8 *between* the two compressions, the background looks singly compressed too: no
  frequency shows DQ and the score is 0. A region pasted from a JPEG with a shifted grid counts as
  singly compressed, i.e. it is flagged, which is the right answer in the common case.
* Q1 = Q2 (same quality twice) leaves no trace; Q1 a divisor of Q2 (e.g. a much higher first quality)
  leaves almost none; a coarse Q2 (low second quality) zeroes most coefficients and leaves little evidence.
* Flat and saturated blocks have all-zero AC coefficients; with Q1 > Q2 the DQ model explains zeros
  better, so flat areas of a pasted region look "double" and the map follows texture there.
* When the background is itself already double compressed (a camera JPEG re-saved, then spliced and
  saved again), there are two primary steps; each frequency locks onto one of them, and frequencies that
  choose differently pull the map in opposite directions (it can even invert: the region compressed
  with the other primary step is then the one marked "single").
* Heat means "singly compressed", not "the minority": when the double-compressed part is the small
  region (a doubly compressed patch pasted into a singly compressed image), the *background* is high.
* From decoded pixels, clipping at 0/255 and colour conversion add noise; the estimated Q2 can be a
  divisor of the true one at frequencies with few non-zero coefficients.
* Sums of per-frequency LLRs assume independent frequencies (naive Bayes), so posteriors are overconfident.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage, special

from ..imageio import ImageLoadError, check_min_side, regular_file_problem, starts_as_jpeg
from . import jpeg_grid
from .errors import ForensicsError
from .cells import CellMap, block_map

METHOD_ID = "dq-v1"
# The first AC coefficients in JPEG zig-zag order, as (row = vertical frequency, column = horizontal).
ZIGZAG_AC = [(0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2)]
N_FREQ = 9
MAX_BIN = 60
MAX_Q1 = 40
NOISE_SIGMA = 0.35
MIN_GAIN = 20.0
MIN_ALPHA = 0.03
LLR_CLIP = 4.0
EM_STEPS = 200
EM_STEPS_ALT = 40
SCALES = np.geomspace(0.2, 300.0, 20)  # Laplacian scales (coefficient units) of the mixtures


@dataclass
class DQAnalysis:
    """Result of `dq_analysis` / `dq_analysis_file`."""

    cell_map: CellMap  # float32 in [0, 1] per 8x8 block, high = likely spliced (singly compressed)
    score: float  # higher = more likely manipulated; 0 when no double quantisation is found
    origin: tuple[int, int]  # (dy, dx) of the 8x8 grid the blocks were taken on

    @property
    def heatmap(self) -> np.ndarray:
        """The map at full resolution: float32 HxW in [0, 1], each pixel its block's value (the pixels before the
        grid's origin join the first block, the remainder the last)."""
        return self.cell_map.full()


def _block_dct(lum: np.ndarray, oy: int, ox: int) -> np.ndarray:
    """Orthonormal DCT of the full 8x8 blocks of lum starting at (oy, ox), low frequencies: (rows, cols, N_FREQ)."""
    h, w = lum.shape
    rows, cols = (h - oy) // 8, (w - ox) // 8
    if rows < 1 or cols < 1:
        return np.zeros((max(rows, 0), max(cols, 0), N_FREQ))
    blocks = lum[oy : oy + rows * 8, ox : ox + cols * 8].astype(np.float64).reshape(rows, 8, cols, 8)
    d = jpeg_grid.DCT8
    freqs = ZIGZAG_AC[:N_FREQ]
    du = d[[u for u, _ in freqs]]  # (F, 8) vertical basis
    dv = d[[v for _, v in freqs]]  # (F, 8) horizontal basis
    return np.einsum("fi,aibj,fj->abf", du, blocks, dv, optimize=True)


def estimate_step(x: np.ndarray, max_q: int = 64, min_samples: int = 30) -> int:
    """Largest quantisation step q whose multiples the dequantised coefficients x sit on (1 when none is clear)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    ax = np.abs(x)
    best = 1
    for q in range(2, max_q + 1):
        sel = x[(ax > 0.4 * q) & (ax > 1.0)]
        if sel.size < min_samples:
            break
        if np.mean(np.cos(2.0 * np.pi * sel / q)) >= 0.35:
            best = q
    return best


def _histogram(values: np.ndarray) -> np.ndarray:
    """Counts of integer values clipped to [-MAX_BIN, MAX_BIN] (2*MAX_BIN+1 bins)."""
    v = np.clip(np.asarray(values, dtype=np.int64).ravel(), -MAX_BIN, MAX_BIN) + MAX_BIN
    return np.bincount(v, minlength=2 * MAX_BIN + 1).astype(np.float64)


def _laplace_bins(edges: np.ndarray) -> np.ndarray:
    """Probability of each bin [edges[i], edges[i+1]) under a zero-mean Laplacian of every scale in SCALES."""
    z = np.abs(edges[None, 1:-1]) / SCALES[:, None]
    half = 0.5 * np.exp(-z)
    cdf = np.where(edges[None, 1:-1] < 0, half, 1.0 - half)
    cdf = np.concatenate([np.zeros((len(SCALES), 1)), cdf, np.ones((len(SCALES), 1))], axis=1)
    return np.diff(cdf, axis=1)  # the outermost bins take the tails


@lru_cache(maxsize=256)
def _sq_basis(q2: int) -> np.ndarray:
    """Bin probabilities of round(x / q2) for x Laplacian of every scale: (len(SCALES), bins)."""
    return _laplace_bins((np.arange(-MAX_BIN, MAX_BIN + 2) - 0.5) * q2)


@lru_cache(maxsize=4096)
def _dq_basis(q1: int, q2: int) -> np.ndarray:
    """Bin probabilities of round((q1 round(x / q1) + e) / q2), e ~ N(0, NOISE_SIGMA^2): (len(SCALES), bins)."""
    kmax = int(np.ceil((MAX_BIN + 1) * q2 / q1)) + 1
    k = np.arange(-kmax, kmax + 1)
    first = _laplace_bins((np.arange(-kmax, kmax + 2) - 0.5) * q1)  # (scales, k)
    # Transition k -> c: the noise (sigma << q2) can only move k q1 / q2 into a neighbouring bin.
    y = k * q1 / q2
    c0 = np.round(y)
    p_up = special.ndtr(((y - c0) - 0.5) * q2 / NOISE_SIGMA)  # P[lands in c0 + 1]
    p_down = special.ndtr((-0.5 - (y - c0)) * q2 / NOISE_SIGMA)  # P[lands in c0 - 1]
    out = np.zeros((len(SCALES), 2 * MAX_BIN + 1))
    for shift, prob in ((0, 1.0 - p_up - p_down), (1, p_up), (-1, p_down)):
        col = np.clip(c0 + shift, -MAX_BIN, MAX_BIN).astype(np.int64) + MAX_BIN  # non-decreasing in k
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        out[:, col[starts]] += np.add.reduceat(first * prob, starts, axis=1)
    return out


def _em(basis: np.ndarray, counts: np.ndarray, weights: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched EM for mixing weights of fixed components: basis (..., K, bins), weights (..., K); (weights, log-lik)."""
    nz = counts > 0
    b = np.ascontiguousarray(basis[..., nz])
    bt = np.ascontiguousarray(np.swapaxes(b, -1, -2))
    c = counts[nz]
    n = c.sum()
    w = np.array(weights, dtype=np.float64)[..., None, :]  # (..., 1, K)
    for _ in range(steps):
        mix = w @ b  # (..., 1, bins)
        w = w * ((c / np.maximum(mix, 1e-300)) @ bt) / n
    mix = (w @ b)[..., 0, :]
    return w[..., 0, :], np.log(np.maximum(mix, 1e-300)) @ c


def _fit_frequency(c: np.ndarray, q2: int, info: dict | None = None) -> np.ndarray | None:
    """Clipped log p_SQ - log p_DQ per bin for the best primary step; None when DQ is not supported."""
    counts = _histogram(c)
    if counts.sum() == 0:
        return None
    g = len(SCALES)
    sq = _sq_basis(q2)
    w_sq, base = _em(sq, counts, np.full(g, 1.0 / g), EM_STEPS)
    q1s = np.array([q for q in range(1, MAX_Q1 + 1) if q != q2])
    dq = np.stack([_dq_basis(int(q), q2) for q in q1s])  # (Q, scales, bins)
    basis = np.concatenate([np.broadcast_to(sq, dq.shape), dq], axis=1)  # (Q, 2 scales, bins)
    start = np.broadcast_to(np.concatenate([0.5 * w_sq, 0.5 * w_sq]), (len(q1s), 2 * g))
    w, ll = _em(basis, counts, start, EM_STEPS_ALT)
    i = int(np.argmax(ll))
    gain, alpha, q1 = float(ll[i] - base), float(w[i, g:].sum()), int(q1s[i])
    if info is not None:
        info.update(gain=gain, alpha=alpha, q1=q1)
    if gain < MIN_GAIN or alpha < MIN_ALPHA:
        return None
    # One content distribution (the fitted scale weights of both halves), quantised once or twice.
    scale_w = w[i, :g] + w[i, g:]
    p_sq = scale_w @ sq + 1e-9
    p_dq = scale_w @ dq[i] + 1e-9
    return np.clip(np.log(p_sq) - np.log(p_dq), -LLR_CLIP, LLR_CLIP)


def _analyse(c: np.ndarray, q2: np.ndarray, shape: tuple[int, int], origin: tuple[int, int]) -> DQAnalysis:
    """Block LLRs, heatmap and score from quantised coefficients c (rows, cols, F) with steps q2 (F,)."""
    h, w = shape
    rows, cols = c.shape[:2]
    llr = np.zeros((rows, cols))
    used = 0
    for f in range(c.shape[2]):
        fit = _fit_frequency(c[..., f], int(q2[f]))
        if fit is None:
            continue
        llr += fit[np.clip(c[..., f].astype(np.int64), -MAX_BIN, MAX_BIN) + MAX_BIN]
        used += 1
    if used == 0:
        return DQAnalysis(block_map(np.zeros((rows, cols), np.float32), h, w, 8, origin), score=0.0, origin=origin)
    llr = 3.0 * ndimage.uniform_filter(llr, size=3, mode="nearest")
    # kept per block (a full-resolution float32 map is 96 MB at 24 MP): pixels take their block's value
    heat = block_map(special.expit(llr).astype(np.float32), h, w, 8, origin)
    return DQAnalysis(heat, score=_score(llr), origin=origin)


def _score(llr: np.ndarray) -> float:
    """Median LLR of the most suspicious connected positive region minus the median of the rest (>= 0)."""
    labels, n = ndimage.label(llr > 0)
    if n == 0:
        return 0.0
    mass = ndimage.sum_labels(llr, labels, index=np.arange(1, n + 1))
    region = labels == int(np.argmax(mass)) + 1
    if region.all():
        return 0.0
    return float(max(0.0, np.median(llr[region]) - np.median(llr[~region])))


def dq_analysis(image: np.ndarray, votes: np.ndarray | None = None) -> DQAnalysis:
    """DQ heatmap and score from decoded pixels (HxW / HxWx3 uint8), on the grid `jpeg_grid.grid_origin` finds
    (from ``votes``, the image's `jpeg_grid.votes_by_band`, when the caller has counted them already)."""
    lum = jpeg_grid.luminance(image)  # validates
    found = jpeg_grid.grid_origin(image) if votes is None else jpeg_grid.origin_from_votes(votes)
    origin = found or (0, 0)
    oy, ox = origin
    x = _block_dct(lum, oy, ox)
    q2 = np.array([estimate_step(x[..., f]) for f in range(N_FREQ)])
    c = np.round(x / q2).astype(np.int64)
    return _analyse(c, q2, lum.shape, origin)


def without_metadata_segments(data: bytes) -> bytes:
    """The JPEG `data` without its APPn and COM segments (EXIF, XMP, ICC, maker data, comments): the same image
    data, tables and coefficients. libjpeg refuses some camera files with many APP2 segments ("Too many markers")
    that decode fine without them. Anything that does not parse as JPEG segments comes back unchanged."""
    out, i = bytearray(data[:2]), 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte before a marker
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data and everything after it stay as they are
            return bytes(out + data[i:])
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += data[i:end]
        i = end
    return data


def _read_dct(path: Path):
    """The file's DCT coefficients and tables (jpeglib), retried without its metadata segments when libjpeg
    refuses them; None (with a warning) when neither reads, so that the caller falls back to the pixels."""
    import tempfile

    import jpeglib

    def read(source: Path):
        dct = jpeglib.read_dct(str(source))
        dct.Y, dct.qt  # jpeglib reads lazily: a failure must surface here (and before a temporary copy is deleted)
        return dct

    try:
        return read(path)
    except Exception as first:  # libjpeg errors surface as plain exceptions
        problem = first
    with tempfile.TemporaryDirectory(prefix="exiflang-dct-") as tmp:
        bare = Path(tmp) / "bare.jpg"
        bare.write_bytes(without_metadata_segments(path.read_bytes()))
        try:
            return read(bare)
        except Exception:  # noqa: BLE001 - the first error is the one worth reporting
            warnings.warn(f"{path}: cannot read DCT coefficients ({problem}); using the decoded pixels", stacklevel=3)
            return None


def dq_analysis_file(path: str | Path, image: np.ndarray | None = None) -> DQAnalysis:
    """DQ analysis of an image file: the file's own DCT coefficients and table when it is a JPEG, else `dq_analysis`."""
    path = Path(path)
    problem = regular_file_problem(path)
    if problem:
        raise ImageLoadError(f"{path}: {problem}")
    if image is not None:
        jpeg_grid.check_image(image)  # validates the array (its luminance would be 96 MB at 24 MP, unused here)
    dct = _read_dct(path) if starts_as_jpeg(path) else None
    if dct is None:
        if image is None:
            from ..imageio import load_rgb

            image, _ = load_rgb(path)
        return dq_analysis(image)
    coefs, qt = np.asarray(dct.Y), np.asarray(dct.qt[dct.quant_tbl_no[0]])
    height, width = int(dct.height), int(dct.width)
    if image is not None and image.shape[:2] != (height, width):
        raise ForensicsError(f"{path}: image array is {image.shape[1]}x{image.shape[0]} but the JPEG is "
                             f"{width}x{height}")
    check_min_side(height, width, jpeg_grid.MIN_SIDE, "the double-quantisation analysis")
    rows, cols = height // 8, width // 8
    freqs = ZIGZAG_AC[:N_FREQ]
    c = np.stack([coefs[:rows, :cols, u, v] for u, v in freqs], axis=-1).astype(np.int64)
    q2 = np.array([int(qt[u, v]) for u, v in freqs])
    return _analyse(c, q2, (height, width), (0, 0))


__all__ = ["METHOD_ID", "DQAnalysis", "dq_analysis", "dq_analysis_file", "estimate_step", "without_metadata_segments"]
