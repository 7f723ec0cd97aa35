"""What an image's result means, in plain words, for the report's reader (the templates lay it out)."""
from __future__ import annotations

from typing import Any

from ..forensics.calibration import FITTED_LONG_SIDE


def _grid_side(meta: dict[str, Any]) -> int | None:
    """Patches along the long side of the grid a report was made with."""
    grid = meta.get("grid") or {}
    try:
        return max(int(grid["gy"]), int(grid["gx"]))
    except (KeyError, TypeError, ValueError):
        return None


def _grid_as_calibrated(meta: dict[str, Any], per_side: int) -> bool:
    """Whether the report's grid is the one `per_side` lays on this image (a small image's stride floors at
    8 px, so its patch count can exceed per_side with the calibrated setting)."""
    from ..forensics import ForensicsError, make_grid

    grid = meta.get("grid") or {}
    try:
        shape = (int(grid["gy"]), int(grid["gx"]))
        for origin in (None, tuple(grid.get("origin") or (0, 0))):
            g = make_grid(int(grid["height"]), int(grid["width"]), int(grid["patch"]), per_side, origin)
            if (g.gy, g.gx) == shape:
                return True
    except (KeyError, TypeError, ValueError, ForensicsError):
        return True  # nothing to compare: say nothing
    return False


def plain_language(entry, calibration=None) -> list[str]:
    """What this image's result means, in plain words: one string per paragraph (the caveats that hold for every
    image are said once per page, in the templates' "How to read this report")."""
    meta = entry.meta
    p, verdict = entry.number("probability"), meta.get("verdict")
    flagged = entry.number("flagged_fraction")
    out = []
    if verdict == "cannot judge":
        out.append(f"The analysis cannot judge this picture: {meta.get('verdict_reason') or ''}. The heatmap is shown "
                   f"for what it is worth, but neither a pasted region nor its absence can be read from it; look for "
                   f"other evidence (the original file, other copies, the metadata checks above).")
    elif p is not None and verdict == "likely manipulated":
        out.append(f"Parts of this picture do not look as if they came through the same camera and processing as "
                   f"the rest: its probability of manipulation is {p:.0%}. The heatmap shows where the difference is "
                   f"(yellow, about {'–' if flagged is None else f'{flagged:.0%}'} of the picture); check whether that "
                   f"region makes sense as a pasted or edited object.")
    elif p is not None and verdict == "inconclusive" and meta.get("verdict_reason"):
        out.append(f"The analysis cannot decide: {meta['verdict_reason']}. Look at the heatmap and the mask for a "
                   f"region that makes sense as a pasted object, and look for other evidence.")
    elif p is not None and verdict == "inconclusive":
        out.append(f"The analysis cannot decide (probability {p:.0%}): some regions differ from the rest, as in "
                   f"some spliced and also some authentic photos. Look at the heatmap and the mask for a region "
                   f"that makes sense as a pasted object, and look for other evidence.")
    elif p is not None:
        out.append(f"The regions of this picture look consistent with each other (probability of manipulation "
                   f"{p:.0%}): no part stands out as coming from another camera or processing chain.")
    else:
        out.append(f"This detector ({meta.get('method') or 'exiflang'}) gives no probability: compare its score "
                   f"only with other images scored by the same detector. The heatmap shows where it sees "
                   f"inconsistencies (yellow).")
    condition = meta.get("condition") if isinstance(meta.get("condition"), dict) else None
    if condition:  # the fusion read the file before analysing it, and chose its rule and calibration by it
        out.append(f"What the file says about itself: {condition.get('description', '')}. The analysis and the "
                   f"probability used the rule and calibration measured on test-like composites of such files.")
    if verdict != "cannot judge" and meta.get("verdict_caveat") and condition:
        out.append(f"Read the probability with care: {meta['verdict_caveat']}.")
    elif verdict != "cannot judge" and meta.get("verdict_caveat"):
        out.append(f"Read the probability with care: it was measured on uncompressed {FITTED_LONG_SIDE}-px photos, "
                   f"and this picture differs: {meta['verdict_caveat']}. On re-saved and resized composites the "
                   f"score still ranks spliced above authentic more often than not, but the percentage was not "
                   f"measured on pictures like this one.")
    if p is not None and calibration is not None:
        side, fitted = _grid_side(meta), getattr(calibration, "per_side", None)
        if side and fitted and not _grid_as_calibrated(meta, int(fitted)):
            out.append(f"This run looked at the picture in coarser or finer pieces ({side} along the long side) than "
                       f"the probability was measured with ({fitted}): the probability is approximate.")
    if entry.check:
        c = entry.check
        out.append(f"The file's own camera description is {c['verdict']} with its pixels: it fits them better than "
                   f"{c['percentile']:.0%} of {c['n_references']} other cameras' descriptions. An inconsistent "
                   f"result can mean swapped or edited metadata, or a camera the model does not know.")
    return out


__all__ = ["plain_language"]
