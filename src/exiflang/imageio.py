"""File handling, once: image decoding with the pixel limit, the image extensions, atomic writes, content hashes.

Images load as the models see them: the stored pixel array, 8-bit RGB, with a pixel limit.

Policy (stated once, used everywhere):
* Analysis runs on the pixel array **as stored** in the file. EXIF Orientation is not applied, because
  the camera's traces (demosaicing, JPEG 8x8 grid) live in stored-array coordinates; every map we
  return is in those coordinates. `upright()` rotates an array for display only.
* Grayscale, palette, CMYK, 16-bit, LA/RGBA images are converted to 8-bit RGB (alpha is dropped,
  16-bit is scaled down). The conversion is reported in `ImageInfo.converted_from`.
* Images larger than `MAX_PIXELS` raise `ImageLoadError` (decompression-bomb guard); images smaller than an
  analysis needs raise `ImageTooSmallError` (`check_min_side`: never padded, since invented pixels carry copies
  of real camera traces, and a verdict read from them would be confident and meaningless).
* Only regular files are opened (`regular_file_problem`): a device, a FIFO (which would block the reader
  forever) or a symlink loop is named as such, not "no such file".
* HEIC/HEIF (every recent iPhone's default format) is decoded by pillow-heif's Pillow opener, registered here
  once, on import. libheif applies the container's rotation/mirror (irot/imir) while decoding and reports
  Orientation 1, so for these files the "stored" array is the upright one (HEVC has no 8x8 JPEG grid to keep).
"""
from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from .errors import ExiflangError
from .ranges import MAX_PIXELS  # 100 MP, the limit every loader checks (written once, with the other bounds)

try:  # HEIC/HEIF: pillow-heif registers an opener with Pillow (Image.open then reads .heic/.heif files)
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - pillow-heif is a dependency; without it HEIC files are "cannot decode"
    HEIF_SUPPORTED = False
else:
    register_heif_opener()
    HEIF_SUPPORTED = True

# Pillow's decompression-bomb guard at the same limit (its default, 89.5 MP warning / 179 MP error, would give a
# second limit with a second message); `opened_image` turns its warning and error into ImageTooLargeError.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# Files the tools pick up from folders (Pillow decodes them; HEIC/HEIF through the pillow-heif opener above).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".mpo", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif",
                            ".heic", ".heif"})
# Camera formats Pillow has no decoder for: a failure on these is "undecodable", not "not an image".
CAMERA_RAW_SUFFIXES = frozenset({".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef",
                                 ".srw"})


class ImageLoadError(ExiflangError):
    """An image could not be decoded or used (not a file, not an image, too large, too small); the message says
    which and why."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels than the limit (checked from the header, before decoding)."""


class ImageTooSmallError(ImageLoadError):
    """The image decodes but has a side shorter than an analysis needs (see `check_min_side`)."""


def check_min_side(height: int, width: int, min_side: int, needs: str) -> None:
    """Raise ImageTooSmallError when a side of a height x width image is below `min_side` pixels.

    The one wording, whichever analysis refuses: "too small: 10x10000 px, the smallest side must be at least
    128 px (NEEDS)". Nothing is ever padded up to the minimum instead (see the module policy).
    """
    if min(height, width) < min_side:
        raise ImageTooSmallError(f"too small: {width}x{height} px, the smallest side must be at least {min_side} px "
                                 f"({needs})")


_FILE_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))


def regular_file_problem(path: "str | Path") -> str | None:
    """Why `path` is no regular file to read ('no such file', 'symlink loop', 'not a regular file (FIFO)', ...),
    or None. Decided by os.stat alone: nothing is opened, since opening a FIFO blocks until a writer comes."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken symlink (its target does not exist)" if os.path.islink(path) else "no such file"
        return exc.strerror or str(exc)
    for is_kind, kind in _FILE_KINDS:
        if is_kind(mode):
            return f"not a regular file ({kind})"
    return None if stat.S_ISREG(mode) else "not a regular file"


class NotAnImageError(ImageLoadError):
    """Pillow recognises no image format in the file; `kind` is 'empty file' or 'text' when that is why."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind


