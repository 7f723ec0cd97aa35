"""One file through a method, its report written: what `exiflang detect` and `exiflang serve` both do per image.

Both entry points go through here so that a reader gets the same map, probability and verdict for the same file
whichever of them they use (the method, by default the fusion, is built once by `eval.methods.build_method`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import ExiflangError
from ..ranges import MAX_PIXELS


class ReportWriteError(ExiflangError):
    """One image's report could not be written (an OSError or a refused symbolic link): that image failed."""


def analyse(path: "str | Path", method: str = "fusion", model: str = "default", per_side: int | None = None,
            device: str = "cpu"):
    """One image through `exiflang detect`'s default analysis (or `method`), as an `eval.analysis.Analysis`:
    heatmap, score, probability, verdict and verdict_reason, the same as the command line gives for the file."""
    from .analysis import call_analyse
    from .methods import build_method, default_per_side
    from ..imageio import load_rgb

    built = build_method(method, model, None, device, per_side or default_per_side(method))
    pixels, _ = load_rgb(path)
    return call_analyse(built, pixels, Path(path))


def analyse_file(method: Any, method_name: str, path: Path, out: Path | None, stem: str,
                 extra: dict | None = None, max_pixels: int = MAX_PIXELS) -> dict:
    """Read `path`, check its metadata, run `method` on its pixels, write its report as `out/stem.*` (when `out`
    is given) and return its table row: size, score, flagged fraction, seconds, the verdict fields, provenance."""
    from ..exif.provenance import provenance_checks
    from ..imageio import load_rgb
    from .analysis import MethodError, call_analyse, verdict_fields

    pixels, info = load_rgb(path, max_pixels=max_pixels)
    checks = provenance_checks(path, pixels)  # the file's own metadata first (issue 22): software, thumbnail, C2PA
    extra = {**(extra or {}), "provenance": checks}
    t0 = time.perf_counter()
    analysis = call_analyse(method, pixels, path)
    seconds = time.perf_counter() - t0
    if analysis.shape != pixels.shape[:2]:  # a learned map stays per cell: nothing is expanded to pixels here
        raise MethodError(f"{path}: method {method_name} returned a {analysis.shape} map for a {pixels.shape[:2]} image")
    if out is not None:
        _write(analysis, pixels, info, seconds, method, method_name, path, out, stem, extra)
    h, w = analysis.shape
    return {"size": f"{w}x{h}", "score": float(analysis.score), "flagged": analysis.flagged_fraction,
            "seconds": seconds, **verdict_fields(analysis), "provenance": checks}


def _write(analysis, pixels, info, seconds, method, method_name, path, out, stem, extra) -> None:
    """The image's report files in out (write_report, or the light report); a failure is a ReportWriteError."""
    from ..forensics import write_report
    from ..imageio import UnsafeOutputError
    from .light_report import write_light_report

    try:
        if analysis.result is not None:
            analysis.result.source, analysis.result.orientation = str(path), info.orientation
            analysis.result.seconds = seconds
            write_report(analysis.result, pixels, out, stem, extra)
        else:
            write_light_report(analysis, pixels, out, stem, method.method_id,
                               info={"method": method_name, "image": str(path), "seconds": round(seconds, 4),
                                     "orientation": info.orientation,
                                     "coordinates": "stored pixel array (EXIF Orientation not applied); PNGs are "
                                                    "rotated upright for display", **(extra or {})},
                               orientation=info.orientation)
    except UnsafeOutputError as exc:
        raise ReportWriteError(f"{path}: report not written: {exc}") from exc
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write its report in {out} ({exc.strerror or exc})") from exc


__all__ = ["ReportWriteError", "analyse", "analyse_file"]
