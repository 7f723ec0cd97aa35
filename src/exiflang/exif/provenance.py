"""Provenance and metadata checks: what a file's own metadata says about its history, before any pixel analysis.

`provenance_checks(path, pixels)` returns one `Check` per question, each ``{id, status, text, evidence}`` with
status ``ok`` / ``warning`` / ``not available`` and a one-line text a reader can act on:

* ``software``: editing software named anywhere in EXIF, XMP or IPTC (or the JPEG comment);
* ``camera``: the camera's EXIF present, missing or stripped;
* ``dimensions``: the EXIF pixel dimensions against the stored pixel array;
* ``dates``: the date tags agreeing (taken, digitised, modified);
* ``thumbnail``: the EXIF thumbnail against the picture (`exif.thumbnail`);
* ``credentials``: Content Credentials (C2PA), read and validated (`exif.credentials`).

A warning is evidence to weigh, not a verdict: a photo that was only resized for the web, or cropped losslessly,
fails the dimension check honestly.
"""
from __future__ import annotations

import datetime
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExifReadError
from .text import camera_name

OK, WARNING, NOT_AVAILABLE = "ok", "warning", "not available"
CHECK_IDS = ("software", "camera", "dimensions", "dates", "thumbnail", "credentials")
# Everything the checks read, in ExifTool's -G0 groups. IFD1 is left out: its tags describe the thumbnail (whose
# bytes the thumbnail check reads with Pillow), and the pyexiv2 fallback skips them, so both count the same tags.
PROVENANCE_ARGS = ["-EXIF:all", "--IFD1:all", "-XMP:all", "-IPTC:all", "-File:Comment", "-ExifTool:Error",
                   "-ExifTool:Warning", "-File:FileType", "-File:MIMEType", "-fast2"]
# Programs that change pixels. Camera firmware versions ("Ver.1.00", "Firmware 1.1") do not match.
EDITORS = re.compile(
    r"photoshop|lightroom|camera raw|adobe|gimp|affinity|pixelmator|snapseed|paint\.net|paint ?shop|corel|acdsee|"
    r"picasa|capture one|capture nx|darktable|rawtherapee|luminar|photopea|krita|canva|fotor|facetune|picsart|"
    r"vsco|photo ?editor|photos? gallery|microsoft photos|gd-jpeg|imagemagick|graphicsmagick|irfanview|xnview|"
    r"faststone|digikam|shotwell|photoscape|photodirector|inpixio|topaz|dxo|noise ninja|photofiltre|ulead|"
    r"photoimpact|on1 |skylum|created with|quicktime", re.IGNORECASE)
CAPTURE_TAGS = ("ExposureTime", "FNumber", "ISO", "FocalLength", "DateTimeOriginal")
DATE_TAGS = ("EXIF:DateTimeOriginal", "EXIF:CreateDate", "EXIF:ModifyDate", "XMP:DateTimeOriginal",
             "XMP:CreateDate", "XMP:ModifyDate")
MODIFIED_AFTER_S = 60  # a camera writes all its dates within a second or two of each other


@dataclass
class Check:
    """One provenance question answered: ok / warning / not available, in one line, with its evidence."""

    id: str
    status: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    text = str(value).strip() if value is not None else ""
    return [text] if text and not text.startswith("(Binary data") else []


def software_named(meta: dict[str, Any]) -> dict[str, list[str]]:
    """Every software name the metadata holds, by tag ('EXIF:Software': [...], 'XMP:CreatorTool': [...])."""
    found: dict[str, list[str]] = {}
    for key, value in meta.items():
        group, _, name = key.partition(":")
        wanted = (group == "EXIF" and name.endswith("Software")
                  or group == "XMP" and re.search(r"CreatorTool|SoftwareAgent|Software$", name)
                  or group == "IPTC" and name in ("OriginatingProgram", "ProgramVersion")
                  or key == "File:Comment")
        if wanted and _strings(value):
            found[key] = _strings(value)
    return found


def software_check(meta: dict[str, Any]) -> Check:
    named = software_named(meta)
    editors = {k: v for k, v in named.items() if any(EDITORS.search(s) for s in v)}
    if editors:
        names = sorted({s for v in editors.values() for s in v if EDITORS.search(s)})
        return Check("software", WARNING, f"editing software named: {'; '.join(names)} (in {', '.join(editors)})",
                     {"tags": named})
    if named:
        names = sorted({s for v in named.values() for s in v})
        return Check("software", OK, f"software named: {'; '.join(names)[:120]} (no known editor)", {"tags": named})
    return Check("software", OK, "no software named in EXIF, XMP or IPTC", {})


