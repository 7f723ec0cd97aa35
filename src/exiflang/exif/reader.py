"""Read EXIF tags from image files: ExifTool in batch mode by default, pyexiv2 in-process as a fallback.

`read_exif(path)` returns ``{"ExposureTime": "1/500", "FNumber": "5.6", ...}``: ExifTool tag names without
group prefix, human-readable string values. Only the EXIF block is read (IFD0, ExifIFD, Interop, GPS);
MakerNotes are added on request (`makernotes=True`) and never override a standard tag.
"""
from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import ExifReadError
from .exiftool import ExifToolProcess, find_exiftool

log = logging.getLogger("exiflang.exif")

BACKENDS = ("auto", "exiftool", "pyexiv2")
DEFAULT_TIMEOUT = 10.0  # seconds per file: ExifTool reads a camera JPEG in ~10 ms, so only a pathological file waits this long
_BINARY_PREFIX = "(Binary data"
# EXIF tags naming software that touched the pixels (EXIF 2.32 added the last two).
SOFTWARE_TAGS = ("Software", "ProcessingSoftware", "ImageEditingSoftware", "RAWDevelopingSoftware")


@dataclass
class ExifRecord:
    """Everything one read learns about a file: the tags, plus what the index needs to judge it."""

    path: str
    tags: dict[str, str]
    editing_software: list[str] = field(default_factory=list)  # Software, ProcessingSoftware, XMP CreatorTool/History
    file_type: str = ""
    warning: str = ""


def _to_text(value: Any) -> str | None:
    """Turn one ExifTool JSON value into a string; None for binary blobs, structures and empty values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        parts = [_to_text(v) for v in value]
        parts = [p for p in parts if p]
        return ", ".join(parts) if parts else None
    if isinstance(value, dict):
        return None  # XMP structures: nothing in the EXIF block produces them
    text = str(value).replace("\x00", "").strip()
    if not text or text.startswith(_BINARY_PREFIX) or text.startswith("base64:"):
        return None
    return text


def record_from_json(path: str, data: dict[str, Any], makernotes: bool = False) -> ExifRecord:
    """Build an ExifRecord from ExifTool's -G0 JSON object (or the fallback's look-alike); raise on errors."""
    error = data.get("ExifTool:Error")
    if error:
        raise ExifReadError(path, str(error))
    mime = str(data.get("File:MIMEType", "image/"))
    if not mime.startswith("image/"):
        raise ExifReadError(path, f"not an image file (ExifTool sees {data.get('File:FileType', mime)})")
    tags: dict[str, str] = {}
    maker: dict[str, str] = {}
    for key, value in data.items():
        group, _, name = key.partition(":")
        if group not in ("EXIF", "MakerNotes") or not name:
            continue
        text = _to_text(value)
        if text is None:
            continue
        (tags if group == "EXIF" else maker)[name] = text
    if makernotes:
        for name, text in maker.items():
            tags.setdefault(name, text)
    software = [tags[k] for k in SOFTWARE_TAGS if k in tags]
    for key in ("XMP:CreatorTool", "XMP:HistorySoftwareAgent"):
        text = _to_text(data.get(key)) if key in data else None
        if text:
            software.append(text)
    return ExifRecord(path, tags, software, str(data.get("File:FileType", "")), str(data.get("ExifTool:Warning", "")))


class ExifReader:
    """Reads many files with one backend; use as a context manager so ExifTool is shut down."""

    def __init__(self, backend: str = "auto", makernotes: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 exiftool: str | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown EXIF backend {backend!r}; choose one of {BACKENDS}")
        self.makernotes = makernotes
        self.timeout = timeout
        self._exiftool: ExifToolProcess | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        exe = exiftool or find_exiftool()
        if backend == "exiftool" and not exe:
            raise ExifReadError("exiftool", "ExifTool was requested but is not installed (apt install libimage-exiftool-perl)")
        if backend in ("auto", "exiftool") and exe:
            self.backend = "exiftool"
            self._exiftool = ExifToolProcess(exe, makernotes=makernotes, timeout=timeout)
        else:
            self.backend = "pyexiv2"
            if backend == "auto":
                log.warning("ExifTool not found: reading EXIF in-process with pyexiv2 (fewer MakerNotes, same standard tags)")

    def describe(self) -> str:
        """One line naming the backend, for progress output and index metadata."""
        if self._exiftool is not None:
            return f"exiftool {self._exiftool.version()} (batch -stay_open, {self.timeout:g} s per file)"
        return f"pyexiv2 in-process fallback ({self.timeout:g} s per file)"

    def _read_json(self, path: str) -> dict[str, Any]:
        """The backend's raw -G0 style JSON object for one file."""
        if self._exiftool is not None:
            return self._exiftool.read(path)
        from .exiv2 import read_with_pyexiv2

        # pyexiv2 runs in this process; a worker thread gives it a time limit. A truly hung C++ call cannot be
        # killed in-process, so its thread is abandoned and a fresh one serves the next file.
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="exiflang-pyexiv2")
        future = self._pool.submit(read_with_pyexiv2, path, self.makernotes)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError as exc:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise ExifReadError(path, f"pyexiv2 took longer than {self.timeout:g} s") from exc

    def read_record(self, path: str | Path) -> ExifRecord:
        """Read one file into an ExifRecord (tags + editing-software evidence); raise ExifReadError."""
        path = str(path)
        p = Path(path)
        from ..imageio import regular_file_problem  # imported here: exiflang.imageio loads Pillow and pillow-heif

        problem = regular_file_problem(p)  # a FIFO is named, never opened (reading it would block)
        if problem:
            raise ExifReadError(path, problem)
        if p.stat().st_size == 0:
            raise ExifReadError(path, "file is empty")
        return record_from_json(path, self._read_json(path), self.makernotes)

    def read(self, path: str | Path) -> dict[str, str]:
        """Read one file's tags: {"ExposureTime": "1/500", ...}; raise ExifReadError."""
        return self.read_record(path).tags

    def read_many(self, paths: Iterable[str | Path]) -> Iterator[tuple[str, dict[str, str] | ExifReadError]]:
        """Yield (path, tags) or (path, ExifReadError) for each path, in order, without stopping at errors."""
        for path in paths:
            try:
                yield str(path), self.read(path)
            except ExifReadError as exc:
                yield str(path), exc

    def close(self) -> None:
        """Stop ExifTool / the fallback's worker thread."""
        if self._exiftool is not None:
            self._exiftool.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "ExifReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_exif(path: str | Path, backend: str = "auto", makernotes: bool = False,
              timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
    """Read one photo's EXIF tags ({"Make": "Canon", "ExposureTime": "1/500", ...}); raise ExifReadError.

    Starts (and stops) one ExifTool process per call; use `ExifReader` to read many files.
    """
    with ExifReader(backend=backend, makernotes=makernotes, timeout=timeout) as reader:
        return reader.read(path)


__all__ = ["ExifReader", "ExifRecord", "read_exif", "record_from_json", "BACKENDS", "DEFAULT_TIMEOUT"]
