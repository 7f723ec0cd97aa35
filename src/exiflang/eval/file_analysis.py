"""One file through a method with its report written: what `exiflang detect` and `exiflang serve` do per image.

Both entry points go through here so that a reader gets the same map, probability and verdict for the same file
whichever of them they use (the method, by default the fusion, is built once by `eval.methods.build_method`);
`exiflang.analyse` is the same analysis for Python callers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ExiflangError
from .analysis import Analysis, analyse_file, verdict_fields


class ReportWriteError(ExiflangError):
    """One image's report could not be written (an OSError or a refused symbolic link): that image failed."""


def analyse(path: "str | Path", method: str = "fusion", model: str = "default", per_side: int | None = None,
            device: str = "cpu") -> Analysis:
    """One image through `exiflang detect`'s default analysis (or `method`): heatmap, score, probability, verdict
    and verdict_reason, the same as the command line gives for the file."""
    from .methods import build_method, default_per_side

    built = build_method(method, model, None, device, per_side or default_per_side(method))
    return analyse_file(built, Path(path)).analysis


def analyse_and_report(method: Any, method_name: str, path: Path, out: Path | None, stem: str,
                       extra: dict | None = None, max_pixels: int | None = None) -> dict:
    """Analyse `path` with `method`, check its metadata, write its report as `out/stem.*` (when `out` is given) and
    return its table row: size, score, flagged fraction, seconds, the verdict fields, provenance."""
    from ..exif.provenance import provenance_checks

    done = analyse_file(method, path, max_pixels)
    checks = provenance_checks(path, done.pixels)  # the file's own metadata (issue 22): software, thumbnail, C2PA
    if out is not None:
        _write(done, method, method_name, path, out, stem, {**(extra or {}), "provenance": checks})
    h, w = done.analysis.shape
    return {"size": f"{w}x{h}", "score": float(done.analysis.score), "flagged": done.analysis.flagged_fraction,
            "seconds": done.seconds, **verdict_fields(done.analysis), "provenance": checks}


def _write(done, method, method_name: str, path: Path, out: Path, stem: str, extra: dict) -> None:
    """The image's report files in out (write_report, or the light report); a failure is a ReportWriteError."""
    from ..forensics import write_report
    from ..imageio import UnsafeOutputError
    from .light_report import write_light_report

    analysis, orientation = done.analysis, done.info.orientation
    try:
        if analysis.result is not None:
            analysis.result.source, analysis.result.orientation = str(path), orientation
            analysis.result.seconds = done.seconds
            write_report(analysis.result, done.pixels, out, stem, extra)
        else:
            write_light_report(analysis, done.pixels, out, stem, method.method_id,
                               info={"method": method_name, "image": str(path), "seconds": round(done.seconds, 4),
                                     "orientation": orientation,
                                     "coordinates": "stored pixel array (EXIF Orientation not applied); PNGs are "
                                                    "rotated upright for display", **extra},
                               orientation=orientation)
    except UnsafeOutputError as exc:
        raise ReportWriteError(f"{path}: report not written: {exc}") from exc
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write its report in {out} ({exc.strerror or exc})") from exc


__all__ = ["ReportWriteError", "analyse", "analyse_and_report"]
