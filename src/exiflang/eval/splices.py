"""Columbia-style composites from any photo collection: a smooth region of photo A pasted into photo B.

A and B always come from different cameras (`exiflang.data.cameras.camera_key` of EXIF Make/Model: the one
definition of a camera in the project). The pasted pixels are A's stored pixels at full resolution (no
resampling, no blending), so the only differences between the region and its surroundings are the imaging
pipelines: exactly what a camera-consistency detector should see.

Output folder (the `generic` benchmark layout, see `exiflang.eval.datasets`):
``spliced/NNNN.png`` composites, ``masks/NNNN.png`` (0/255, 255 = pasted), ``authentic/NNNN.png`` controls
(whole photos that went through the same saving path), ``manifest.csv`` with ``image,mask,label`` plus
columns recording both photos and cameras (``target_camera``, ``source_camera``: camera keys), region size and
placement, the camera filter and the JPEG-phase mode. With a JPEG quality, every image is also re-saved as
``.jpg`` at that quality and the manifest points at the JPEGs (the PNGs are kept; 4:4:4 chroma at q >= 90,
4:2:0 below, as before).

Options:

* ``cameras``: ``"all"`` (default), ``"heldout"`` / ``"train"`` (only the cameras that
  `exiflang.data.cameras.is_heldout` puts in / out of the held-out share of the camera-disjoint split), or a
  text file listing camera keys, one ``make|model`` per line as `camera_key` writes them (``#`` starts a
  comment line). The filter applies to targets, sources and authentic controls alike.
* ``phase``: ``"random"`` (default) places the paste anywhere; ``"keep"`` places it so that
  ``dst ≡ src (mod 8)`` on both axes, i.e. the pasted region keeps its source's 8×8 JPEG block phase
  relative to the target's grid (a copy-paste at block-aligned offsets). ``grid_shift_x/y`` record
  ``(dst - src) mod 8`` for every composite either way.
* ``twins``: beside the lossless set, write the very same composites and controls again, each twin in its own
  sub-folder with its own ``manifest.csv`` (same rows; ``image``/``mask`` point at its own files, ``lossless``
  at ``../spliced|authentic/NNNN.png``, ``variant``/``scale``/``image_height``/``image_width`` describe the twin;
  placement columns stay in lossless coordinates), so each is a ``generic:`` dataset on its own. ``True`` (the
  CLI's bare ``--twins``) is the classic trio; a list or comma-separated string picks twins or groups by name
  (`TWIN_SPECS`, `TWIN_GROUPS`):

  - ``jpeg95`` / ``jpeg90`` / ``jpeg75``: re-saved as JPEG q95 / q90 / q75, same size;
  - ``resized75_jpeg90``: downscaled to ``round(0.75 × size)``, then q90 (mask: nearest neighbour);
  - ``social``: the social-media chain, downscaled by a factor drawn per image in [0.5, 0.8] (from the seed and
    the image's name, never from the composites' random stream, so the composites stay the same), then q85;
    the factor is the manifest's ``scale``;
  - ``small_image``: downscaled so the longer side is 512 px (CASIA v1 is 384×256), then q90; ``scale`` is
    512 / the longer side.

  Groups: ``classic`` = jpeg90, jpeg75, resized75_jpeg90 (what bare ``--twins`` always wrote); ``desk`` = jpeg95,
  jpeg90, jpeg75, social, small_image (issue 19's desk regime). Every downscale is Pillow's bicubic resize
  (its kernel widened by the factor: an antialiased downscale); the masks of ``social`` and ``small_image`` are resized by
  area (box filter) and a pixel counts as pasted when at least half its area was (>= 128 of 255), the
  classic ``resized75_jpeg90`` keeps its nearest-neighbour mask so its files stay as before. All twin JPEGs use
  Pillow/libjpeg with 4:2:0 chroma subsampling (the common camera/web setting; note this differs from
  ``jpeg_quality=90``, which keeps 4:4:4), baseline, no optimisation, standard IJG tables scaled to the quality.
  The top-level ``manifest.csv`` stays the lossless (or ``jpeg_quality``) set.
* ``paste_fraction``: ``(lo, hi)`` makes small (or other-sized) pastes from the *same* (target, source) pairs
  as the default set of the same seed and options: every composite first draws exactly what the default set
  draws (so the pair sequence is the default set's), then its region and offsets are drawn again from a stream
  of its own (seeded by the seed and the composite's index) with an area in [lo, hi], redrawn until the
  mask's actual fraction lies in [lo, hi]. The authentic controls are the default set's. ``area_range`` in
  the manifest records the range either way.
* An ``out_dir`` that already holds a composite set (``manifest.csv``, ``spliced/``, ``authentic/``, ``masks/``
  or a twin folder with its manifest) is refused unless ``overwrite``: then the old set's own files (those its
  manifests list, the images of its known sub-folders, the manifests) are removed first, so no stale image of
  a larger earlier set survives. ``n`` and ``n_authentic`` are bounded by `MAX_COMPOSITES` and by what the
  photos can supply: at most the number of distinct (target, source) pairs of different cameras, and at most
  one control per photo.

Everything is deterministic: the same photos, options and seed give byte-identical files.
"""
from __future__ import annotations

