"""The one exception type for EXIF reading problems."""
from __future__ import annotations

from pathlib import Path

from ..errors import ExiflangError


class ExifReadError(ExiflangError):
    """EXIF could not be read from a file; the message names the file and the cause."""

    def __init__(self, path: "str | Path", cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")
