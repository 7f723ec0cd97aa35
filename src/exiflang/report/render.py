"""The report's page from Jinja2 templates (``report/templates``, shipped in the package): this module gathers
what each template shows, as plain values; the templates lay it out, autoescaped.

`render_body` is the report itself (the web app inserts it into its page), `render_page` the whole offline
page, `render_app` the upload page of `exiflang serve`.
"""
from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from ..exif import camera_name
from .reading import plain_language

PCA_KINDS = ("overlay", "mask", "pca")


@lru_cache(maxsize=1)
def environment():
    """The one Jinja2 environment: templates from the package, every value autoescaped."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("exiflang.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.globals["verdict_class"] = verdict_class
    return env


def verdict_class(verdict: str | None) -> str:
    return re.sub(r"[^a-z]+", "-", (verdict or "uncalibrated").lower()).strip("-")


def _fmt(value: float | None, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _url(prefix: str, name: str | None) -> str | None:
    return None if not name else prefix + quote(name)


def _figures(e, prefix: str) -> list[dict[str, Any]]:
    """The pictures of one image: the heatmap over the original (one figure, with the opacity slider), mask, PCA."""
    figures = []
    view, overlay = _url(prefix, e.files.get("view")), _url(prefix, e.files.get("overlay"))
    if view and not overlay:
        figures.append({"kind": "view", "url": view})
    if overlay:
        figures.append({"kind": "overlay", "url": overlay, "under": view})
    for kind in ("mask", "pca"):
        if e.files.get(kind):
            figures.append({"kind": kind, "url": _url(prefix, e.files[kind])})
    reliability = _reliability_png(e.meta.get("reliability"), e.meta.get("orientation"))
    if reliability:
        figures.append({"kind": "reliability", "url": reliability})
    return figures


def _reliability_png(reliability: Any, orientation: Any) -> str | None:
    """The reliability block map of the JSON (forensics.reliability) as a small inline PNG, upright: red where flat
    or clipped, grey where there is texture to read; None without a map."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from ..imageio import upright

    try:
        cells = np.asarray((reliability or {}).get("map"), dtype=np.uint8)
    except (TypeError, ValueError):
        return None
    if cells.ndim != 2 or cells.size == 0 or cells.size > 1_000_000:
        return None
    rgb = np.where(cells[..., None] > 0, np.uint8([70, 70, 70]), np.uint8([220, 40, 40])).astype(np.uint8)
    rgb = upright(np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1), int(orientation or 1))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _exif(e, status: dict[str, Any]) -> dict[str, Any]:
    """The EXIF part of an image's section."""
    tags = e.exif_tags or {}
    out: dict[str, Any] = {"error": e.exif_error, "n_tags": len(tags), "text": e.exif_text or "", "check": None,
                           "note": e.check_note or status.get("note") or "the EXIF check did not run",
                           "command_name": shlex.quote(e.name)}
    if e.check:
        c = e.check
        best = c.get("best_reference") or {}
        out["check"] = {"verdict": c["verdict"], "percent": f"{c['percentile']:.0%}",
                        "n_references": c["n_references"], "z": f"{c['z']:+.2f}"}
        out["own"] = camera_name(tags.get("Make"), tags.get("Model"))
        out["best"] = camera_name(best.get("make"), best.get("model")) if best else ""
        out["tags"] = [{"tag": t["tag"], "value": str(t["value"]), "effect": f"{t['effect']:+.4f}"}
                       for t in c.get("least_agreeing_tags") or []]
    return out


