"""Load images as the models see them: the stored pixel array, 8-bit RGB, with a pixel limit.

Policy (stated once, used everywhere):
* Analysis runs on the pixel array **as stored** in the file. EXIF Orientation is not applied, because
  the camera's traces (demosaicing, JPEG 8x8 grid) live in stored-array coordinates; every map we
  return is in those coordinates. `upright()` rotates an array for display only.
* Grayscale, palette, CMYK, 16-bit, LA/RGBA images are converted to 8-bit RGB (alpha is dropped,
  16-bit is scaled down). The conversion is reported in `ImageInfo.converted_from`.
* Images larger than `MAX_PIXELS` raise `ImageLoadError` (decompression-bomb guard).
* HEIC/HEIF (every recent iPhone's default format) is decoded by pillow-heif's Pillow opener, registered here
  once, on import. libheif applies the container's rotation/mirror (irot/imir) while decoding and reports
  Orientation 1, so for these files the "stored" array is the upright one (HEVC has no 8x8 JPEG grid to keep).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ExiflangError

try:  # HEIC/HEIF: pillow-heif registers an opener with Pillow (Image.open then reads .heic/.heif files)
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - pillow-heif is a dependency; without it HEIC files are "cannot decode"
    HEIF_SUPPORTED = False
else:
    register_heif_opener()
    HEIF_SUPPORTED = True

MAX_PIXELS = 100_000_000  # 100 MP: larger than any consumer camera frame, small enough to fit in memory.


class ImageLoadError(ExiflangError):
    """An image file could not be decoded; the message names the file and the cause."""


@dataclass
class ImageInfo:
    """What we learned while loading an image."""

    path: str
    width: int
    height: int
    mode: str
    converted_from: str | None
    orientation: int


def _to_rgb8(img: Image.Image) -> tuple[np.ndarray, str | None]:
    """Convert any PIL mode to an HxWx3 uint8 array; return the original mode when it was converted."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8), None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        scale = 257.0 if arr.max() > 255 else 1.0  # 16-bit to 8-bit
        arr = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), mode
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), mode
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8), mode


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image file to its stored HxWx3 uint8 RGB array (no EXIF rotation)."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}"
                )
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
            arr, converted = _to_rgb8(img)
            mode = img.mode
    except ImageLoadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{path}: cannot decode image ({exc})") from exc
    return arr, ImageInfo(str(path), width, height, mode, converted, orientation)


def as_rgb_array(image: "str | Path | np.ndarray | Image.Image") -> np.ndarray:
    """Accept a path, a PIL image or an array and return an HxWx3 uint8 RGB array."""
    if isinstance(image, (str, Path)):
        return load_rgb(image)[0]
    if isinstance(image, Image.Image):
        return _to_rgb8(image)[0]
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageLoadError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def upright(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip a stored-coordinates array (image, heatmap, mask) the way EXIF Orientation asks, for display."""
    if orientation in (None, 1) or arr.ndim < 2:
        return arr
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1, :],
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(arr)) if op else arr


__all__ = ["HEIF_SUPPORTED", "ImageLoadError", "ImageInfo", "load_rgb", "as_rgb_array", "upright", "MAX_PIXELS"]