def camera_check(meta: dict[str, Any]) -> Check:
    exif = {k.split(":", 1)[1]: str(v) for k, v in meta.items() if k.startswith("EXIF:")}
    if not exif:
        return Check("camera", WARNING, "no EXIF metadata at all: stripped, exported, a screenshot or a "
                                        "messaging-app copy", {"exif_tags": 0})
    make, model = exif.get("Make", "").strip(), exif.get("Model", "").strip()
    capture = [t for t in CAPTURE_TAGS if t in exif]
    evidence = {"exif_tags": len(exif), "make": make, "model": model, "capture_tags": capture}
    if not make and not model:
        return Check("camera", WARNING, f"no camera make or model in the EXIF ({len(exif)} tags left): the "
                                        "camera description was removed or never written", evidence)
    if not capture:
        return Check("camera", WARNING, f"camera {camera_name(make, model)} named, but no exposure tags "
                                        f"({', '.join(CAPTURE_TAGS)}): the EXIF was partly stripped or rewritten",
                     evidence)
    return Check("camera", OK, f"camera EXIF present: {camera_name(make, model)} ({len(exif)} tags)", evidence)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).split()[0])
    except (ValueError, IndexError):
        return None


def dimensions_check(meta: dict[str, Any], width: int, height: int) -> Check:
    ew, eh = _int(meta.get("EXIF:ExifImageWidth")), _int(meta.get("EXIF:ExifImageHeight"))
    evidence = {"exif": [ew, eh], "stored": [width, height]}
    if not ew or not eh:
        return Check("dimensions", NOT_AVAILABLE, "no EXIF pixel dimensions to compare", evidence)
    if (ew, eh) == (width, height):
        return Check("dimensions", OK, f"EXIF pixel dimensions match the stored {width}x{height}", evidence)
    if (eh, ew) == (width, height):
        return Check("dimensions", WARNING, f"EXIF says {ew}x{eh}, the stored pixels are {width}x{height}: "
                                            "rotated after capture", evidence)
    same_shape = abs(np.log((ew / eh) / (width / height))) < 0.01
    how = "resized or cropped to the same shape" if same_shape else "cropped (or resized unevenly)"
    return Check("dimensions", WARNING, f"EXIF says {ew}x{eh}, the stored pixels are {width}x{height}: "
                                        f"{how} after capture, or the EXIF belongs to another picture", evidence)


def _when(value: Any) -> datetime.datetime | None:
    """'2008:11:17 00:07:55[.12][+08:00]' as a naive datetime (local clock time, as cameras write it)."""
    found = re.match(r"(\d{4})[:-](\d\d)[:-](\d\d)[ T](\d\d):(\d\d)(?::(\d\d))?", str(value or ""))
    if not found:
        return None
    try:
        return datetime.datetime(*(int(g or 0) for g in found.groups()))
    except ValueError:
        return None


def dates_check(meta: dict[str, Any]) -> Check:
    dates = {k: _when(meta.get(k)) for k in DATE_TAGS}
    dates = {k: v for k, v in dates.items() if v is not None}
    evidence = {k: str(meta[k]) for k in dates}
    if not dates:
        return Check("dates", NOT_AVAILABLE, "no date tags", evidence)
    taken_key = next((k for k in ("EXIF:DateTimeOriginal", "EXIF:CreateDate", "XMP:DateTimeOriginal",
                                  "XMP:CreateDate") if k in dates), None)
    if taken_key is None:
        return Check("dates", NOT_AVAILABLE, "no capture date, only a modification date "
                                             f"({', '.join(evidence.values())})", evidence)
    taken = dates[taken_key]
    worst_key = max(dates, key=lambda k: abs((dates[k] - taken).total_seconds()))
    gap = (dates[worst_key] - taken).total_seconds()
    if abs(gap) <= MODIFIED_AFTER_S:
        return Check("dates", OK, f"date tags agree: taken {taken:%Y-%m-%d %H:%M:%S}", evidence)
    later = "after" if gap > 0 else "before"
    return Check("dates", WARNING, f"{worst_key.replace(':', ' ')} is {_span(abs(gap))} {later} "
                                   f"{taken_key.replace(':', ' ')} ({dates[worst_key]:%Y-%m-%d %H:%M:%S} vs "
                                   f"{taken:%Y-%m-%d %H:%M:%S}): saved again later", evidence)


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


_THUMBNAIL_TEXT = {
    "match": "the EXIF thumbnail shows the same picture and frame",
    "edited": "the EXIF thumbnail shows the same frame, but one region differs: the picture was changed after "
              "the thumbnail was written",
    "crop": "the EXIF thumbnail shows a wider frame: the picture is a crop made after the thumbnail was written",
    "other": "the EXIF thumbnail shows another picture: the pixels were replaced or the EXIF comes from "
             "another file",
    "flat": "the picture or its EXIF thumbnail is too flat (nearly one colour) to compare the two",
}


