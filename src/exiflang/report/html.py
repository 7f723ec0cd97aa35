"""One self-contained HTML page for a batch of analysed images: ``DIR/index.html``.

`exiflang detect PHOTOS... --out DIR` writes it after the per-image files (``<stem>.json``, ``.overlay.png``,
``.mask.png``, ``.pca.png``; `exiflang.forensics.report.write_report`), and `exiflang serve` shows the same
per-image report for uploads. The page works offline: inline CSS and JavaScript, no CDN, no web fonts, and
images referenced by relative file names in the same folder (this module adds ``<stem>.view.jpg``, the original
rotated upright and at most 1600 px, which browsers can show even for HEIC or TIFF inputs, and
``<stem>.thumb.jpg``).

Contents: a table of all images sorted by score (thumbnail, calibrated probability of manipulation, verdict,
score, flagged fraction, model, seconds; click a column to re-sort), how to read the probability (the verdict
bands with the false-positive rates measured on composites not used to fit them), then one section per image:
original, heatmap overlay with its colour bar and meaning, normalised-cut mask, PCA view, the file's EXIF text
and its `check-exif` verdict where the file has EXIF, and a plain-language paragraph on what the result does
and does not mean. Files that failed are listed with their reasons.

Inputs are ``(source path, stem, error or None)`` triples: everything else is read back from the files the
detector wrote, so the page does not depend on how the detector runs internally.
"""
from __future__ import annotations

import datetime
import html
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import quote

from ..errors import ExiflangError
from ..exif import camera_name
from ..forensics.calibration import FITTED_LONG_SIDE

VIEW_MAX = 1600  # longest side of the original's copy shown on the page
THUMB_MAX = 160  # longest side of the table thumbnails
CHECK_PATCHES = 16  # patches per image for the EXIF check (as `exiflang check-exif`'s default)
INDEX_FILE = "index.html"


class ReportError(ExiflangError):
    """The HTML report cannot be written; the message names the folder and the cause."""


@dataclass
class ImageEntry:
    """One input image as the page shows it."""

    source: str
    stem: str
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the detector's <stem>.json
    files: dict[str, str] = field(default_factory=dict)  # view, thumb, overlay, mask, pca -> file name
    exif_text: str | None = None
    exif_tags: dict[str, str] | None = None
    exif_error: str | None = None
    check: dict[str, Any] | None = None  # probes.check.CheckResult.to_dict()
    check_note: str | None = None  # why the EXIF check did not run for this file

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def name(self) -> str:
        return Path(self.source).name

    def number(self, key: str) -> float | None:
        value = self.meta.get(key)
        return None if value is None else float(value)


# ---------------------------------------------------------------------------------------------------------------
# Collecting what the page shows
# ---------------------------------------------------------------------------------------------------------------