import csv
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ExiflangError
from ..data.cameras import SPLIT_NAME, camera_key, cameras_hash, is_heldout
from ..imageio import IMAGE_SUFFIXES, ImageLoadError, atomic_write, load_rgb, pixel_sha256

MIN_AREA, MAX_AREA = 0.05, 0.30
MAX_COMPOSITES = 100_000  # per set: 1e9 was accepted and filled a disk (issue 20); a benchmark needs hundreds
MANIFEST_FIELDS = [
    "image", "mask", "label", "lossless", "target", "target_make", "target_model",
    "source", "source_make", "source_model", "area_frac", "src_x", "src_y", "dst_x", "dst_y",
    "height", "width", "seed", "jpeg_quality", "pixel_sha256", "target_camera", "source_camera",
    "camera_filter", "phase", "grid_shift_x", "grid_shift_y", "variant", "scale", "image_height", "image_width",
    "twins", "area_range",
]
CAMERA_CHOICES = ("all", "heldout", "train")
PHASE_CHOICES = ("random", "keep")
JPEG_BLOCK = 8
SET_SUBFOLDERS = ("spliced", "authentic", "masks")  # what every set (and every twin) holds
TWIN_SUBSAMPLING = 2  # 4:2:0, Pillow's code 2, for every twin JPEG


@dataclass(frozen=True)
class TwinSpec:
    """How a twin re-saves each image: an optional downscale, then JPEG at `quality` (4:2:0)."""

    quality: int
    scale: float = 1.0                              # a fixed factor (resized75_jpeg90)
    scale_range: tuple[float, float] | None = None  # a factor drawn per image (the social-media chain)
    long_side: int | None = None                    # downscale so the longer side is this (small images)
    mask_resample: str = "nearest"                  # "nearest" (classic twin) or "area" (box, > half covered)

    def factor(self, height: int, width: int, seed: int, key: str) -> float:
        """The downscale factor for one image (`key`: its 'spliced|authentic/NNNN'), a pure function of its inputs."""
        if self.scale_range is not None:
            lo, hi = self.scale_range
            # Its own stream, seeded by (seed, image name): the composites' stream is never touched.
            rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
            return round(float(rng.uniform(lo, hi)), 4)
        if self.long_side is not None:
            return min(1.0, self.long_side / max(height, width))
        return self.scale

    def size(self, height: int, width: int, factor: float) -> tuple[int, int]:
        """(width, height) after the downscale (the longer side exactly `long_side` for small images)."""
        if factor == 1.0:
            return width, height
        if self.long_side is not None:
            if width >= height:
                return self.long_side, max(1, round(height * self.long_side / width))
            return max(1, round(width * self.long_side / height)), self.long_side
        return max(1, round(factor * width)), max(1, round(factor * height))


# Twin sub-folder -> how it is made. The order of a group is the order they are written and listed.
TWIN_SPECS: dict[str, TwinSpec] = {
    "jpeg95": TwinSpec(95),
    "jpeg90": TwinSpec(90),
    "jpeg75": TwinSpec(75),
    "resized75_jpeg90": TwinSpec(90, scale=0.75),
    "social": TwinSpec(85, scale_range=(0.5, 0.8), mask_resample="area"),
    "small_image": TwinSpec(90, long_side=512, mask_resample="area"),
}
TWIN_GROUPS: dict[str, tuple[str, ...]] = {
    "classic": ("jpeg90", "jpeg75", "resized75_jpeg90"),
    "desk": ("jpeg95", "jpeg90", "jpeg75", "social", "small_image"),
}
# The classic trio as (quality, scale): what bare --twins writes (kept for the callers that read it).
TWINS: dict[str, tuple[int, float]] = {t: (TWIN_SPECS[t].quality, TWIN_SPECS[t].scale) for t in TWIN_GROUPS["classic"]}


class SpliceError(ExiflangError):
    """Composites cannot be made from the given photos; the message says why."""


@dataclass(frozen=True)
class SourcePhoto:
    """A candidate photo and its camera."""

    path: Path
    rel: str
    make: str
    model: str

    @property
    def camera(self) -> str:
        """The camera key 'make|model' (`exiflang.data.cameras.camera_key`) used to decide 'different camera'."""
        return camera_key(self.make, self.model)


def _manifest_cameras(photo_dir: Path) -> dict[str, tuple[str, str]]:
    """Make/Model per relative path from photos/MANIFEST.csv (the shared-data fast path), if present."""
    path = photo_dir / "MANIFEST.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"path", "make", "model"} <= set(reader.fieldnames or []):
            return {}
        return {row["path"]: (row["make"], row["model"]) for row in reader}