def starts_as_jpeg(path: "str | Path | None") -> bool:
    """Whether a file begins with the JPEG SOI marker (its DCT coefficients can then be read directly)."""
    if path is None:
        return False
    try:
        with Path(path).open("rb") as fh:
            return fh.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def jpeg_quantization(path: "str | Path | None") -> dict[int, list[int]] | None:
    """A JPEG file's quantisation tables from its header (table id -> 64 steps, natural row-major order), or None
    for a file that is not a JPEG. Nothing is decoded: the tables are read with the header."""
    if not starts_as_jpeg(path):
        return None
    with opened_image(path, str(path), decode=False) as img:
        tables = getattr(img, "quantization", None) or {}
        return {int(k): [int(v) for v in table] for k, table in tables.items() if len(table) == 64} or None


def is_image_file(path: Path) -> bool:
    """Whether a path names a file with one of the image suffixes."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _too_large(name: str, pixels: int, limit: int, size: tuple[int, int] | None = None) -> ImageTooLargeError:
    """The one message of the pixel limit, whether our header check or Pillow's bomb guard saw it first."""
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return ImageTooLargeError(f"{name}: {dims}{pixels:,} pixels exceeds the limit of {limit:,}")


def _not_an_image(source: "str | Path | bytes", name: str) -> NotAnImageError:
    """'not an image (empty file)' / '(text)' when the bytes say so, else Pillow's 'cannot decode'."""
    try:
        if isinstance(source, bytes):
            head = source[:4096]
        else:
            with Path(source).open("rb") as fh:
                head = fh.read(4096)
    except OSError:
        head = b"?"
    if not head:
        return NotAnImageError(f"{name}: not an image (empty file)", kind="empty file")
    try:  # text: valid UTF-8 (a character cut at the 4 KiB boundary is fine) of printable characters only
        chars = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        looks_like_text = bool(chars) and all(c.isprintable() or c.isspace() for c in chars)
    except UnicodeDecodeError:
        looks_like_text = False
    if looks_like_text:
        return NotAnImageError(f"{name}: not an image (text)", kind="text")
    return NotAnImageError(f"{name}: cannot decode image (not an image Pillow can read)")


@contextlib.contextmanager
def _pillow_checks() -> Iterator[None]:
    """Pillow's bomb warning and EXIF-parsing complaints silenced: our header check and exiflang.exif speak instead."""
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS (= MAX_PIXELS) while opening; the header check right after says
        # the same with the image's size. Only above twice the limit does Pillow refuse before we can look.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # "Corrupt EXIF data", "Tag data larger than file", "Truncated File Read": Pillow skips the bad tag
        # and says so on stderr, through every --quiet; EXIF is read and reported by exiflang.exif instead.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


@contextlib.contextmanager
def opened_image(source: "str | Path | bytes", name: str | None = None, max_pixels: int = MAX_PIXELS,
                 decode: bool = True) -> Iterator[Image.Image]:
    """An open PIL image, its size checked against `max_pixels` before decoding; every failure an ImageLoadError.

    `max_pixels` may lower the project's limit, not raise it: Pillow's own guard is set to MAX_PIXELS. A path
    that is no regular file (`regular_file_problem`) is refused before anything opens it.
    """
    from PIL import UnidentifiedImageError

    name = name or str(source)
    if not isinstance(source, bytes):
        problem = regular_file_problem(source)
        if problem:
            raise ImageLoadError(f"{name}: {problem}")
    try:
        with _pillow_checks(), Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise _too_large(name, width * height, max_pixels, (width, height))
            if decode:
                img.load()
            yield img
    except ImageLoadError:
        raise
    except UnidentifiedImageError as exc:
        raise _not_an_image(source, name) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow checked before we could: same message
        raise _too_large(name, int(found.group(1)) if found else 0, min(max_pixels, MAX_PIXELS)) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"{name}: cannot decode image ({exc})") from exc