def _safe_id(stem: str) -> str:
    """The page anchor of a stem, distinct for distinct stems: the stem itself when it is plain (letters, digits,
    '_', '-'), else a slug of it plus a hash of the whole, under another prefix (slugs alone would merge 'a b'
    and 'a-b' into one anchor and send a table row to another image's section)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", stem):
        return "img-" + stem
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")
    return f"imgx-{slug}-{hashlib.sha256(stem.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def _write_views(entry: ImageEntry, out: Path) -> str | None:
    """``<stem>.view.jpg`` (upright, <= VIEW_MAX) and ``<stem>.thumb.jpg`` (<= THUMB_MAX) of the source image;
    the line saying why one could not be written (a symbolic link in its place, a full disk), else None."""
    from PIL import Image

    from ..imageio import ImageLoadError, atomic_save_image, load_rgb_preview, upright

    try:  # decoded reduced where the format allows: a 95 MP photo's view never needs its full pixels
        pixels, info = load_rgb_preview(entry.source, VIEW_MAX)
    except ImageLoadError:
        return None  # the page then shows the overlay in its place
    img = Image.fromarray(upright(pixels, entry.meta.get("orientation") or info.orientation))
    for kind, limit, quality in (("view", VIEW_MAX, 90), ("thumb", THUMB_MAX, 85)):
        copy = img.copy()
        copy.thumbnail((limit, limit), Image.Resampling.LANCZOS)
        name = f"{entry.stem}.{kind}.jpg"
        try:
            atomic_save_image(out / name, copy, "JPEG", quality=quality)
        except (OSError, ExiflangError) as exc:
            return f"{out / name}: cannot write the {kind} copy of {entry.source} ({exc})"
        entry.files[kind] = name
    return None


def collect_entries(out_dir: str | Path, items: Iterable[tuple[str, str, str | None]],
                    write_views: bool = True, problems: list[str] | None = None) -> list[ImageEntry]:
    """Read back the detector's per-image files for ``(source, stem, error)`` items; write the view copies
    (a view that cannot be written is a line appended to ``problems``; the page shows the overlay instead)."""
    out = Path(out_dir)
    entries = []
    for source, stem, error in items:
        entry = ImageEntry(str(source), str(stem), error)
        if entry.ok:
            meta_path = out / f"{stem}.json"
            try:
                entry.meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                entry.error = f"{source}: no readable report {meta_path.name} ({exc})"
        if entry.ok:
            # a PCA view exists only with embeddings (write_report's JSON has embedding_dim; the light one not):
            # an older run's <stem>.pca.png in the same folder must not be shown beside another detector's map
            kinds = ("overlay", "mask", "pca") if "embedding_dim" in entry.meta else ("overlay", "mask")
            for kind in kinds:
                if (out / f"{stem}.{kind}.png").is_file():
                    entry.files[kind] = f"{stem}.{kind}.png"
            if write_views:
                problem = _write_views(entry, out)
                if problem and problems is not None:
                    problems.append(problem)
        entries.append(entry)
    return entries


class _TextCache:
    """An ExifModel whose ``encode_text`` remembers every text it encoded (the EXIF check encodes the same ~100
    reference texts for every image; with this, each is encoded once per process)."""

    MAX_TEXTS = 20_000

    def __init__(self, model) -> None:
        self._model = model
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def encode_text(self, texts: Sequence[str]):
        import torch

        if len(self._cache) > self.MAX_TEXTS:
            self._cache.clear()
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with torch.inference_mode():
                out = self._model.encode_text(list(missing)).detach().float().cpu()
            self._cache.update(zip(missing, out))
        return torch.stack([self._cache[t] for t in texts])


@lru_cache(maxsize=2)
def _check_model(name: str, device: str):
    """The full model (image + text towers) for the EXIF check, loaded once per process, texts cached."""
    from ..models import load_model

    return _TextCache(load_model(name, device=device))


def _text_config(model_name: str, device: str, full_model=None):
    """The text format the model reads (its config's ``text_format``), else the default one."""
    from ..exif import TextConfig

    config = getattr(full_model, "config", None)
    if config is None:
        try:
            from ..forensics import resolve_model

            config = getattr(resolve_model(model_name, device), "config", None)
        except ExiflangError:
            config = None
    fmt = config.get("text_format") if isinstance(config, dict) else getattr(config, "text_format", None)
    return TextConfig.from_dict(fmt) if fmt else TextConfig()


def _read_tags(entries: Sequence[ImageEntry]) -> str:
    """Each entry's EXIF tags (one ExifTool process for all); returns a note when no reader could start."""
    from ..exif import ExifReader, ExifReadError

    try:
        reader = ExifReader()
    except ExifReadError as exc:
        for e in entries:
            e.exif_error = str(exc)
        return str(exc)
    with reader:
        for e in entries:
            try:
                e.exif_tags = reader.read(e.source)
            except ExifReadError as exc:
                e.exif_error = str(exc)
    return ""


def _run_checks(entries: Sequence[ImageEntry], full, text_config, device: str,
                log: Callable[[str], None] | None) -> dict[str, Any]:
    """`check-exif` (without the slow per-tag explanation) on entries with EXIF; the status for the page."""
    from ..probes.check import CheckError, check_exif, load_reference_set
    from ..probes.features import FeatureError, image_patch_embeddings

    t0 = time.perf_counter()
    try:
        references = load_reference_set(None, text_config)
    except CheckError as exc:
        return {"check": "failed", "note": f"the EXIF check's reference texts could not be read: {exc}"}
    for i, e in enumerate(entries):
        if log:
            log(f"check-exif {i + 1}/{len(entries)}: {e.name}")
        t1 = time.perf_counter()
        try:
            patches = image_patch_embeddings(e.source, full, CHECK_PATCHES, "grid", device=device)
            result = check_exif(patches, e.exif_tags, references, full, text_config, explain=False, device=device)
        except ExiflangError as exc:  # CheckError, FeatureError, an unreadable image
            e.check_note = f"the EXIF check failed: {exc}"
            continue
        e.check = {**result.to_dict(5), "seconds": round(time.perf_counter() - t1, 2)}
    seconds = time.perf_counter() - t0
    checked = sum(1 for e in entries if e.check)
    skipped = len(entries) - checked
    plural = lambda n: f"{n} file{'s' * (n != 1)}"  # noqa: E731
    return {"check": "ran", "seconds": round(seconds, 2),
            "note": f"EXIF check ran on {plural(checked)} with EXIF in {seconds:.1f} s"
                    + (f"; {plural(skipped)} could not be checked (each says why)" if skipped else "")}


def add_exif(entries: Sequence[ImageEntry], *, check: bool = True, model: str = "default", device: str = "cpu",
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Read each analysed file's EXIF; run the EXIF check where there is EXIF (unless ``check`` is off).

    Returns what happened, for the page: ``{"check": "ran" | "skipped" | "failed", "note": ..., "seconds": ...}``.
    """
    from ..exif import exif_to_text

    status: dict[str, Any] = {"check": "skipped", "note": "", "seconds": 0.0}
    ok = [e for e in entries if e.ok]
    if not ok:
        return status
    status["note"] = _read_tags(ok)
    with_exif = [e for e in ok if e.exif_tags]
    full = None
    if not check:
        status["note"] = "the EXIF check was switched off for this run (--no-exif-check)"
    elif not with_exif:
        status["note"] = status["note"] or "no file has EXIF metadata to check"
    else:
        try:
            full = _check_model(str(model), device)
        except ExiflangError as exc:
            status.update(check="failed", note=f"the EXIF check could not load model {model!r}: {exc}")
    text_config = _text_config(str(model), device, full)
    for e in with_exif:
        e.exif_text = exif_to_text(e.exif_tags, text_config)
    if full is None:
        for e in with_exif:
            e.check_note = status["note"]
        return status
    status.update(_run_checks(with_exif, full, text_config, device, log))
    return status


def _calibration_for(model: str, device: str):
    """The model's shipped calibration (forensics.calibration), or None."""
    from ..forensics import resolve_model
    from ..forensics.calibration import for_model

    try:
        return for_model(resolve_model(model, device))
    except ExiflangError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------

# matplotlib's 'inferno' at 0, 0.25, 0.5, 0.75, 1 (the overlay's colour map, forensics.report.colourise)
INFERNO_CSS = "linear-gradient(to right, #000004, #57106e, #bc3754, #f98e09, #fcffa4)"

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --bg: #ffffff; --panel: #f6f7f9;
        --red: #b3261e; --amber: #8a5a00; --green: #1e6b34; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); }
main { max-width: 1200px; margin: 0 auto; padding: 16px 20px 60px; }
h1 { font-size: 1.6em; margin: .4em 0 .2em; } h2 { font-size: 1.25em; margin: 1.6em 0 .4em; }
h3 { font-size: 1.05em; margin: 1em 0 .3em; }
.muted, .run { color: var(--muted); } .run { font-size: .9em; }
table.results { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
table.results th, table.results td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: left;
       vertical-align: middle; }
table.results th { background: var(--panel); cursor: pointer; user-select: none; white-space: nowrap; }
table.results th[data-sort]::after { content: " \\2195"; color: var(--muted); font-size: .8em; }
table.results td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.results img.thumb { max-width: 96px; max-height: 72px; display: block; }
table.results tr.failed td { color: var(--red); }
table.bands, table.rel { border-collapse: collapse; margin: .4em 0 .8em; font-size: .92em; }
table.bands th, table.bands td, table.rel th, table.rel td { border: 1px solid var(--line); padding: 4px 8px; }
.verdict { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: .85em; font-weight: 600;
           white-space: nowrap; }
.v-likely-manipulated { background: #fbe3e1; color: var(--red); }
.v-inconclusive { background: #fdf0d5; color: var(--amber); }
.v-likely-authentic { background: #e2f2e6; color: var(--green); }
.v-uncalibrated, .v-failed, .v-cannot-judge { background: var(--panel); color: var(--muted); }
.v-consistent { background: #e2f2e6; color: var(--green); } .v-uncertain { background: #fdf0d5; color: var(--amber); }
.v-inconsistent { background: #fbe3e1; color: var(--red); }
section.image { border-top: 2px solid var(--line); margin-top: 2em; }
.numbers { font-variant-numeric: tabular-nums; color: var(--muted); }
.views { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }
figure { margin: 0; background: var(--panel); padding: 8px; border-radius: 6px; }
figure img { width: 100%; height: auto; display: block; background: #fff; }
figcaption { font-size: .86em; color: var(--muted); margin-top: 6px; }
.colourbar { display: flex; align-items: center; gap: 6px; font-size: .82em; margin-top: 4px; }
.colourbar .ramp { flex: 1; height: 10px; border-radius: 2px; background: INFERNO_RAMP; }
.plain { background: var(--panel); border-left: 4px solid var(--line); padding: 8px 12px; }
pre.exif { white-space: pre-wrap; word-break: break-word; background: var(--panel); padding: 8px; font-size: .85em; }
.failed-list li { color: var(--red); }
.note { border-left: 4px solid #f0b400; background: #fff8e1; padding: 6px 10px; }
""".replace("INFERNO_RAMP", INFERNO_CSS)

# Click a column header to sort the results table (delegated, so it also works for fragments inserted later).
JS = """
(function () {
  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var v = cell.getAttribute("data-value");
    if (v === null) { v = cell.textContent.trim(); }
    if (numeric) { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return v.toLowerCase();
  }
  document.addEventListener("click", function (event) {
    var th = event.target.closest ? event.target.closest("table.results th[data-sort]") : null;
    if (!th) { return; }
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var descending = th.getAttribute("data-dir") !== "desc";
    th.setAttribute("data-dir", descending ? "desc" : "asc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      if (a.classList.contains("failed") !== b.classList.contains("failed")) {
        return a.classList.contains("failed") ? 1 : -1;
      }
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
})();
"""

VIEW_CAPTIONS = {
    "view": "<b>Original</b>, rotated upright for viewing (analysis runs on the stored pixels).",
    "overlay": ("<b>Heatmap overlay</b> on a grey copy of the photo. The colour bar below the picture gives its "
                "meaning: <b>high (yellow) = inconsistent with the rest of the image</b>, dark = consistent. "
                "The smaller inconsistent region is the one flagged."),
    "mask": ("<b>Mask</b>: the normalised-cut split of the image into its two most different regions, bright "
             "inside the suspected region. It is always drawn, also for authentic photos: read it together "
             "with the verdict."),
    "pca": ("<b>PCA view</b>: the patch embeddings' three main directions as red, green and blue. Areas of one "
            "colour look alike to the model; a region in a clearly different colour stands out from the rest."),
}


def _fmt(value: float | None, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _verdict_badge(verdict: str | None) -> str:
    text = verdict or "not calibrated"
    cls = "v-" + re.sub(r"[^a-z]+", "-", (verdict or "uncalibrated").lower()).strip("-")
    return f'<span class="verdict {cls}">{html.escape(text)}</span>'


def _src(prefix: str, name: str) -> str:
    return html.escape(prefix + quote(name), quote=True)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


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


def plain_language(entry: ImageEntry, calibration=None) -> str:
    """What this result does and does not mean, in plain words (HTML paragraphs)."""
    meta = entry.meta
    p, verdict = entry.number("probability"), meta.get("verdict")
    flagged = entry.number("flagged_fraction")
    method = meta.get("method") or "exiflang"
    out = []
    if verdict == "cannot judge":
        out.append(f"The analysis cannot judge this picture: {html.escape(str(meta.get('verdict_reason') or ''))}. "
                   f"The heatmap is shown for what it is worth, but neither a pasted region nor its absence can be "
                   f"read from it; look for other evidence (the original file, other copies, the metadata checks).")
    elif p is not None and verdict == "likely manipulated":
        out.append(f"Parts of this picture do not look as if they came through the same camera and processing as "
                   f"the rest: its probability of manipulation is {p:.0%}. The heatmap shows where the model sees "
                   f"the difference (yellow, about {_percent(flagged)} of the picture); check whether that region "
                   f"makes sense as a pasted or edited object.")
    elif p is not None and verdict == "inconclusive":
        out.append(f"The analysis cannot decide (probability {p:.0%}): some regions differ from the rest, as in "
                   f"some spliced and also some authentic photos. Look at the heatmap and the mask for a region "
                   f"that makes sense as a pasted object, and look for other evidence.")
    elif p is not None:
        out.append(f"The regions of this picture look consistent with each other (probability of manipulation "
                   f"{p:.0%}): no part stands out as coming from another camera or processing chain.")
    else:
        out.append(f"This detector ({html.escape(str(method))}) has no calibrated probability: compare its score "
                   f"only with other images scored by the same detector. The heatmap shows where it sees "
                   f"inconsistencies (yellow).")
    if verdict != "cannot judge" and meta.get("verdict_caveat"):
        out.append(f"<b>Read the probability with care:</b> it was measured on lossless composites of "
                   f"{FITTED_LONG_SIDE}-px photos, and this picture differs: "
                   f"{html.escape(str(meta['verdict_caveat']))}. On re-saved and resized composites the score still "
                   f"ranks spliced above authentic more often than not (docs/RESULTS.md), but the percentage above "
                   f"was not measured on pictures like this one.")
    out.append("This is evidence, not proof. A high score can also come from large flat, dark or saturated areas "
               "(sky, walls, text overlays), strong local retouching or a camera unlike any the model learned from. "
               "A low score does not prove that the photo is authentic: a splice between two photos of the same "
               "camera model, or a picture that was resized or recompressed after the edit, can leave no "
               "inconsistency to find.")
    if p is not None and calibration is not None:
        out.append("The probability comes from test composites (regions pasted between photos of cameras the model "
                   "never trained on, half of the images spliced): it says how this score compares with those, not "
                   "the chance that this particular photo was edited; most photos met in practice are authentic, "
                   "which lowers the real chance.")
        side, fitted = _grid_side(meta), getattr(calibration, "per_side", None)
        if side and fitted and not _grid_as_calibrated(meta, int(fitted)):
            out.append(f"This run used a coarser or finer patch grid ({side} patches along the long side) than the "
                       f"calibration ({fitted}): the probability is approximate.")
    if entry.check:
        c = entry.check
        out.append(f"The EXIF check found the file's own camera description <b>{html.escape(c['verdict'])}</b> "
                   f"with its pixels (it beats {c['percentile']:.0%} of {c['n_references']} other cameras' "
                   f"descriptions). An inconsistent check can mean swapped or edited metadata, or a camera the "
                   f"model does not know.")
    return "".join(f"<p>{s}</p>" for s in out)


def _bands_html(calibration) -> str:
    if calibration is None:
        return ('<p class="note">No calibration ships with this model: the table shows raw scores only '
                '(higher = more likely manipulated).</p>')
    rows = []
    for b in calibration.bands:
        hi = min(b.high, 1.0)
        rows.append(f"<tr><td>{_verdict_badge(b.verdict)}</td><td>{b.low:.2f} – {hi:.2f}</td>"
                    f"<td>{_percent(b.authentic_rate)}{'' if b.n_authentic is None else f' ({b.n_authentic})'}</td>"
                    f"<td>{_percent(b.manipulated_rate)}{'' if b.n_manipulated is None else f' ({b.n_manipulated})'}</td></tr>")
    prov = calibration.provenance or {}
    return (
        "<p>The <b>probability of manipulation</b> is the image score calibrated by "
        f"{html.escape(calibration.describe())}. The verdict bands and their rates measured on "
        f"{html.escape(str(prov.get('eval_set', 'composites not used for the fit')))}: the share of authentic "
        "photos given a verdict is its <b>false-positive rate</b> for “likely manipulated”; the share of "
        "manipulated ones given “likely authentic” is its miss rate.</p>"
        '<table class="bands"><thead><tr><th>verdict</th><th>probability</th><th>authentic photos given it</th>'
        "<th>manipulated photos given it</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        + _small_sample_note(calibration)
    )


def _small_sample_note(calibration) -> str:
    """How far rates measured on a few dozen images can be trusted (the rule of three for a 0 count)."""
    n_a = sum(b.n_authentic or 0 for b in calibration.bands)
    if not n_a:
        return ""
    return (f'<p class="muted">These rates come from {n_a} authentic and '
            f"{sum(b.n_manipulated or 0 for b in calibration.bands)} manipulated test composites: with so few "
            f"images a rate of 0% only says the true rate is probably below about {3 / n_a:.0%}.</p>")


def _table_html(entries: Sequence[ImageEntry], prefix: str) -> str:
    ok = sorted((e for e in entries if e.ok), key=lambda e: -(e.number("score") or float("-inf")))
    failed = [e for e in entries if not e.ok]
    rows = []
    for rank, e in enumerate(ok, 1):
        thumb = e.files.get("thumb") or e.files.get("overlay")
        img = (f'<a href="#{_safe_id(e.stem)}"><img class="thumb" src="{_src(prefix, thumb)}" '
               f'alt="{html.escape(e.name, quote=True)}"></a>') if thumb else ""
        p, score, flagged, secs = (e.number(k) for k in ("probability", "score", "flagged_fraction", "seconds"))
        rows.append(
            f'<tr class="ok" data-stem="{html.escape(e.stem, quote=True)}"><td class="num">{rank}</td><td>{img}</td>'
            f'<td><a href="#{_safe_id(e.stem)}">{html.escape(e.name)}</a></td>'
            f'<td class="num" data-value="{_fmt(p, ".6f", "")}">{_fmt(p, ".1%")}</td>'
            f'<td data-value="{html.escape(str(e.meta.get("verdict") or ""))}">{_verdict_badge(e.meta.get("verdict"))}</td>'
            f'<td class="num" data-value="{_fmt(score, ".6f", "")}">{_fmt(score, ".3f")}</td>'
            f'<td class="num" data-value="{_fmt(flagged, ".6f", "")}">{_fmt(flagged, ".1%")}</td>'
            f'<td>{html.escape(str(e.meta.get("model_id", "")))}</td>'
            f'<td class="num" data-value="{_fmt(secs, ".4f", "")}">{_fmt(secs, ".2f")}</td></tr>')
    for e in failed:
        rows.append(f'<tr class="failed" data-stem="{html.escape(e.stem, quote=True)}"><td class="num">–</td><td></td>'
                    f'<td>{html.escape(e.name)}</td><td colspan="6">failed: {html.escape(e.error or "")}</td></tr>')
    head = ('<thead><tr><th data-sort="num">#</th><th>image</th><th data-sort="text">file</th>'
            '<th data-sort="num">probability of manipulation</th><th data-sort="text">verdict</th>'
            '<th data-sort="num">score</th><th data-sort="num">flagged</th><th data-sort="text">model</th>'
            '<th data-sort="num">seconds</th></tr></thead>')
    return f'<table class="results" id="results">{head}<tbody>{"".join(rows)}</tbody></table>'


def _exif_html(e: ImageEntry, status: dict[str, Any]) -> str:
    parts = ["<h3>EXIF metadata</h3>"]
    if e.exif_error:
        parts.append(f'<p class="muted">The EXIF could not be read: {html.escape(e.exif_error)}</p>')
        return "".join(parts)
    if not e.exif_tags:
        parts.append('<p class="muted">The file has no EXIF metadata (common for screenshots, edited or '
                     'exported pictures, and messaging-app copies), so there is nothing to check.</p>')
        return "".join(parts)
    if e.check:
        c = e.check
        best = c.get("best_reference") or {}
        own = camera_name(e.exif_tags.get("Make"), e.exif_tags.get("Model"))
        parts.append(f"<p>check-exif verdict: {_verdict_badge(c['verdict'])} — the own EXIF "
                     f"({html.escape(own)}) "
                     f"beats {c['percentile']:.0%} of {c['n_references']} other cameras' texts; z = {c['z']:+.2f}"
                     + (f"; best-matching other camera: "
                        f"{html.escape(camera_name(best.get('make'), best.get('model')))}" if best else "") + ".</p>")
        tags = c.get("least_agreeing_tags") or []
        if tags:
            items = "".join(f"<li><code>{html.escape(t['tag'])}: {html.escape(str(t['value']))}</code> "
                            f"({t['effect']:+.4f})</li>" for t in tags)
            parts.append(f"<details><summary>Tags agreeing least with the pixels (negative = they disagree)"
                         f"</summary><ul>{items}</ul></details>")
        else:
            parts.append(f'<p class="muted">Which tags agree least with the pixels: <code>exiflang check-exif '
                         f'{html.escape(shlex.quote(e.name))}</code> (slower: it re-scores the text once per tag).</p>')
    else:
        note = e.check_note or status.get("note") or "the EXIF check did not run"
        parts.append(f'<p class="note">check-exif was skipped for this file: {html.escape(note)}.</p>')
    parts.append(f"<details><summary>EXIF text the model reads ({len(e.exif_tags)} tags in the file)</summary>"
                 f'<pre class="exif">{html.escape(e.exif_text or "")}</pre></details>')
    return "".join(parts)


def _section_html(e: ImageEntry, rank: int, prefix: str, calibration, status: dict[str, Any],
                  show_paths: bool = True) -> str:
    meta = e.meta
    size = meta.get("image_size") or {}
    figs = []
    for kind in ("view", "overlay", "mask", "pca"):
        name = e.files.get(kind)
        if not name:
            if kind == "pca":
                figs.append('<figure><figcaption><b>PCA view</b>: not available for this detector '
                            '(it has no patch embeddings).</figcaption></figure>')
            continue
        extra = ""
        if kind == "overlay":
            extra = ('<div class="colourbar"><span>0 consistent</span><span class="ramp"></span>'
                     '<span>1 inconsistent</span></div>')
        figs.append(f'<figure><img src="{_src(prefix, name)}" alt="{kind} of {html.escape(e.name, quote=True)}">'
                    f"{extra}<figcaption>{VIEW_CAPTIONS[kind]}</figcaption></figure>")
    numbers = (f"probability of manipulation {_fmt(e.number('probability'), '.1%')} · score "
               f"{_fmt(e.number('score'), '.4f')} · flagged {_fmt(e.number('flagged_fraction'), '.1%')} · "
               f"{size.get('width', '?')}×{size.get('height', '?')} px · model {html.escape(str(meta.get('model_id', '')))}"
               f" · {_fmt(e.number('seconds'), '.2f')} s")
    return (f'<section class="image" id="{_safe_id(e.stem)}"><h2>{rank}. {html.escape(e.name)} '
            f"{_verdict_badge(meta.get('verdict'))}</h2>"
            f'<p class="numbers">{numbers}'
            + (f'<br><span class="muted">{html.escape(e.source)}</span>' if show_paths else "") + "</p>"
            + f'<div class="plain">{plain_language(e, calibration)}</div>'
            f'<div class="views">{"".join(figs)}</div>{_exif_html(e, status)}</section>')


def render_body(entries: Sequence[ImageEntry], *, calibration=None, status: dict[str, Any] | None = None,
                run_info: str = "", prefix: str = "", show_paths: bool = True) -> str:
    """The report's content (no <html>/<head>): table, how to read it, per-image sections, failures.

    ``prefix`` goes before every image file name (the web app serves a job's files under ``/jobs/<id>/``).
    """
    status = status or {}
    ok = sorted((e for e in entries if e.ok), key=lambda e: -(e.number("score") or float("-inf")))
    failed = [e for e in entries if not e.ok]
    parts = [f'<div class="report"><p class="run">{run_info}</p>' if run_info else '<div class="report">']
    parts.append(f"<h2>Results: {len(ok)} analysed, {len(failed)} failed</h2>")
    parts.append("<p>Sorted by score, the most suspicious first; click a column heading to re-sort, a file name "
                 "for its full report.</p>")
    parts.append(_table_html(entries, prefix))
    parts.append("<h2>How to read the probability</h2>" + _bands_html(calibration))
    if status.get("check") != "ran" and any(e.exif_tags for e in ok):
        parts.append(f'<p class="note">check-exif was skipped: {html.escape(status.get("note") or "not run")}.</p>')
    for rank, e in enumerate(ok, 1):
        parts.append(_section_html(e, rank, prefix, calibration, status, show_paths))
    if failed:
        items = "".join(f"<li><code>{html.escape(e.source if show_paths else e.name)}</code>: "
                        f"{html.escape(e.error or '')}</li>" for e in failed)
        parts.append(f'<section id="failed"><h2>Files that could not be analysed ({len(failed)})</h2>'
                     f'<ul class="failed-list">{items}</ul></section>')
    parts.append("</div>")
    return "".join(parts)


def render_page(entries: Sequence[ImageEntry], *, title: str, calibration=None,
                status: dict[str, Any] | None = None, run_info: str = "", show_paths: bool = True) -> str:
    """The whole self-contained page."""
    body = render_body(entries, calibration=calibration, status=status, run_info=run_info, show_paths=show_paths)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main><script>{JS}</script></body></html>\n"
    )


@dataclass
class Report:
    """Everything a page shows: the entries, what happened to the EXIF check, the model's calibration."""

    entries: list[ImageEntry]
    status: dict[str, Any]
    calibration: Any = None
    run_info: str = ""
    problems: list[str] = field(default_factory=list)  # view copies that could not be written, one line each

    def body(self, prefix: str = "", show_paths: bool = True) -> str:
        return render_body(self.entries, calibration=self.calibration, status=self.status, run_info=self.run_info,
                           prefix=prefix, show_paths=show_paths)

    def page(self, title: str | None = None, show_paths: bool = True) -> str:
        n = len(self.entries)
        return render_page(self.entries, title=title or f"exiflang report: {n} image{'s' if n != 1 else ''}",
                           calibration=self.calibration, status=self.status, run_info=self.run_info,
                           show_paths=show_paths)


def build_report(out_dir: str | Path, items: Iterable[tuple[str, str, str | None]], *, model: str = "default",
                 device: str = "cpu", exif_check: bool = True, command: str | None = None,
                 log: Callable[[str], None] | None = None) -> Report:
    """Collect the entries of ``(source, stem, error)`` items (view copies, EXIF, the EXIF check, calibration)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the report folder ({exc})") from exc
    problems: list[str] = []
    entries = collect_entries(out, items, problems=problems)
    for problem in problems:
        if log:
            log(problem)
    status = add_exif(entries, check=exif_check, model=str(model), device=device, log=log)
    calibration = _calibration_for(str(model), device) if any(e.meta.get("probability") is not None
                                                               for e in entries) else None
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    run_info = f"Made {html.escape(when)} by exiflang"
    if command:
        run_info += f": <code>{html.escape(command)}</code>"
    run_info += f". {html.escape(status.get('note') or '')}"
    return Report(entries, status, calibration, run_info, problems)


def write_html_report(out_dir: str | Path, items: Iterable[tuple[str, str, str | None]], *, model: str = "default",
                      device: str = "cpu", exif_check: bool = True, title: str | None = None,
                      command: str | None = None, log: Callable[[str], None] | None = None,
                      show_paths: bool = True) -> Path:
    """Write ``out_dir/index.html`` for ``(source, stem, error)`` items whose per-image files are in out_dir."""
    report = build_report(out_dir, items, model=model, device=device, exif_check=exif_check, command=command, log=log)
    return save_page(report, out_dir, title=title, show_paths=show_paths)


def save_page(report: Report, out_dir: str | Path, title: str | None = None, show_paths: bool = True) -> Path:
    """Write a built report as ``out_dir/index.html`` (atomically; a symbolic link there is refused, one line)."""
    from ..imageio import UnsafeOutputError, atomic_write_text

    path = Path(out_dir) / INDEX_FILE
    try:
        atomic_write_text(path, report.page(title, show_paths=show_paths))
    except UnsafeOutputError as exc:
        raise ReportError(str(exc)) from exc
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report ({exc})") from exc
    return path


__all__ = ["CSS", "ImageEntry", "INDEX_FILE", "JS", "Report", "ReportError", "add_exif", "build_report",
           "collect_entries", "plain_language", "render_body", "render_page", "save_page", "write_html_report"]
