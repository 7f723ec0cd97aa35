"""Reports a person looks at: heatmap overlay, mask, PCA false-colour view; plus the JSON and the raw heatmap.

Files for ``stem`` in ``out_dir``:
* ``<stem>.json``: score, seconds, grid, model id, image size, flagged fraction, ... (see `result_summary`); written
  last, with ``files`` (the report's other files) and what the caller adds (`exiflang detect`: the input's
  ``input_sha256`` and the ``settings_digest``), so `finished_report` can tell a complete report from a killed one.
* ``<stem>.heatmap.npy``: float32 in [0, 1], stored-pixel coordinates, high = likely spliced. `write_report` stores
  it per cell of the patch grid ([rows, cols], its real resolution: a few kB however large the photo), and
  says so in the JSON (``heatmap_npy.resolution == "cells"``, with the ``grid``); other detectors' light
  reports store [H, W]. **Read it with `read_heatmap`**, which gives the [H, W] pixel map in both cases.
* ``<stem>.overlay.png``, ``<stem>.mask.png``, ``<stem>.pca.png``: rotated upright (EXIF Orientation) for viewing.
  Photos whose longer side exceeds `VIEW_MAX_SIDE` are shown reduced by a whole factor (``view_step`` in the
  JSON; block means of the pixels, `reduce_image`), so the pictures cost the same for a 95 MP photo as for a
  4 MP one. Every overlay PNG carries a colour bar below the picture with its meaning (`with_colour_bar`,
  `save_overlay_png`): 0 = consistent with the rest of the image, 1 = inconsistent (likely spliced).

Every file goes through `exiflang.imageio`'s atomic writers: never half a file, never through a symbolic link.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from exiflang.imageio import as_rgb_array, atomic_save_image, atomic_write_npy, atomic_write_text, upright

from .consistency import box_sum_full, cover_counts
from .cells import CellMap, PatchGrid
from .grid import ForensicsError
from .scores import IMAGE_SCORE

VIEW_MAX_SIDE = 2048  # longest side of the PNG views; larger photos are reduced by the smallest whole factor
HEATMAP_SUFFIX = ".heatmap.npy"


def view_step(height: int, width: int, max_side: int = VIEW_MAX_SIDE) -> int:
    """The whole factor a height x width picture is reduced by so that its longer side fits ``max_side``."""
    return max(1, -(-max(height, width) // max_side))


def reduce_image(image: np.ndarray, step: int, band_rows: int = 64) -> np.ndarray:
    """Block means of ``step`` x ``step`` pixels: [H // step, W // step, 3] uint8 (Pillow's box reduction, in bands
    of ``band_rows`` output rows, so no full-size copy of the photo is made)."""
    if step <= 1:
        return image
    h, w = max(image.shape[0] // step, 1), max(image.shape[1] // step, 1)
    out = np.empty((h, w) + image.shape[2:], dtype=np.uint8)
    for r0 in range(0, h, band_rows):
        r1 = min(h, r0 + band_rows)
        band = np.ascontiguousarray(image[r0 * step : r1 * step, : w * step])
        out[r0:r1] = np.asarray(Image.fromarray(band).reduce(step))
    return out


def map_view(heat: "np.ndarray | CellMap", step: int) -> np.ndarray:
    """A map on the ``step`` times reduced view: a CellMap's cells at the view's pixels, an array's block centres."""
    if isinstance(heat, CellMap):
        return heat.view(step)
    heat = np.asarray(heat)
    if step <= 1:
        return heat
    h, w = max(heat.shape[0] // step, 1), max(heat.shape[1] // step, 1)
    return np.ascontiguousarray(heat[step // 2 :: step, step // 2 :: step][:h, :w])


def read_heatmap(path: str | Path) -> np.ndarray:
    """The [H, W] float32 pixel heatmap of a ``<stem>.heatmap.npy`` (per-cell files expanded with their JSON's grid)."""
    path = Path(path)
    try:
        heat = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ForensicsError(f"{path}: cannot read the heatmap ({exc})") from exc
    name = path.name[: -len(HEATMAP_SUFFIX)] if path.name.endswith(HEATMAP_SUFFIX) else path.stem
    meta_path = path.with_name(f"{name}.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ForensicsError(f"{meta_path}: cannot read the report JSON that describes {path.name} ({exc})") from exc
    if (meta.get("heatmap_npy") or {}).get("resolution") != "cells":
        return heat.astype(np.float32, copy=False)
    g = meta["grid"]
    grid = PatchGrid(g["height"], g["width"], g["patch"], g["stride"], g["gy"], g["gx"], tuple(g["origin"]))
    if heat.shape != grid.cell_shape:
        raise ForensicsError(f"{path}: a {heat.shape} cell map does not fit the {grid.cell_shape} grid of {meta_path}")
    return grid.cells_to_pixels(heat).astype(np.float32, copy=False)


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

    cmap = colormaps["inferno"]
    # The colour map's own N-entry table, indexed as matplotlib indexes it (floor(x * N), 1.0 -> the last entry):
    # the same colours without its float64 RGBA copy of the whole picture.
    lut = (cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.uint8)
    index = np.minimum((np.clip(np.asarray(heat, dtype=np.float32), 0, 1) * cmap.N).astype(np.intp), cmap.N - 1)
    return lut[index]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend the colourised heatmap over a grey copy of the photo."""
    grey = image.astype(np.float32).mean(2, keepdims=True).repeat(3, 2)
    return np.round((1 - alpha) * grey + alpha * colourise(heat).astype(np.float32)).astype(np.uint8)


COLOUR_BAR_MEANING = "high = inconsistent with the rest of the image (likely spliced)"
COLOUR_BAR_SHORT = "high = inconsistent"


def _font(size: int):
    """Pillow's bundled scalable font at ``size`` px (its bitmap font where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def colour_bar_height(width: int) -> int:
    """Height in pixels of the legend strip `with_colour_bar` adds below a picture ``width`` pixels wide."""
    return int(min(max(round(width * 0.08), 40), 110))


def with_colour_bar(view: np.ndarray, meaning: str = COLOUR_BAR_MEANING, low: str = "0 consistent",
                    high: str = "1 inconsistent") -> np.ndarray:
    """The picture with a legend strip below it: the 'inferno' colour bar from 0 to 1 and what high means."""
    from PIL import ImageDraw

    h, w = view.shape[:2]
    bar_h = colour_bar_height(w)
    margin = max(4, w // 50)
    strip = Image.new("RGB", (w, bar_h), (255, 255, 255))
    ramp = colourise(np.linspace(0.0, 1.0, max(w - 2 * margin, 1))[None, :].repeat(max(bar_h * 2 // 5, 4), 0))
    strip.paste(Image.fromarray(ramp), (margin, margin // 2))
    draw = ImageDraw.Draw(strip)
    text_top = margin // 2 + ramp.shape[0] + 2
    size = max(int((bar_h - text_top) * 0.8), 8)
    # Shrink the font (and then the wording) until "0 consistent  <meaning>  1 inconsistent" fits the width.
    options = ((low, meaning, high, 11), (low, COLOUR_BAR_SHORT, high, 11), ("0", COLOUR_BAR_SHORT, "1", 9),
               ("0", COLOUR_BAR_SHORT, "1", 7), ("0", "", "1", 7))
    for text_low, text_mid, text_high, smallest in options:
        for fs in range(max(size, smallest), smallest - 1, -1):
            font = _font(fs)
            widths = [draw.textlength(t, font=font) for t in (text_low, text_mid, text_high)]
            if sum(widths) + 4 * margin <= w:
                break
        else:
            continue
        break
    draw.text((margin, text_top), text_low, fill=(0, 0, 0), font=font)
    draw.text(((w - widths[1]) / 2, text_top), text_mid, fill=(0, 0, 0), font=font)
    draw.text((w - margin - widths[2], text_top), text_high, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(view, dtype=np.uint8)[..., :3], np.asarray(strip)], axis=0)


def save_overlay_png(path: str | Path, image: np.ndarray, heat: np.ndarray, orientation: int | None = 1) -> Path:
    """Write the heatmap overlay, rotated upright for viewing, with its colour bar and meaning below it."""
    view = upright(overlay(image, heat), orientation)
    return atomic_save_image(path, with_colour_bar(view), "PNG")


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
        "score_definition": f"image score '{IMAGE_SCORE}' (exiflang.forensics.scores), higher = more likely manipulated",
        "gap": None if getattr(result, "gap", None) is None else round(float(result.gap), 6),
        "gap_definition": "consistency gap: |mean cosine consistency of the flagged region - of the rest|, in [0, 2]",
        # the score's calibration shipped with the model (forensics.calibration); None without one
        "probability": None if getattr(result, "probability", None) is None else round(float(result.probability), 6),
        "verdict": getattr(result, "verdict", None),
        "verdict_reason": getattr(result, "verdict_reason", None),
        "verdict_caveat": getattr(result, "verdict_caveat", None),
        "flagged_fraction": round(result.flagged_fraction, 6),
        "mask_fraction": round(float(result.mask_fraction), 6),
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
        "notes": list(getattr(result, "notes", [])),  # e.g. a per_side finer than the image allows, capped
        # where the evidence is weak (flat, clipped): forensics.reliability; None when it was not measured
        "reliability": result.reliability.to_dict() if getattr(result, "reliability", None) is not None else None,
    }


REPORT_KINDS = ("heatmap.npy", "overlay.png", "mask.png", "pca.png")  # besides <stem>.json, in writing order


def report_paths(out_dir: str | Path, stem: str, kinds=REPORT_KINDS) -> dict[str, Path]:
    """``<stem>.json`` and ``<stem>.<kind>`` for each kind, in out_dir."""
    out = Path(out_dir)
    return {"json": out / f"{stem}.json", **{kind: out / f"{stem}.{kind}" for kind in kinds}}


def write_report_json(path: Path, summary: dict, files: dict[str, Path], extra: dict | None = None) -> None:
    """The report's JSON, written last: its ``files`` list names every file of the report (all written by then),
    so a JSON on disk means a finished report (`finished_report`). ``extra``: e.g. the input's content hash and
    the settings digest that `exiflang detect` checks before re-analysing."""
    summary = {**summary, **(extra or {}), "files": sorted(p.name for kind, p in files.items() if kind != "json")}
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def finished_report(out_dir: str | Path, stem: str, expect: dict) -> dict | None:
    """The JSON of ``<stem>``'s report in out_dir when that report is complete and was made with ``expect``'s values
    (e.g. ``{"input_sha256": ..., "settings_digest": ...}``), else None.

    Complete: the JSON reads, and every file its ``files`` list names is a regular file there (links are not
    trusted: the writer refuses them, so a link means the report is not ours).
    """
    out = Path(out_dir)
    path = out / f"{stem}.json"
    try:
        if path.is_symlink():
            return None
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or any(meta.get(key) != value for key, value in expect.items()):
        return None
    files = meta.get("files")
    if not isinstance(files, list) or not files:
        return None
    for name in files:
        if not isinstance(name, str) or Path(name).name != name or not name.startswith(f"{stem}."):
            return None
        if (out / name).is_symlink() or not (out / name).is_file():
            return None
    return meta


def write_report(result, image, out_dir: str | Path, stem: str, extra: dict | None = None) -> dict[str, Path]:
    """Write ``<stem>.heatmap.npy`` (per cell), the PNGs and last ``<stem>.json`` into out_dir (every file through
    the atomic writer, which refuses symbolic links); return their paths by kind. ``extra`` goes into the JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rgb = as_rgb_array(image)
    if rgb.shape[:2] != result.image_size:
        raise ValueError(f"image is {rgb.shape[:2]} but the heatmap is {result.image_size}")
    paths = report_paths(out, stem)
    atomic_write_npy(paths["heatmap.npy"], np.asarray(result.cell_heatmap, dtype=np.float32))
    step = view_step(*result.image_size)
    view = reduce_image(rgb, step)
    show = lambda a: upright(a, result.orientation)  # noqa: E731 - display-only rotation
    save_overlay_png(paths["overlay.png"], view, result.heatmap_map.view(step), result.orientation)
    atomic_save_image(paths["mask.png"], show(mask_view(view, result.mask_map.view(step))), "PNG")
    pca = result.grid.cells_to_pixels(pca_colours(result.embeddings, result.grid), step)
    atomic_save_image(paths["pca.png"], show(pca), "PNG")
    summary = result_summary(result)
    summary["heatmap_npy"] = {"resolution": "cells", "shape": list(result.cell_heatmap.shape),
                              "read_with": "exiflang.forensics.read_heatmap (expands it to [H, W] with 'grid')"}
    summary["view_step"] = step  # the PNGs show step x step pixel blocks per pixel
    write_report_json(paths["json"], summary, paths, extra)
    return paths
