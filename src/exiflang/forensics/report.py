"""Reports a person looks at: heatmap overlay, mask, PCA false-colour view; plus the JSON and the raw heatmap.

Files for ``stem`` in ``out_dir``:
* ``<stem>.json``: score, seconds, grid, model id, image size, flagged fraction, ... (see `result_summary`)
* ``<stem>.heatmap.npy``: float32 [H, W] in [0, 1], stored-pixel coordinates, high = likely spliced
* ``<stem>.overlay.png``, ``<stem>.mask.png``, ``<stem>.pca.png``: rotated upright (EXIF Orientation) for viewing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from exiflang.imageio import as_rgb_array, upright

from .consistency import box_sum_full, cover_counts


def pca_colours(embeddings: np.ndarray, grid) -> np.ndarray:
    """False-colour [rows, cols, 3] uint8 cell image: the embeddings' first 3 principal components as RGB."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e - e.mean(0)
    _, _, vt = np.linalg.svd(e, full_matrices=False)
    comps = e @ vt[:3].T
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = np.percentile(comps, 1, axis=0), np.percentile(comps, 99, axis=0)
    comps = np.clip((comps - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    # Each cell takes the mean colour of the patches covering it (the same box vote as the consistency map).
    t = comps.reshape(grid.gy, grid.gx, 3)
    t = box_sum_full(box_sum_full(t, grid.spread, 0), grid.spread, 1)
    t = t / np.outer(cover_counts(grid.gy, grid.spread), cover_counts(grid.gx, grid.spread))[..., None]
    return np.round(t * 255).astype(np.uint8)


def colourise(heat: np.ndarray) -> np.ndarray:
    """Map a [0, 1] array to an RGB uint8 image with matplotlib's 'inferno' colour map."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend the colourised heatmap over a grey copy of the photo."""
    grey = image.astype(np.float32).mean(2, keepdims=True).repeat(3, 2)
    return np.round((1 - alpha) * grey + alpha * colourise(heat).astype(np.float32)).astype(np.uint8)


def mask_view(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo at full brightness inside the mask and darkened outside it."""
    out = image.astype(np.float32)
    out[~mask] *= 0.25
    return np.round(out).astype(np.uint8)


def result_summary(result) -> dict:
    """JSON-ready summary of a DetectionResult."""
    h, w = result.image_size
    return {
        "score": round(float(result.score), 6),
        "score_definition": "consistency gap: |mean cosine consistency of the flagged region - of the rest|, in [0, 2]",
        "flagged_fraction": round(result.flagged_fraction, 6),
        "mask_fraction": round(float(result.mask.mean()), 6),
        "polarity_flipped": bool(result.flipped),
        "seconds": round(float(result.seconds), 4),
        "timings": {k: round(float(v), 4) for k, v in result.timings.items()},
        "model_id": result.model_id,
        "image": result.source,
        "image_size": {"height": h, "width": w},
        "orientation": result.orientation,
        "coordinates": "stored pixel array (EXIF Orientation not applied); PNGs are rotated upright for display",
        "grid": result.grid.to_dict(),
        "meanshift_radius": float(result.radius),
        "embedding_dim": int(result.embeddings.shape[1]),
    }


def write_report(result, image, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.heatmap.npy`` and the PNGs into out_dir; return their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb = as_rgb_array(image)
    if rgb.shape[:2] != result.heatmap.shape:
        raise ValueError(f"image is {rgb.shape[:2]} but the heatmap is {result.heatmap.shape}")
    paths = {kind: out / f"{stem}.{kind}" for kind in ("json", "heatmap.npy", "overlay.png", "mask.png", "pca.png")}
    np.save(paths["heatmap.npy"], result.heatmap.astype(np.float32))
    show = lambda a: upright(a, result.orientation)  # noqa: E731 - display-only rotation
    Image.fromarray(show(overlay(rgb, result.heatmap))).save(paths["overlay.png"])
    Image.fromarray(show(mask_view(rgb, result.mask))).save(paths["mask.png"])
    Image.fromarray(show(result.grid.cells_to_pixels(pca_colours(result.embeddings, result.grid)))).save(paths["pca.png"])
    paths["json"].write_text(json.dumps(result_summary(result), indent=2) + "\n")
    return paths
