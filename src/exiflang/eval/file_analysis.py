"""One file through a method with its report written: what `exiflang detect` and `exiflang serve` do per image.

Both entry points go through here so that a reader gets the same map, probability and verdict for the same file
whichever of them they use (the method, by default the fusion, is built once by `eval.methods.build_method`);
`exiflang.analyse` is the same analysis for Python callers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import ExiflangError
from .analysis import Analysis, analyse_file, verdict_fields


# Where an image's progress stands after its analysis and after its metadata checks; writing the report (maps and
# overlays as PNG) takes the rest. Measured with the fusion at 8 patches per side on 1024x768 shared photos (0.55 s
# analysis, 0.07 s checks, 0.27 s writing on this 2-core CPU): a bar, not a clock.
ANALYSED_SHARE, CHECKED_SHARE = 0.62, 0.70


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
                       extra: dict | None = None, max_pixels: int | None = None,
                       progress: Callable[[float], None] | None = None) -> dict:
    """Analyse `path` with `method`, check its metadata, write its report as `out/stem.*` (when `out` is given) and
    return its table row: size, score, flagged fraction, seconds, the verdict fields, provenance. ``progress``:
    called with the share of this image done, within the analysis too where the method reports its own steps."""
    from ..exif.provenance import provenance_checks

    report = progress or (lambda fraction: None)
    if hasattr(method, "set_progress"):  # the learned map and the fusion say how far their analysis got
        method.set_progress(None if progress is None else (lambda f: progress(ANALYSED_SHARE * f)))
    done = analyse_file(method, path, max_pixels)
    report(ANALYSED_SHARE)
    checks = provenance_checks(path, done.pixels)  # the file's own metadata (issue 22): software, thumbnail, C2PA
    report(CHECKED_SHARE)
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
