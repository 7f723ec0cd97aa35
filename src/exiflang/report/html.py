"""One self-contained HTML page for a batch of analysed images: ``DIR/index.html``, with the batch's summary
beside it (``batch-summary.csv``, ``batch-summary.json``).

`exiflang detect PHOTOS... --out DIR` writes it after the per-image files (``<stem>.json``, ``.overlay.png``,
``.mask.png``, ``.pca.png``; `exiflang.forensics.report.write_report`), and `exiflang serve` shows the same
per-image report for uploads. This module gathers what the page shows (it adds ``<stem>.view.jpg``, the original
rotated upright and at most 1600 px, which browsers can show even for HEIC or TIFF inputs, and
``<stem>.thumb.jpg``; it reads the EXIF and runs the EXIF check); `exiflang.report.render` lays it out from the
Jinja2 templates in ``report/templates``. The page works offline: inline CSS and JavaScript, no CDN, no web
fonts, images by relative file names in the same folder.

Contents: a table of all images sorted by score (keyboard-sortable), how to read the report (said once per page),
then per image: its metadata checks (exiflang.exif.provenance), the pixel analysis (heatmap over the original
with an opacity slider, mask, PCA view; each picture enlarges on click) and the EXIF check; files that failed
with their reasons; the method's terms of art last.

Inputs are ``(source path, stem, error or None)`` triples: everything else is read back from the files the
detector wrote, so the page does not depend on how the detector runs internally.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import ExiflangError
from .reading import _grid_as_calibrated, _grid_side, plain_language  # noqa: F401 - re-exported

VIEW_MAX = 1600  # longest side of the original's copy shown on the page
THUMB_MAX = 160  # longest side of the table thumbnails
CHECK_PATCHES = 16  # patches per image for the EXIF check (as `exiflang check-exif`'s default)
INDEX_FILE = "index.html"
# The batch's table, beside index.html. The JSON's name could be an image's own <stem>.json (an input named
# batch-summary.jpg): then that image's report keeps the name and only the CSV is written.
SUMMARY_CSV, SUMMARY_JSON = "batch-summary.csv", "batch-summary.json"


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


@dataclass
class Report:
    """Everything a page shows: the entries, what happened to the EXIF check, the model's calibration."""

    entries: list[ImageEntry]
    status: dict[str, Any]
    calibration: Any = None
    run_info: str = ""  # plain text: when, by which command, what the EXIF check did
    problems: list[str] = field(default_factory=list)  # view copies that could not be written, one line each

    def body(self, prefix: str = "", show_paths: bool = True) -> str:
        from .render import render_body

        return render_body(self.entries, calibration=self.calibration, status=self.status, run_info=self.run_info,
                           prefix=prefix, show_paths=show_paths)

    def page(self, title: str | None = None, show_paths: bool = True) -> str:
        from .render import render_page

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
    run_info = f"Made {when} by exiflang" + (f": {command}" if command else "") + f". {status.get('note') or ''}"
    return Report(entries, status, calibration, run_info.strip(), problems)


def write_html_report(out_dir: str | Path, items: Iterable[tuple[str, str, str | None]], *, model: str = "default",
                      device: str = "cpu", exif_check: bool = True, title: str | None = None,
                      command: str | None = None, log: Callable[[str], None] | None = None,
                      show_paths: bool = True) -> Path:
    """Write ``out_dir/index.html`` for ``(source, stem, error)`` items whose per-image files are in out_dir."""
    report = build_report(out_dir, items, model=model, device=device, exif_check=exif_check, command=command, log=log)
    return save_page(report, out_dir, title=title, show_paths=show_paths)


def save_page(report: Report, out_dir: str | Path, title: str | None = None, show_paths: bool = True) -> Path:
    """Write a built report as ``out_dir/index.html`` and its batch summary beside it (``batch-summary.csv``,
    ``batch-summary.json``), each atomically; a symbolic link there is refused, one line."""
    from ..imageio import UnsafeOutputError, atomic_write_text
    from .summary import summary_csv, summary_json

    path = Path(out_dir) / INDEX_FILE
    try:
        atomic_write_text(path, report.page(title, show_paths=show_paths))
        atomic_write_text(Path(out_dir) / SUMMARY_CSV, summary_csv(report.entries, show_paths))
        if not any(e.stem.casefold() == Path(SUMMARY_JSON).stem for e in report.entries):
            atomic_write_text(Path(out_dir) / SUMMARY_JSON, summary_json(report.entries, show_paths))
    except UnsafeOutputError as exc:
        raise ReportError(str(exc)) from exc
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report ({exc})") from exc
    return path


def render_body(entries: Sequence[ImageEntry], **options: Any) -> str:
    """The report's content (exiflang.report.render)."""
    from .render import render_body as render

    return render(entries, **options)


def render_page(entries: Sequence[ImageEntry], *, title: str, **options: Any) -> str:
    """The whole self-contained page (exiflang.report.render)."""
    from .render import render_page as render

    return render(entries, title=title, **options)


__all__ = ["ImageEntry", "INDEX_FILE", "Report", "ReportError", "SUMMARY_CSV", "SUMMARY_JSON", "add_exif",
           "build_report", "collect_entries", "plain_language", "render_body", "render_page", "save_page",
           "write_html_report"]