def thumbnail_check(path: str | Path, pixels: np.ndarray) -> Check:
    from ..imageio import ImageLoadError
    from .thumbnail import compare_thumbnail, extract_thumbnail, thumbnail_rgb

    blob = extract_thumbnail(path)
    if blob is None:
        return Check("thumbnail", NOT_AVAILABLE, "no EXIF thumbnail to compare", {})
    try:
        thumb = thumbnail_rgb(blob, str(path))
    except ImageLoadError as exc:
        return Check("thumbnail", NOT_AVAILABLE, f"the EXIF thumbnail cannot be decoded ({exc})", {})
    found = compare_thumbnail(thumb, pixels)
    evidence = {"outcome": found.outcome, "correlation": round(found.correlation, 3),
                "thumbnail_size": list(found.thumbnail_size), **found.evidence}
    text = _THUMBNAIL_TEXT[found.outcome]
    if found.outcome == "crop":
        text += f" (about {found.evidence['window_fraction']:.0%} of its area)"
    elif found.outcome == "edited":
        e = found.evidence
        text += f" (region row {e['region_row'] + 1}, column {e['region_col'] + 1} of {e['grid']}x{e['grid']})"
    status = {"match": OK, "flat": NOT_AVAILABLE}.get(found.outcome, WARNING)
    return Check("thumbnail", status, text, evidence)


def credentials_check(path: str | Path, trust_anchors: str | None = None) -> Check:
    from .credentials import read_credentials

    c = read_credentials(path, trust_anchors)
    evidence = c.to_evidence()
    actions = f"; actions: {', '.join(c.actions)}" if c.actions else "; no actions recorded"
    if c.state == "absent":
        return Check("credentials", NOT_AVAILABLE, "no Content Credentials (C2PA) in the file", evidence)
    if c.state in ("unreadable", "unavailable"):
        return Check("credentials", NOT_AVAILABLE, f"Content Credentials could not be read: {c.detail}", evidence)
    if c.state == "invalid":
        return Check("credentials", WARNING, f"Content Credentials INVALID (signed by {c.signer or '?'}): "
                                             f"{'; '.join(c.problems)[:160]}{actions}", evidence)
    if c.state == "valid":
        return Check("credentials", WARNING, f"Content Credentials valid, but the signer {c.signer or '?'} is not "
                                             f"on a trust list{actions}", evidence)
    return Check("credentials", OK, f"Content Credentials valid, signed by trusted {c.signer}{actions}", evidence)


class ProvenanceReader:
    """Runs the checks on many files with one ExifTool process (pyexiv2 in-process without ExifTool)."""

    def __init__(self, trust_anchors: str | None = None, timeout: float = 10.0):
        from .exiftool import ExifToolProcess, find_exiftool

        self.trust_anchors = trust_anchors
        exe = find_exiftool()
        self._exiftool = ExifToolProcess(exe, timeout=timeout, tag_args=PROVENANCE_ARGS) if exe else None
        self.backend = "exiftool" if exe else "pyexiv2"  # which reader answers `metadata`

    def metadata(self, path: str | Path) -> dict[str, Any]:
        """ExifTool's -G0 JSON for the file (the fallback's look-alike: EXIF, XMP software and dates, IPTC program, comment)."""
        if self._exiftool is not None:
            return self._exiftool.read(path)
        from .exiv2 import read_with_pyexiv2

        return read_with_pyexiv2(path)

    def check(self, path: str | Path, pixels: np.ndarray | None = None) -> list[Check]:
        """Every check on one file; ``pixels`` is its stored array (decoded here when not given)."""
        if pixels is None:
            from ..imageio import load_rgb

            pixels = load_rgb(path)[0]
        height, width = pixels.shape[:2]
        try:
            meta = self.metadata(path)
        except ExifReadError as exc:
            unread = Check("metadata", NOT_AVAILABLE, f"the metadata could not be read: {exc}", {})
            return [unread, dimensions_check({}, width, height), thumbnail_check(path, pixels),
                    credentials_check(path, self.trust_anchors)]
        return [software_check(meta), camera_check(meta), dimensions_check(meta, width, height),
                dates_check(meta), thumbnail_check(path, pixels), credentials_check(path, self.trust_anchors)]

    def close(self) -> None:
        if self._exiftool is not None:
            self._exiftool.close()

    def __enter__(self) -> "ProvenanceReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: ProvenanceReader | None = None
_shared_lock = threading.Lock()


def provenance_checks(path: str | Path, pixels: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The checks of one file as JSON-ready dicts, through one reader kept for the whole process."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ProvenanceReader()
        reader = _shared
    return [c.to_dict() for c in reader.check(path, pixels)]


def not_ok(checks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The checks a reader must see (every one whose status is not ok)."""
    return [c for c in checks or [] if isinstance(c, dict) and c.get("status") != OK]


__all__ = ["CHECK_IDS", "Check", "NOT_AVAILABLE", "OK", "ProvenanceReader", "WARNING", "camera_check",
           "credentials_check", "dates_check", "dimensions_check", "not_ok", "provenance_checks", "software_check",
           "software_named", "thumbnail_check"]
