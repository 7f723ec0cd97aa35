"""The report files of a method without a DetectionResult (grid, dq, noise, fusion): the names `detect` writes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .analysis import Analysis, jsonable


def write_light_report(analysis: Analysis, image: np.ndarray, out_dir: Path, stem: str, method_id: str,
                        info: dict | None = None, orientation: int | None = None) -> None:
    """Heatmap .npy, overlay PNG, mask PNG and last the JSON, for methods without a DetectionResult (same names
    as detect; every file through the atomic writer, which refuses symbolic links).

    The JSON holds score, model_id (the method id), image size, flagged fraction, the analysis' ``extra``
    details and ``info`` (e.g. the method name, source file, content hash); PNGs are rotated upright when
    ``orientation`` is given, the .npy stays in stored-pixel coordinates.
    """
    from ..forensics.report import (map_view, reduce_image, report_paths, save_overlay_png, view_step,
                                    write_report_json)
    from ..imageio import atomic_save_image, atomic_write_npy, upright

    paths = report_paths(out_dir, stem, ("heatmap.npy", "overlay.png", "mask.png"))
    heat = np.asarray(analysis.heatmap, dtype=np.float32)
    show = lambda a: upright(a, orientation)  # noqa: E731 - display-only rotation
    atomic_write_npy(paths["heatmap.npy"], heat)
    h, w = heat.shape
    step = view_step(h, w)  # the PNGs of a large photo are reduced views, as write_report's
    heat_view = map_view(heat, step)
    save_overlay_png(paths["overlay.png"], reduce_image(image, step), heat_view, orientation)
    atomic_save_image(paths["mask.png"], show(((heat_view >= 0.5) * 255).astype(np.uint8)), "PNG")
    meta = {"score": float(analysis.score), "model_id": method_id, "image_size": {"height": h, "width": w},
            "flagged_fraction": float((heat >= 0.5).mean()), "view_step": step}
    if analysis.extra:
        meta.update(jsonable(analysis.extra))
    write_report_json(paths["json"], meta, paths, jsonable(info) if info else None)

