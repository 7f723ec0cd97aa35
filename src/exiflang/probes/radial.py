"""The radial-distortion protocol in which distortion is observable: whole frames, tiles at known radii, rings.

Lens distortion is a function of the distance to the optical centre, so a calibration probe must know where a
patch sits. Here every photo is treated as a **full frame whose optical centre is its centre** (the shared
photos are centre crops of larger frames; we distort the stored frame as if it were the whole sensor). The
frame is tiled with non-overlapping `patch`-px tiles on a grid through the centre (tile corners on multiples
of 8 px from the frame's origin, so an undistorted JPEG keeps its 8x8 block phase in every tile). Each tile's
normalised radius is that of its centre, with r = 1 at half the shorter side (the convention of
`exiflang.probes.distortion`). The tiles are grouped into rings by radius (`RING_EDGES`); a photo's feature
is the concatenation of its ring-mean embeddings, so a linear probe reads every ring at once and can weigh
the outer rings, where distortion moves pixels most, apart from the centre, where it moves them least.

On a 1024x768 frame: 48 tiles of 128 px, tile-centre radii 0.24 to 1.43, 8 rings of 4 / 8 / 4 / 8 / 8 / 8 / 4 / 4 tiles.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ExiflangError

# Inner ring edges (normalised radius): 8 rings, one per distinct tile radius of a 1024x768 frame (tile centres at
# r = 0.24, 0.53, 0.71, 0.85, 0.97, 1.18, 1.27, 1.43). Four wider rings (edges 0.6, 0.9, 1.2) read worse (docs).
RING_EDGES = (0.4, 0.6, 0.78, 0.9, 1.1, 1.22, 1.35)
GRID_STEP = 8  # tile corners on the JPEG block grid of the undistorted frame
LAYOUT = "tiles128-outward-autoscale"  # tile layout + warp, in cache names: a changed one never reads old caches


class RadialError(ExiflangError):
    """The radial protocol cannot run on this input (too small a frame, a ring without tiles, ...)."""


def _axis_starts(length: int, patch: int) -> np.ndarray:
    """Tile starts along one axis: a grid of `patch` steps through the (8-px snapped) centre, tiles inside."""
    centre = int(round(length / 2 / GRID_STEP)) * GRID_STEP  # a tile boundary sits on the centre line
    first = centre - patch * (centre // patch)
    starts = np.arange(first, length - patch + 1, patch, dtype=np.int64)
    return starts


def tile_positions(height: int, width: int, patch: int) -> np.ndarray:
    """Top-left corners [n, 2] (top, left) of the frame's tiles, row-major."""
    if height < 2 * patch or width < 2 * patch:
        raise RadialError(f"a {height}x{width} frame is too small for radial calibration: it needs at least "
                          f"{2 * patch}x{2 * patch} pixels (2x2 tiles of {patch} px around the centre)")
    tops, lefts = _axis_starts(height, patch), _axis_starts(width, patch)
    return np.array([(t, l) for t in tops for l in lefts], dtype=np.int64)


def tile_radii(height: int, width: int, positions: np.ndarray, patch: int) -> np.ndarray:
    """Normalised radius [n] of each tile's centre (r = 1 at half the shorter side; the frame centre is 0)."""
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ty = positions[:, 0] + (patch - 1) / 2.0 - cy
    tx = positions[:, 1] + (patch - 1) / 2.0 - cx
    return np.hypot(ty, tx) / (min(height, width) / 2.0)


def ring_index(radii: np.ndarray, edges: Sequence[float] = RING_EDGES) -> np.ndarray:
    """Ring number [n] of each radius (0 = innermost)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), radii, side="right")


def ring_features(tile_emb: np.ndarray, rings: np.ndarray, n_rings: int) -> np.ndarray:
    """Concatenated ring means [n_rings * D] of tile embeddings [n, D]; RadialError when a ring has no tile."""
    out = []
    for ring in range(n_rings):
        sel = rings == ring
        if not sel.any():
            raise RadialError(f"no tile at ring {ring} of the radial layout: the frame is too small or too narrow "
                              "(the probe reads 128-px tiles at 8 radii; frames of about 1024x768 or more)")
        out.append(tile_emb[sel].mean(axis=0))
    return np.concatenate(out).astype(np.float32)


def outward_flips(height: int, width: int, positions: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(flip rows?, flip columns?) [n] each: True for tiles above / left of the centre (see `frame_tiles`)."""
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    return positions[:, 0] + (patch - 1) / 2.0 < cy, positions[:, 1] + (patch - 1) / 2.0 < cx