def decode_bytes(blob: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode in-memory image bytes to stored HxWx3 uint8 RGB, with the same policy as `load_rgb`."""
    with opened_image(blob, name, max_pixels) as img:
        return _to_rgb8(img)[0]


def _current_umask() -> int:
    """The process umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class UnsafeOutputError(ExiflangError):
    """An output path is a symbolic link: exiflang never writes through one (the link's target stays untouched)."""


def _refuse_symlink(path: Path) -> None:
    """Refuse an output path that is a symbolic link, with one line naming it.

    Refused rather than replaced: a link someone put there is theirs to remove, and writing over it silently
    would hide that it was there. (os.replace over a link would replace the link itself, never its target, so
    even a link planted after this check cannot redirect the write.)
    """
    if path.is_symlink():
        raise UnsafeOutputError(f"{path} is a symbolic link; not writing through it (remove it or use another folder)")


def _atomic(path: "str | Path", fill: Callable[[int, Path], None]) -> Path:
    """Create a new temporary file beside `path`, let `fill(fd, tmp)` write it, then rename it into place.

    The temporary file gets a fresh random name and is created with O_CREAT | O_EXCL | O_NOFOLLOW (tempfile.mkstemp),
    so a file or link planted at a guessable name cannot redirect the write; the destination is never opened,
    only renamed over (os.replace replaces a link at `path`, not its target; links there are refused anyway).
    The result has the usual umask permissions (0644 under umask 022), whatever mode the writer used.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _refuse_symlink(path)
    # the name cut so that a destination name near the 255-byte limit still has a temporary name that fits
    # The pid ends the name (`.NAME.RANDOM.PID.tmp`) so that a later run can tell a killed run's leftovers
    # (exiflang.data.index removes those of dead processes).
    fd, name = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=f".{os.getpid()}.tmp", dir=path.parent)
    tmp = Path(name)
    try:
        fill(fd, tmp)
        # Re-opened without following links: the permissions go to the regular file that is renamed into place.
        check = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fchmod(check, 0o666 & ~_UMASK)
        finally:
            os.close(check)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        tmp.unlink(missing_ok=True)
    return path


def atomic_write(path: "str | Path", write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a new temporary file beside `path` (for writers that need a file name, such as
    safetensors'), then rename it into place: never half a file, never through a symbolic link."""
    return _atomic(path, lambda fd, tmp: write(tmp))


def atomic_write_stream(path: "str | Path", write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call `write(fh)` with the open binary temporary file itself (nothing re-opens it by name), then rename it
    into place. Every report file goes through here (`atomic_write_text`, `atomic_write_npy`, `atomic_save_image`)."""
    def fill(fd: int, tmp: Path) -> None:
        with os.fdopen(os.dup(fd), "wb") as fh:
            write(fh)

    return _atomic(path, fill)


def atomic_write_text(path: "str | Path", text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_stream(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_npy(path: "str | Path", array: np.ndarray) -> Path:
    """np.save into place atomically (np.save given a name would append .npy to the temporary one)."""
    return atomic_write_stream(path, lambda fh: np.save(fh, array))


def atomic_save_image(path: "str | Path", image: "np.ndarray | Image.Image", format: str, **options) -> Path:
    """Save a picture (array or PIL image) atomically in `format` ('PNG', 'JPEG'; the temporary name has no
    suffix Pillow could go by)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    return atomic_write_stream(path, lambda fh: img.save(fh, format=format, **options))


def read_npy(path: "str | Path") -> tuple[np.ndarray | None, str | None]:
    """The array saved at `path` (pickles refused), or (None, why it could not be read)."""
    try:
        return np.load(path, allow_pickle=False), None
    except (OSError, ValueError, EOFError) as exc:
        return None, str(exc)


def file_sha256(path: "str | Path", chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, streamed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def pixel_sha256(image: np.ndarray) -> str:
    """Hex sha256 of a decoded pixel array, shape included (the same pixels from any file give the same hash)."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@dataclass
class ImageInfo:
    """What we learned while loading an image."""

    path: str
    width: int
    height: int
    mode: str
    converted_from: str | None
    orientation: int


def _rgb_rows(img: Image.Image, rows: int = 512) -> np.ndarray:
    """An RGB image's pixels as HxWx3 uint8, copied band by band into one array.

    np.asarray(img) would go through img.tobytes(), which holds the encoded chunks and their joined copy at
    once (2 x 3 extra bytes per pixel: +570 MB for a 95 MP photo, beside Pillow's own 4 bytes per pixel);
    bands of ``rows`` rows keep the extra memory to one band. The array is writeable (torch can wrap it).
    """
    width, height = img.size
    if width * height <= rows * 4096:
        return np.asarray(img, dtype=np.uint8)
    img.load()
    out = np.empty((height, width, 3), dtype=np.uint8)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        band = img.crop((0, y0, width, y1))
        out[y0:y1] = np.frombuffer(band.tobytes(), dtype=np.uint8).reshape(y1 - y0, width, 3)
    return out


def _to_rgb8(img: Image.Image) -> tuple[np.ndarray, str | None]:
    """Convert any PIL mode to an HxWx3 uint8 array; return the original mode when it was converted."""
    mode = img.mode
    if mode == "RGB":
        return _rgb_rows(img), None
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # Integer maths (no float64 copy of the photo): (v + 128) // 257 is round(v / 257) for integers v >= 0;
        # values past 65535 end at 255 either way, so clipping there first keeps the result and fits uint32.
        arr = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
        if arr.max(initial=0) > 255:  # 16-bit to 8-bit
            arr = (arr + 128) // 257
        return np.repeat(np.clip(arr, 0, 255).astype(np.uint8)[..., None], 3, axis=2), mode
    if mode == "F":
        arr = np.clip(np.round(np.asarray(img, dtype=np.float32)), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2), mode
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8), mode


def _orientation(img: Image.Image) -> int:
    """EXIF Orientation 1-8, or 1 when the EXIF block is too damaged to say (the pixels still load)."""
    try:
        value = int(img.getexif().get(0x0112, 1) or 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def load_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image file to its stored HxWx3 uint8 RGB array (no EXIF rotation)."""
    path = Path(path)
    with opened_image(path, str(path), max_pixels) as img:  # refuses what is no regular file, naming what it is
        orientation = _orientation(img)
        arr, converted = _to_rgb8(img)
        return arr, ImageInfo(str(path), img.size[0], img.size[1], img.mode, converted, orientation)


def load_rgb_preview(path: str | Path, max_side: int, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image for display, at least ``max_side`` on its longer side where the format can scale while
    decoding (JPEG: 1/2 to 1/8 in the DCT domain, so a 95 MP photo's preview never holds its full pixels).

    Stored coordinates (no EXIF rotation), 8-bit RGB; the info gives the file's full size. Other formats decode
    at full size. For display only: analysis always uses `load_rgb`.
    """
    path = Path(path)
    with opened_image(path, str(path), max_pixels, decode=False) as img:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
        info = ImageInfo(str(path), img.size[0], img.size[1], img.mode, None, orientation)
        try:
            img.draft("RGB", (max_side, max_side))
            arr, info.converted_from = _to_rgb8(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageLoadError(f"{path}: cannot decode image ({exc})") from exc
    return arr, info


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


__all__ = ["CAMERA_RAW_SUFFIXES", "starts_as_jpeg", "jpeg_quantization", "atomic_save_image", "atomic_write_npy", "atomic_write_stream", "read_npy", "HEIF_SUPPORTED", "IMAGE_SUFFIXES", "MAX_PIXELS", "ImageInfo", "ImageLoadError",
           "ImageTooLargeError", "ImageTooSmallError", "check_min_side", "regular_file_problem", "NotAnImageError", "UnsafeOutputError", "as_rgb_array", "atomic_write", "atomic_write_text", "decode_bytes",
           "file_sha256", "is_image_file", "load_rgb", "load_rgb_preview", "opened_image", "pixel_sha256", "upright"]
