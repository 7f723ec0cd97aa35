"""Small copies of the shared real photos (EXIF kept), for tests that run the built-in model quickly."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

import exiflang.imageio  # noqa: F401 - registers the HEIF opener with Pillow


def shared_photos(photos_dir: Path, n: int = 2) -> list[Path]:
    """The first n shared photos (sorted by path) from n different camera folders."""
    out, seen = [], set()
    for path in sorted(photos_dir.rglob("*.jpg")):
        if path.parent.name not in seen:
            seen.add(path.parent.name)
            out.append(path)
        if len(out) == n:
            return out
    raise AssertionError(f"fewer than {n} camera folders of JPEGs in {photos_dir}")


def resized_copy(src: Path, dst: Path, longest: int = 512, fmt: str | None = None, **save) -> Path:
    """A copy of src whose longest side is `longest` px, with src's EXIF block (JPEG q92 unless said otherwise)."""
    with Image.open(src) as im:
        exif = im.info.get("exif")
        im = im.convert("RGB")
        im.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        kwargs = dict(save)
        if exif and (fmt or dst.suffix.lower()) not in (".png", "PNG"):
            kwargs["exif"] = exif
        if dst.suffix.lower() in (".jpg", ".jpeg"):
            kwargs.setdefault("quality", 92)
        im.save(dst, format=fmt, **kwargs)
    return dst
