"""EXIF reading and EXIF-to-text: what the text encoder reads about each photo.

    read_exif(path)           -> {"Make": "Canon", "ExposureTime": "1/500", ...}
    ExifReader()              -> batch reader (ExifTool -stay_open, else pyexiv2 in-process)
    exif_to_text(tags, cfg)   -> "Make: Canon, Model: Canon EOS 40D, Exposure Time: 1/500, ..."
    TextConfig                -> the ablation switches, stored in model configs as `text_format`
"""
from __future__ import annotations

from .errors import ExifReadError
from .reader import ExifReader, ExifRecord, read_exif
from .text import TextConfig, camera_name, exif_to_text

__all__ = ["read_exif", "ExifReader", "ExifRecord", "ExifReadError", "exif_to_text", "TextConfig", "camera_name"]