def frame_tiles(image: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tiles [n, 3, p, p] float32 in [0, 1], positions [n, 2], radii [n]) of one HxWx3 uint8 frame.

    Each tile is mirrored so that the direction away from the optical centre points down and right in every
    tile: a radial warp then moves every tile's content the same way (outward or inward) in tile coordinates,
    and the ring means of the four quadrants add up instead of cancelling. A tile starts on a multiple of 8 px
    and is 128 px wide, so the mirror keeps the undistorted JPEG block grid on the tile's 8x8 grid.
    """
    from .features import crop_patches

    h, w = image.shape[:2]
    pos = tile_positions(h, w, patch)
    tiles = crop_patches(image, pos, patch)
    up, left = outward_flips(h, w, pos, patch)
    tiles[up] = tiles[up][:, :, ::-1, :]
    tiles[left] = tiles[left][:, :, :, ::-1]
    return np.ascontiguousarray(tiles), pos, tile_radii(h, w, pos, patch)


def embed_frame(model, image: np.ndarray, batch_size: int = 64, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(tile embeddings [n, D], tile radii [n]) of one frame, L2-normalised like every probe feature."""
    from .features import embed_patch_array

    tiles, _, radii = frame_tiles(image, int(model.patch_size))
    return embed_patch_array(model, tiles, batch_size, device), radii


# ---------------------------------------------------------------- the distorted versions of a photo set
@dataclass
class RadialSet:
    """`versions_per_photo` distorted versions of each photo; version v of photo i has coeffs[i][v] and bins[i][v]."""

    paths: list[str]
    groups: list[str]  # the camera of each photo (splits keep a camera on one side)
    coeffs: np.ndarray  # [n_photos, V, 2] (k1, k2)
    bins: np.ndarray  # [n_photos, V] k1 bin of each version
    bin_edges: np.ndarray
    source: str

    def key(self) -> str:
        """Short hash of the set (paths and coefficients), for caches."""
        blob = json.dumps({"paths": self.paths, "coeffs": np.round(self.coeffs, 8).tolist()})
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def radial_set(paths: Sequence[str], groups: Sequence[str], versions_per_photo: int = 10, n_bins: int = 5,
               seed: int = 2024) -> RadialSet:
    """Realistic lensfun (k1, k2) for every version: version v of a photo is drawn from bin v % n_bins."""
    from .distortion import distortion_bins

    bins = distortion_bins(n_bins)
    coeffs = np.zeros((len(paths), versions_per_photo, 2))
    labels = np.zeros((len(paths), versions_per_photo), dtype=np.int64)
    for i in range(len(paths)):
        for v in range(versions_per_photo):
            labels[i, v] = v % n_bins
            coeffs[i, v] = bins.sample(v % n_bins, np.random.default_rng([seed, i, v]))
    return RadialSet(list(map(str, paths)), list(groups), coeffs, labels, bins.edges, bins.source)


def radial_embeddings(rset: RadialSet, model, cache_dir: str | Path | None = None, batch_size: int = 64,
                      device: str = "cpu", progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(tile embeddings [n_photos, V, n_tiles, D], tile radii [n_photos, n_tiles]); frames must share one size."""
    from tqdm import tqdm

    from ..imageio import as_rgb_array, atomic_write_stream
    from .distortion import distort

    cache = (Path(cache_dir) / f"radial-{LAYOUT}-{getattr(model, 'model_id', 'model')}-{rset.key()}.npz") if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return z["emb"], z["radii"]
    embs, radii = [], []
    for path in tqdm(rset.paths, desc=f"radial tiles ({getattr(model, 'model_id', 'model')})", disable=not progress):
        frame = as_rgb_array(path)
        per_version = []
        for k1, k2 in rset.coeffs[len(embs)]:
            emb, r = embed_frame(model, distort(frame, float(k1), float(k2)), batch_size, device)
            per_version.append(emb)
        if radii and len(r) != len(radii[0]):
            raise RadialError(f"{path}: {frame.shape[1]}x{frame.shape[0]} has another tile layout than the first "
                              "photo; the probe set needs frames of one size")
        embs.append(np.stack(per_version))
        radii.append(r)
    emb_arr, radii_arr = np.stack(embs).astype(np.float32), np.stack(radii)
    if cache is not None:
        atomic_write_stream(cache, lambda fh: np.savez_compressed(fh, emb=emb_arr, radii=radii_arr))
    return emb_arr, radii_arr


def set_features(emb: np.ndarray, radii: np.ndarray, edges: Sequence[float] = RING_EDGES) -> np.ndarray:
    """Ring features [n_photos, V, n_rings * D] of `radial_embeddings` output."""
    n_rings = len(edges) + 1
    return np.stack([np.stack([ring_features(e, ring_index(radii[i], edges), n_rings) for e in emb[i]])
                     for i in range(len(emb))])


__all__ = [
    "RING_EDGES", "GRID_STEP", "LAYOUT", "RadialError", "tile_positions", "tile_radii", "ring_index", "ring_features",
    "outward_flips", "frame_tiles", "embed_frame", "RadialSet", "radial_set", "radial_embeddings", "set_features",
]