def _exif_camera(path: Path) -> tuple[str, str]:
    """Make/Model of one file from its EXIF (exiflang.exif; Pillow's IFD0 when the reader fails)."""
    from ..exif import ExifReadError, read_exif

    try:
        tags = read_exif(path)
        return str(tags.get("Make", "")).strip(), str(tags.get("Model", "")).strip()
    except ExifReadError:
        pass
    try:
        with Image.open(path) as img:
            exif = img.getexif()
        return str(exif.get(0x010F, "")).strip("\x00 "), str(exif.get(0x0110, "")).strip("\x00 ")
    except (OSError, ValueError):
        return "", ""


def list_photos(photo_dir: Path) -> list[SourcePhoto]:
    """Every photo under photo_dir with a known Make/Model, sorted by relative path."""
    photo_dir = Path(photo_dir)
    if not photo_dir.is_dir():
        raise SpliceError(f"{photo_dir}: photo folder not found")
    known = _manifest_cameras(photo_dir)
    photos = []
    for path in sorted(p for p in photo_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        rel = path.relative_to(photo_dir).as_posix()
        make, model = known[rel] if rel in known else _exif_camera(path)
        if model:
            photos.append(SourcePhoto(path, rel, make, model))
    cameras = {p.camera for p in photos}
    if len(cameras) < 2:
        raise SpliceError(
            f"{photo_dir}: need photos from at least 2 cameras (EXIF Make/Model); found {len(photos)} photo(s) "
            f"from {len(cameras)} camera(s)"
        )
    return photos


def smooth_region(height: int, width: int, area_frac: float, rng: np.random.Generator) -> np.ndarray:
    """A random smooth star-shaped blob covering area_frac of an HxW frame, cropped to its bounding box.

    The outline is r(θ) = r0 · exp(Σ_k a_k cos(kθ) + b_k sin(kθ)) with a few low harmonics (k = 2..5),
    so the region is connected, hole-free and smooth; r0 is solved from the target area.
    """
    n = 720
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    shape = np.zeros(n)
    for k in range(2, 6):
        amp = rng.normal(0, 0.25 / k)
        shape += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    aspect = np.exp(rng.uniform(-0.4, 0.4))  # elongate along x or y
    unit = np.exp(shape)
    # Area of the unit outline (polar formula), scaled by the aspect stretch (area-preserving).
    unit_area = 0.5 * np.sum(unit**2) * (2 * np.pi / n)
    r0 = np.sqrt(area_frac * height * width / unit_area)
    xs = r0 * unit * np.cos(theta) * aspect
    ys = r0 * unit * np.sin(theta) / aspect
    h = int(np.ceil(ys.max() - ys.min())) + 1
    w = int(np.ceil(xs.max() - xs.min())) + 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Point-in-star test: compare each pixel's radius with the outline at its angle.
    cy, cx = -ys.min(), -xs.min()
    dy, dx = (yy - cy) * aspect, (xx - cx) / aspect
    ang = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    outline = np.interp(ang, np.r_[theta, 2 * np.pi], np.r_[unit, unit[0]]) * r0
    return np.hypot(dx, dy) <= outline


def paste(target: np.ndarray, source: np.ndarray, region: np.ndarray, src_xy: tuple[int, int], dst_xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Copy source pixels under `region` (at src_xy in source) to dst_xy in target; return (composite, mask)."""
    h, w = region.shape
    sx, sy = src_xy
    dx, dy = dst_xy
    out = target.copy()
    window = out[dy:dy + h, dx:dx + w]
    window[region] = source[sy:sy + h, sx:sx + w][region]
    mask = np.zeros(target.shape[:2], dtype=bool)
    mask[dy:dy + h, dx:dx + w] = region
    return out, mask


def _save_image(img: Image.Image, path: Path, **options) -> None:
    """Save through the one atomic writer (a killed run leaves no half image); the format from the suffix."""
    fmt = "JPEG" if path.suffix.lower() == ".jpg" else "PNG"
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


def _save_mask(mask: np.ndarray, path: Path) -> None:
    """A boolean mask as a 0/255 PNG."""
    _save_image(Image.fromarray(mask.astype(np.uint8) * 255), path)


def _save(arr: np.ndarray, png: Path, jpeg_quality: int | None) -> Path:
    """Save lossless PNG, and a JPEG re-save when asked; return the file the manifest should name."""
    img = Image.fromarray(arr)
    _save_image(img, png, optimize=False)
    if jpeg_quality is None:
        return png
    jpg = png.with_suffix(".jpg")
    _save_image(img, jpg, quality=int(jpeg_quality), subsampling=0 if jpeg_quality >= 90 else 2)
    return jpg


def read_camera_list(path: Path) -> set[str]:
    """Camera keys from a text file: one 'make|model' per line (normalised with camera_key); '#' lines are comments."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpliceError(f"{path}: cannot read camera list ({exc})") from exc
    keys: set[str] = set()
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "|" not in line:
            raise SpliceError(f"{path}:{line_no}: {line!r} is not a camera key 'make|model' (as camera_key writes it)")
        make, model = line.split("|", 1)
        keys.add(camera_key(make, model))
    if not keys:
        raise SpliceError(f"{path}: the camera list names no cameras (one 'make|model' per line)")
    return keys


def select_cameras(photos: list[SourcePhoto], cameras: str | Path = "all") -> tuple[list[SourcePhoto], str]:
    """Photos whose camera passes the filter, and the filter's description for the manifest.

    ``cameras``: 'all', 'heldout' / 'train' (the camera-disjoint split of `exiflang.data.cameras`), or the
    path of a text file of camera keys. Raises SpliceError when fewer than 2 cameras remain.
    """
    spec = str(cameras)
    if spec == "all":
        kept, label = list(photos), "all"
    elif spec in ("heldout", "train"):
        want = spec == "heldout"
        kept, label = [p for p in photos if is_heldout(p.camera) == want], f"{spec}:{SPLIT_NAME}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise SpliceError(f"cameras {spec!r} is not {', '.join(CAMERA_CHOICES)} and no camera-list file of that name exists")
        keys = read_camera_list(path)
        kept, label = [p for p in photos if p.camera in keys], f"file:{path.name}:{cameras_hash(keys)}"
    found = {p.camera for p in kept}
    if len(found) < 2:
        raise SpliceError(
            f"camera filter {spec!r} leaves {len(kept)} photo(s) from {len(found)} camera(s) of {len({p.camera for p in photos})}; "
            f"need photos from at least 2 cameras"
        )
    return kept, label


def _aligned_offset(rng: np.random.Generator, max_pos: int, src: int) -> int | None:
    """A random offset in [0, max_pos] congruent to src mod 8, or None when there is none."""
    r = src % JPEG_BLOCK
    if max_pos < r:
        return None
    return r + JPEG_BLOCK * int(rng.integers((max_pos - r) // JPEG_BLOCK + 1))


def resolve_twins(twins: bool | str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Twin names in writing order: False/None/'' none, True the classic trio, else names and groups (comma list)."""
    if twins is True:
        return list(TWIN_GROUPS["classic"])
    if not twins:
        return []
    items = twins.split(",") if isinstance(twins, str) else list(twins)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        expanded = TWIN_GROUPS.get(item, (item,))
        unknown = [t for t in expanded if t not in TWIN_SPECS]
        if unknown:
            raise SpliceError(f"unknown twin {item!r} (choose from {', '.join([*TWIN_GROUPS, *TWIN_SPECS])})")
        names += [t for t in expanded if t not in names]
    return names


def _twin_pixels(arr: np.ndarray, mask: np.ndarray | None, spec: TwinSpec, factor: float) -> tuple[Image.Image, np.ndarray | None]:
    """The twin's image (bicubic downscale when factor != 1) and mask (resized by the spec's rule, re-binarised)."""
    img = Image.fromarray(arr)
    if factor == 1.0:
        return img, mask
    size = spec.size(arr.shape[0], arr.shape[1], factor)
    img = img.resize(size, Image.Resampling.BICUBIC)
    if mask is not None:
        resample = Image.Resampling.BOX if spec.mask_resample == "area" else Image.Resampling.NEAREST
        # Box: each pixel is the pasted share of its area (x 255, rounded); >= 128: at least half of it was pasted.
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, resample)
        mask = np.asarray(small) > 127
    return img, mask


def _write_twins(arr: np.ndarray, mask: np.ndarray | None, row: dict, out_dir: Path, twins: list[str]) -> dict[str, dict]:
    """Write one image (and mask) of every twin set; return each twin's manifest row."""
    kind, name = row["lossless"].split("/")[0], Path(row["lossless"]).stem
    rows = {}
    for twin in twins:
        spec = TWIN_SPECS[twin]
        factor = spec.factor(arr.shape[0], arr.shape[1], int(row["seed"]), f"{kind}/{name}")
        img, twin_mask = _twin_pixels(arr, mask, spec, factor)
        image_rel = f"{kind}/{name}.jpg"
        _save_image(img, out_dir / twin / image_rel, quality=spec.quality, subsampling=TWIN_SUBSAMPLING,
                    optimize=False, progressive=False)
        mask_rel = ""
        if twin_mask is not None:
            mask_rel = f"masks/{name}.png"
            _save_mask(twin_mask, out_dir / twin / mask_rel)
        rows[twin] = dict(row, image=image_rel, mask=mask_rel, lossless=f"../{row['lossless']}",
                          jpeg_quality=spec.quality, variant=twin, scale=f"{factor:.4g}", image_height=img.height,
                          image_width=img.width)
    return rows


def _write_manifest(path: Path, rows: list[dict]) -> None:
    """manifest.csv with the standard columns (missing ones empty), written atomically."""
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, restval="")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


# ------------------------------------------------------------------------------- an existing set in --out
def existing_set_marks(out_dir: Path) -> list[str]:
    """What in out_dir belongs to a composite set already ('manifest.csv', 'spliced/', 'jpeg90/manifest.csv' ...)."""
    out_dir = Path(out_dir)
    marks = [name for name in ("manifest.csv",) if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    marks += [f"{name}/" for name in SET_SUBFOLDERS if (out_dir / name).exists() or (out_dir / name).is_symlink()]
    marks += [f"{twin}/manifest.csv" for twin in TWIN_SPECS if (out_dir / twin / "manifest.csv").is_file()]
    return marks


# What make-splices writes into a set's folders (and the atomic writer's leftovers of a killed run).
_SET_FILE = re.compile(r"^(?:\d+\.(?:png|jpg)|\..+\.\d+\.tmp)$")


def _manifest_files(folder: Path, root: Path) -> list[Path]:
    """The files a manifest in `folder` names (image, mask, lossless), those inside `root` only."""
    try:
        with (folder / "manifest.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    files = []
    for row in rows:
        for col in ("image", "mask", "lossless"):
            rel = (row.get(col) or "").strip()
            if not rel:
                continue
            path = folder / rel
            try:
                inside = path.resolve().is_relative_to(root.resolve())
            except (OSError, RuntimeError):
                inside = False
            if inside and not path.parent.is_symlink():
                files.append(path)
    return files


def remove_set(out_dir: Path) -> int:
    """Remove the composite set in out_dir: its manifests' files, its known sub-folders' images, the manifests.

    Nothing else is touched: no recursion below the known sub-folders, no file outside out_dir, no symlinked
    folder followed (a link is refused). Empty known folders are removed. Returns the number of files removed.
    """
    out_dir = Path(out_dir)
    folders = [out_dir] + [out_dir / t for t in TWIN_SPECS if (out_dir / t / "manifest.csv").is_file()]
    for folder in folders:
        for sub in (folder, *(folder / name for name in SET_SUBFOLDERS)):
            if sub.is_symlink():
                raise SpliceError(f"{sub} is a symbolic link: not removing or writing through it")
    doomed: dict[Path, None] = {}
    for folder in folders:
        doomed.update(dict.fromkeys(_manifest_files(folder, out_dir)))
        for name in SET_SUBFOLDERS:
            if (folder / name).is_dir():
                doomed.update(dict.fromkeys(p for p in sorted((folder / name).iterdir())
                                            if _SET_FILE.match(p.name) and (p.is_file() or p.is_symlink())))
    removed = 0
    for path in list(doomed) + [f / "manifest.csv" for f in reversed(folders)]:
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed += 1
    for folder in reversed(folders):
        for sub in [*(folder / name for name in SET_SUBFOLDERS), *([folder] if folder != out_dir else [])]:
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
    return removed


def distinct_pairs(photos: list[SourcePhoto]) -> int:
    """How many ordered (target, source) pairs of photos from different cameras the collection offers."""
    per_camera: dict[str, int] = {}
    for p in photos:
        per_camera[p.camera] = per_camera.get(p.camera, 0) + 1
    return len(photos) ** 2 - sum(k * k for k in per_camera.values())


def check_supply(photos: list[SourcePhoto], n: int, n_authentic: int, camera_filter: str) -> None:
    """SpliceError when n composites or n_authentic controls ask for more than the photos can supply."""
    pool = f"the {len(photos)} photo(s) of {len({p.camera for p in photos})} camera(s) (cameras {camera_filter})"
    pairs = distinct_pairs(photos)
    if n > pairs:
        raise SpliceError(f"--n {n}: {pool} offer only {pairs} distinct (target, source) pairs of different cameras")
    if n_authentic > len(photos):
        raise SpliceError(f"--n-authentic {n_authentic}: {pool} give at most {len(photos)} distinct authentic controls")


def _pick_pair(photos: list[SourcePhoto], rng: np.random.Generator) -> tuple[SourcePhoto, SourcePhoto]:
    """A random (target, source) pair from different cameras."""
    target = photos[int(rng.integers(len(photos)))]
    others = [p for p in photos if p.camera != target.camera]
    return target, others[int(rng.integers(len(others)))]


def _check_settings(n: int, jpeg_quality: int | None, n_authentic: int, placement: str, phase: str,
                    paste_fraction: tuple[float, float] | None = None) -> None:
    """SpliceError for a bad count, quality, placement, phase or paste fraction."""
    if not 1 <= n <= MAX_COMPOSITES:
        raise SpliceError(f"--n must be in [1, {MAX_COMPOSITES}], got {n}")
    if not 0 <= n_authentic <= MAX_COMPOSITES:
        raise SpliceError(f"--n-authentic must be in [0, {MAX_COMPOSITES}], got {n_authentic}")
    if paste_fraction is not None and not 0 < paste_fraction[0] <= paste_fraction[1] <= MAX_AREA:
        raise SpliceError(f"paste fraction must be LO,HI with 0 < LO <= HI <= {MAX_AREA:g}, got {paste_fraction}")
    if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
        raise SpliceError(f"JPEG quality must be in 1..100, got {jpeg_quality}")
    if placement not in ("random", "same"):
        raise SpliceError(f"placement must be 'random' or 'same', got {placement!r}")
    if phase not in PHASE_CHOICES:
        raise SpliceError(f"phase must be 'random' or 'keep', got {phase!r}")


@dataclass(frozen=True)
class _Draw:
    """One composite's draw: the photos, the region (cropped to its bounding box) and where it is cut and pasted."""

    target: SourcePhoto
    source: SourcePhoto
    region: np.ndarray
    sy: int
    sx: int
    dy: int
    dx: int


class _SpliceRun:
    """The state of one make_splices call: settings, the one random stream, decoded photos, manifest rows."""

    def __init__(self, out_dir: Path, seed: int, jpeg_quality: int | None, placement: str, phase: str,
                 camera_filter: str, twin_names: list[str], paste_fraction: tuple[float, float] | None = None) -> None:
        self.out_dir, self.seed, self.jpeg_quality = out_dir, seed, jpeg_quality
        self.placement, self.phase, self.camera_filter, self.twin_names = placement, phase, camera_filter, twin_names
        self.paste_fraction = paste_fraction
        self.rng = np.random.default_rng(seed)
        self.rows: list[dict] = []
        self.twin_rows: dict[str, list[dict]] = {t: [] for t in twin_names}
        self.cache: dict[Path, np.ndarray] = {}

    @property
    def area_range(self) -> str:
        """The pasted-area range, as the manifest records it."""
        lo, hi = self.paste_fraction or (MIN_AREA, MAX_AREA)
        return f"{lo:g},{hi:g}"

    def load(self, p: SourcePhoto) -> np.ndarray:
        """Decoded pixels of a photo (a few kept: targets and sources repeat)."""
        if p.path not in self.cache:
            if len(self.cache) > 32:
                self.cache.clear()
            self.cache[p.path] = load_rgb(p.path)[0]
        return self.cache[p.path]

    def common(self, photo: SourcePhoto, arr: np.ndarray) -> dict:
        """Manifest fields shared by composites and controls."""
        q = self.jpeg_quality
        return {"target": photo.rel, "target_make": photo.make, "target_model": photo.model,
                "target_camera": photo.camera, "height": arr.shape[0], "width": arr.shape[1], "seed": self.seed,
                "jpeg_quality": q or "", "camera_filter": self.camera_filter, "phase": self.phase,
                "variant": "lossless" if q is None else f"jpeg{q}", "scale": "1",
                "image_height": arr.shape[0], "image_width": arr.shape[1], "twins": ";".join(self.twin_names),
                "area_range": self.area_range}

    def emit(self, row: dict, arr: np.ndarray, mask: np.ndarray | None) -> None:
        """Record a written image and write its twins."""
        self.rows.append(row)
        for twin, trow in _write_twins(arr, mask, row, self.out_dir, self.twin_names).items():
            self.twin_rows[twin].append(trow)

    def destination(self, a: np.ndarray, b: np.ndarray, h: int, w: int,
                    rng: np.random.Generator) -> tuple[int, int, int, int] | None:
        """(sy, sx, dy, dx): where the region is cut from the source and pasted in the target; None to redraw."""
        sy, sx = int(rng.integers(a.shape[0] - h + 1)), int(rng.integers(a.shape[1] - w + 1))
        if self.placement == "same" and sy + h <= b.shape[0] and sx + w <= b.shape[1]:
            return sy, sx, sy, sx
        if self.phase == "keep":
            dy, dx = _aligned_offset(rng, b.shape[0] - h, sy), _aligned_offset(rng, b.shape[1] - w, sx)
            return None if dy is None or dx is None else (sy, sx, dy, dx)  # None: no block-aligned position
        return sy, sx, int(rng.integers(b.shape[0] - h + 1)), int(rng.integers(b.shape[1] - w + 1))

    def region_and_offsets(self, target: SourcePhoto, source: SourcePhoto, area_range: tuple[float, float],
                           rng: np.random.Generator) -> _Draw | None:
        """Draw a region of the area range and its offsets for this pair (None: it does not fit, draw again)."""
        area = float(rng.uniform(*area_range))
        b, a = self.load(target), self.load(source)
        region = smooth_region(b.shape[0], b.shape[1], area, rng)
        h, w = region.shape
        if h > min(a.shape[0], b.shape[0]) or w > min(a.shape[1], b.shape[1]):
            return None  # region does not fit in both frames
        offsets = self.destination(a, b, h, w, rng)
        return None if offsets is None else _Draw(target, source, region, *offsets)

    def draw(self, photos: list[SourcePhoto]) -> _Draw | None:
        """The default set's next draw from the one stream: a pair, a 5-30 % region, offsets (None: draw again)."""
        target, source = _pick_pair(photos, self.rng)
        try:
            return self.region_and_offsets(target, source, (MIN_AREA, MAX_AREA), self.rng)
        except ImageLoadError:
            return None  # unreadable photo: draw again (deterministic, since the draw sequence is fixed)

    def resized_draw(self, base: _Draw, index: int, tries: int = 200) -> _Draw | None:
        """The same pair as `base` with a region of the paste_fraction range, from the composite's own stream."""
        lo, hi = self.paste_fraction
        target = self.load(base.target)
        rng = np.random.default_rng([self.seed, index, 1])  # independent of the main stream: pairs stay the same
        for _ in range(tries):
            d = self.region_and_offsets(base.target, base.source, (lo, hi), rng)
            if d is not None and lo <= d.region.sum() / (target.shape[0] * target.shape[1]) <= hi:
                return d
        return None

    def try_composite(self, photos: list[SourcePhoto], index: int) -> bool:
        """Draw a pair, a region and offsets; write the composite when it fits (False: draw again)."""
        d = self.draw(photos)
        if d is not None and self.paste_fraction is not None:
            d = self.resized_draw(d, index)
        if d is None:
            return False
        self.write_composite(d, f"{index:04d}")
        return True

    def write_composite(self, d: _Draw, name: str) -> None:
        """Paste, save the composite, its mask and twins, and record its manifest row."""
        b, a = self.load(d.target), self.load(d.source)
        composite, mask = paste(b, a, d.region, (d.sx, d.sy), (d.dx, d.dy))
        image = _save(composite, self.out_dir / "spliced" / f"{name}.png", self.jpeg_quality)
        _save_mask(mask, self.out_dir / "masks" / f"{name}.png")
        row = self.common(d.target, b)
        row.update({
            "image": image.relative_to(self.out_dir).as_posix(), "mask": f"masks/{name}.png", "label": 1,
            "lossless": f"spliced/{name}.png", "source": d.source.rel, "source_make": d.source.make,
            "source_model": d.source.model, "source_camera": d.source.camera, "area_frac": f"{mask.mean():.4f}",
            "src_x": d.sx, "src_y": d.sy, "dst_x": d.dx, "dst_y": d.dy, "grid_shift_x": (d.dx - d.sx) % JPEG_BLOCK,
            "grid_shift_y": (d.dy - d.sy) % JPEG_BLOCK, "pixel_sha256": pixel_sha256(composite),
        })
        self.emit(row, composite, mask)

    def write_authentic(self, photo: SourcePhoto, name: str) -> None:
        """One authentic control, saved the way the composites are."""
        arr = self.load(photo)
        image = _save(arr, self.out_dir / "authentic" / f"{name}.png", self.jpeg_quality)
        row = self.common(photo, arr)
        row.update({
            "image": image.relative_to(self.out_dir).as_posix(), "mask": "", "label": 0,
            "lossless": f"authentic/{name}.png", "source": "", "source_make": "", "source_model": "",
            "source_camera": "", "area_frac": "0", "src_x": "", "src_y": "", "dst_x": "", "dst_y": "",
            "grid_shift_x": "", "grid_shift_y": "", "pixel_sha256": pixel_sha256(arr),
        })
        self.emit(row, arr, None)


def make_splices(
    photo_dir: Path,
    out_dir: Path,
    n: int,
    seed: int = 0,
    jpeg_quality: int | None = None,
    n_authentic: int | None = None,
    placement: str = "random",
    progress: bool = True,
    cameras: str | Path = "all",
    phase: str = "random",
    twins: bool | str | list[str] = False,
    paste_fraction: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write n composites and n_authentic controls (default n) to out_dir; return the manifest path.

    ``cameras``, ``phase``, ``twins``, ``paste_fraction`` and ``overwrite``: see the module docstring. With the
    defaults the composites are the ones earlier versions made for the same seed (same draws, same pixels).
    """
    from tqdm import tqdm

    n_authentic = n if n_authentic is None else n_authentic
    _check_settings(n, jpeg_quality, n_authentic, placement, phase, paste_fraction)
    twin_names = resolve_twins(twins)
    photo_dir, out_dir = Path(photo_dir), Path(out_dir)
    marks = existing_set_marks(out_dir)
    if marks and not overwrite:
        raise SpliceError(f"{out_dir} already holds a composite set ({', '.join(marks)}); nothing was changed: "
                          f"pass --overwrite to replace it or --rebuild to re-create its images from its manifest")
    photos, camera_filter = select_cameras(list_photos(photo_dir), cameras)
    check_supply(photos, n, n_authentic, camera_filter)
    if marks:
        remove_set(out_dir)  # only now: every check has passed
    run = _SpliceRun(out_dir, seed, jpeg_quality, placement, phase, camera_filter, twin_names, paste_fraction)
    bar = tqdm(total=n + n_authentic, desc="make-splices", unit="img", disable=not progress)
    made, attempts = 0, 0
    while made < n:
        attempts += 1
        if attempts > 50 * n:
            raise SpliceError(f"{photo_dir}: could not place {n} regions after {attempts} tries (photos too small?)")
        if run.try_composite(photos, made):
            made += 1
            bar.update(1)
    # Authentic controls: the composites' own backgrounds first (the same scene with and without a splice,
    # saved the same way), then other photos when more controls than distinct targets are asked for.
    targets = list(dict.fromkeys(r["target"] for r in run.rows))
    by_rel = {p.rel: p for p in photos}
    rest = [photos[int(i)].rel for i in run.rng.permutation(len(photos)) if photos[int(i)].rel not in set(targets)]
    for i, rel in enumerate((targets + rest)[:n_authentic]):
        run.write_authentic(by_rel[rel], f"{i:04d}")
        bar.update(1)
    bar.close()
    manifest = out_dir / "manifest.csv"
    _write_manifest(manifest, run.rows)
    for twin, trows in run.twin_rows.items():
        _write_manifest(out_dir / twin / "manifest.csv", trows)
    return manifest


def rebuild_splices(photo_dir: Path, splice_dir: Path, progress: bool = True) -> int:
    """Re-create the images of a make-splices folder from its manifest, masks and the original photos.

    A composite folder can thus be shared as a recipe (manifest.csv + masks/, a few hundred kB) without
    redistributing anyone's photos. Each rebuilt image is checked against the manifest's pixel hash; the
    twin sub-folders the manifest lists (``twins`` column) are re-created too, manifests included.
    Returns the number of (top-level) images written.
    """
    from tqdm import tqdm

    photo_dir, splice_dir = Path(photo_dir), Path(splice_dir)
    with (splice_dir / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and rows[0].get("lossless", "").startswith("../"):
        raise SpliceError(f"{splice_dir} is the {rows[0].get('variant') or 'twin'!r} twin of a make-splices folder: "
                          f"rebuild its parent folder")
    twin_rows: dict[str, list[dict]] = {}
    for r in tqdm(rows, desc="rebuild-splices", unit="img", disable=not progress):
        target = load_rgb(photo_dir / r["target"])[0]
        mask = None
        if r["label"] == "1":
            source = load_rgb(photo_dir / r["source"])[0]
            mask = np.asarray(Image.open(splice_dir / r["mask"])) > 127
            sx, sy, dx, dy = (int(r[k]) for k in ("src_x", "src_y", "dst_x", "dst_y"))
            ys, xs = np.nonzero(mask)
            h, w = ys.max() - dy + 1, xs.max() - dx + 1
            arr, _ = paste(target, source, mask[dy:dy + h, dx:dx + w], (sx, sy), (dx, dy))
        else:
            arr = target
        if r.get("pixel_sha256") and pixel_sha256(arr) != r["pixel_sha256"]:
            raise SpliceError(f"{splice_dir / r['lossless']}: rebuilt pixels differ from the recorded hash "
                              f"(is {photo_dir / r['target']} the same photo?)")
        q = r.get("jpeg_quality") or None
        _save(arr, splice_dir / r["lossless"], int(q) if q else None)
        names = [t for t in (r.get("twins") or "").split(";") if t]
        unknown = [t for t in names if t not in TWIN_SPECS]
        if unknown:
            raise SpliceError(f"{splice_dir / 'manifest.csv'}: unknown twin set(s) {', '.join(unknown)}")
        for twin, trow in _write_twins(arr, mask, r, splice_dir, names).items():
            twin_rows.setdefault(twin, []).append(trow)
    for twin, trows in twin_rows.items():
        _write_manifest(splice_dir / twin / "manifest.csv", trows)
    return len(rows)


__all__ = ["SpliceError", "SourcePhoto", "list_photos", "select_cameras", "read_camera_list", "smooth_region", "paste",
           "make_splices", "rebuild_splices", "pixel_sha256", "CAMERA_CHOICES", "PHASE_CHOICES", "TWINS",
           "TwinSpec", "TWIN_SPECS", "TWIN_GROUPS", "resolve_twins", "MAX_COMPOSITES", "distinct_pairs",
           "check_supply", "existing_set_marks", "remove_set"]