def image_context(e, rank: int, prefix: str, calibration, status: dict[str, Any], show_paths: bool) -> dict:
    """Everything one image's table row and section show."""
    meta = e.meta
    size = meta.get("image_size") or {}
    p, score, flagged, secs = (e.number(k) for k in ("probability", "score", "flagged_fraction", "seconds"))
    checks = [c for c in meta.get("provenance") or [] if isinstance(c, dict)]
    return {
        "rank": rank, "stem": e.stem, "name": e.name, "anchor": anchor(e.stem),
        "source": e.source if show_paths else "", "verdict": meta.get("verdict"),
        "model": str(meta.get("model_id", "")), "size": f"{size.get('width', '?')}×{size.get('height', '?')}",
        "thumb": _url(prefix, e.files.get("thumb") or e.files.get("overlay")),
        "sort": {"probability": _fmt(p, ".6f", ""), "score": _fmt(score, ".6f", ""),
                 "flagged": _fmt(flagged, ".6f", ""), "seconds": _fmt(secs, ".4f", "")},
        "shown": {"probability": _fmt(p, ".1%"), "score": _fmt(score, ".3f"), "score_long": _fmt(score, ".4f"),
                  "flagged": _fmt(flagged, ".1%"), "seconds": _fmt(secs, ".2f")},
        "plain": plain_language(e, calibration), "figures": _figures(e, prefix),
        "no_pca": "pca" not in e.files and "overlay" in e.files,
        "provenance": checks, "warnings": sum(1 for c in checks if c.get("status") == "warning"),
        "exif": _exif(e, status),
    }


def anchor(stem: str) -> str:
    """The page anchor of a stem, distinct for distinct stems: the stem itself when it is plain (letters, digits,
    '_', '-'), else a slug of it plus a hash of the whole, under another prefix (slugs alone would merge 'a b'
    and 'a-b' into one anchor and send a table row to another image's section)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", stem):
        return "img-" + stem
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")
    return f"imgx-{slug}-{hashlib.sha256(stem.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def bands_context(calibration) -> dict[str, Any] | None:
    """The verdict bands and their measured rates (None without a calibration)."""
    if calibration is None:
        return None
    rows = [{"verdict": b.verdict, "range": f"{b.low:.2f} – {min(b.high, 1.0):.2f}",
             "authentic": _percent(b.authentic_rate) + ("" if b.n_authentic is None else f" ({b.n_authentic})"),
             "manipulated": _percent(b.manipulated_rate) + ("" if b.n_manipulated is None else f" ({b.n_manipulated})")}
            for b in calibration.bands]
    n_a = sum(b.n_authentic or 0 for b in calibration.bands)
    small = "" if not n_a else (
        f"These rates come from {n_a} authentic and {sum(b.n_manipulated or 0 for b in calibration.bands)} "
        f"manipulated test composites: with so few images a rate of 0% only says the true rate is probably below "
        f"about {3 / n_a:.0%}.")
    prov = calibration.provenance or {}
    return {"rows": rows, "small_sample": small, "describe": calibration.describe(),
            "eval_set": str(prov.get("eval_set", "composites not used for the fit"))}


def body_context(entries: Sequence, *, calibration=None, status: dict[str, Any] | None = None, run_info: str = "",
                 prefix: str = "", show_paths: bool = True) -> dict[str, Any]:
    status = status or {}
    ok = sorted((e for e in entries if e.ok), key=lambda e: -(e.number("score") or float("-inf")))
    failed = [{"stem": e.stem, "name": e.name, "error": e.error or "", "source": e.source if show_paths else e.name}
              for e in entries if not e.ok]
    skipped = status.get("check") != "ran" and any(e.exif_tags for e in ok)
    return {"run_info": run_info, "failed": failed, "bands": bands_context(calibration),
            "ok": [image_context(e, rank, prefix, calibration, status, show_paths) for rank, e in enumerate(ok, 1)],
            "check_skipped": (status.get("note") or "not run") if skipped else ""}


def render_body(entries: Sequence, **options: Any) -> str:
    """The report's content (no <html>/<head>): table, how to read it, per-image sections, failures, method.

    ``prefix`` goes before every image file name (the web app serves a job's files under ``/jobs/<id>/``).
    """
    return environment().get_template("body.html.j2").render(**body_context(entries, **options))


def render_page(entries: Sequence, *, title: str, **options: Any) -> str:
    """The whole self-contained page: inline CSS and JavaScript, images by relative file name."""
    return environment().get_template("page.html.j2").render(title=title, **body_context(entries, **options)) + "\n"


def render_app(limits: str, max_bytes: int, max_files: int) -> str:
    """The upload page of `exiflang serve`."""
    return environment().get_template("web.html.j2").render(limits=limits, max_bytes=int(max_bytes),
                                                            max_files=int(max_files)) + "\n"


TEMPLATES = Path(__file__).resolve().parent / "templates"

__all__ = ["TEMPLATES", "anchor", "body_context", "environment", "render_app", "render_body", "render_page"]
