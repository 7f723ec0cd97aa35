"""Forensic benchmark datasets read from a local folder in their published layouts.

Every loader returns a `Dataset`: a list of `Sample(image, mask, label)` (absolute paths; ``mask`` is None
for authentic images) plus the problems it found (missing masks, counts that differ from the published
ones). Masks are read with `load_mask`, which turns each dataset's mask convention into a bool HxW array.

Select a dataset with a spec ``KIND:PATH``; kinds and the layouts they expect (PATH is the folder that
holds the named sub-folders):

==============  =====================================================================================
``columbia``    Columbia Uncompressed Image Splicing (Hsu & Chang 2006): ``4cam_auth/*.tif`` (183),
                ``4cam_splc/*.tif`` (180), masks ``4cam_splc/edgemask/<stem>_edgemask.jpg`` (the
                green-labelled region is the splice).
``dso1``        DSO-1 (Carvalho et al. 2013): ``DSO-1/{normal,splicing}-NN.png`` (100 + 100), masks
                ``DSO-1-Fake-Images-Masks/splicing-NN.png`` (PATH may also be the ``tifs-database`` folder
                above them). The splice is taken as the minority colour of these masks.
``korus``       Realistic Tampering (Korus & Huang 2016): ``[data-images/]<camera>/{pristine,tampered-realistic}/
                *.TIF`` (220 + 220) with ``<camera>/ground-truth/<stem>.PNG``.
``inthewild``   In-the-Wild (Huh et al. 2018): ``images/*.jpg`` (201, all spliced), ``masks/<stem>.png``.
``casia1``      CASIA v1.0: ``Au/*.jpg`` (800) and ``Sp/**/*.jpg`` (921) with masks from
                ``namtpham/casia1groundtruth`` unpacked anywhere under PATH (``<stem>_gt.png`` or ``<stem>.png``).
``casia2``      CASIA v2.0: ``Au/*`` (7491) and ``Tp/*`` (5123) with ground truth ``<stem>_gt.png`` anywhere
                under PATH (e.g. the ``CASIA 2 Groundtruth`` folder).
``manifest``    The layout of ``../shared/data/casia1``: ``MANIFEST.csv`` with ``image,mask,label``.
``generic``     ``manifest.csv`` with ``image,mask,label`` (paths relative to PATH; label 1 = manipulated,
                with a mask; 0 = authentic, empty mask cell). ``make-splices`` writes this layout.
==============  =====================================================================================
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..imageio import IMAGE_SUFFIXES
from ..errors import ExiflangError



class DatasetError(ExiflangError):
    """A dataset folder is missing, unreadable or incomplete; the message names the folder and what is missing."""


@dataclass(frozen=True)
class Sample:
    """One benchmark image: its path, its mask path (None when authentic) and its label (1 = manipulated)."""

    image: Path
    mask: Path | None
    label: int
    mask_kind: str = "white"  # how load_mask reads the mask: white / dark / minority / green / any


@dataclass
class Dataset:
    """A loaded dataset: its samples, where it came from, and any problems found while loading."""

    kind: str
    root: Path
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def n_manipulated(self) -> int:
        """Number of manipulated samples."""
        return sum(s.label for s in self.samples)

    @property
    def n_authentic(self) -> int:
        """Number of authentic samples."""
        return len(self.samples) - self.n_manipulated


def load_mask(sample: Sample, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a sample's mask as bool HxW (True = manipulated); all False for an authentic sample."""
    if sample.mask is None:
        if shape is None:
            with Image.open(sample.image) as img:
                shape = (img.height, img.width)
        return np.zeros(shape, dtype=bool)
    try:
        with Image.open(sample.mask) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{sample.mask}: cannot read mask ({exc})") from exc
    gray = arr.mean(axis=2)
    if sample.mask_kind == "white":
        mask = gray > 127
    elif sample.mask_kind == "dark":
        mask = gray < 128
    elif sample.mask_kind == "minority":
        # DSO-1 mask polarity is not documented with the data: take the smaller of the two colours
        # as the splice (every DSO-1 splice covers less than half of the frame).
        white = gray > 127
        mask = white if white.mean() <= 0.5 else ~white
    elif sample.mask_kind == "any":
        mask = gray > 0
    elif sample.mask_kind == "green":
        # Columbia edge masks are JPEG: allow compression noise around pure/regular green.
        r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
        mask = (g > 127) & (r < 100) & (b < 100)
    else:
        raise DatasetError(f"{sample.mask}: unknown mask kind {sample.mask_kind!r}")
    if shape is not None and mask.shape != tuple(shape):
        raise DatasetError(f"{sample.mask}: mask size {mask.shape[::-1]} differs from image size {tuple(shape)[::-1]}")
    return mask


def _images(folder: Path, pattern: str = "*") -> list[Path]:
    """Image files in a folder matching a glob pattern, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _expect(problems: list[str], what: str, found: int, expected: int) -> None:
    """Record a count that differs from the published one."""
    if found != expected:
        problems.append(f"{what}: found {found}, the published dataset has {expected}")


def _pair_masks(images: list[Path], find: Callable[[Path], Path | None], kind: str, problems: list[str]) -> list[Sample]:
    """Manipulated samples for images whose mask `find` locates; the others are reported as problems."""
    samples, missing = [], []
    for img in images:
        mask = find(img)
        if mask is None:
            missing.append(img.name)
        else:
            samples.append(Sample(img, mask, 1, kind))
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... (+{len(missing) - 5})" if len(missing) > 5 else "")
        problems.append(f"{len(missing)} manipulated image(s) without a mask were skipped: {shown}")
    return samples


def _file_index(root: Path, suffixes: tuple[str, ...] = (".png", ".jpg", ".bmp", ".tif")) -> dict[str, Path]:
    """Map lower-case file stems to paths for every mask-like file under root."""
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in suffixes:
            index.setdefault(p.stem.lower(), p)
    return index


def load_columbia(root: Path) -> Dataset:
    """Columbia Uncompressed Image Splicing: 4cam_auth/ and 4cam_splc/ with edgemask/ (green = spliced)."""
    problems: list[str] = []
    auth = _images(root / "4cam_auth", "*.tif")
    splc = _images(root / "4cam_splc", "*.tif")
    _expect(problems, "4cam_auth/*.tif", len(auth), 183)
    _expect(problems, "4cam_splc/*.tif", len(splc), 180)

    def find(img: Path) -> Path | None:
        p = img.parent / "edgemask" / f"{img.stem}_edgemask.jpg"
        return p if p.is_file() else None

    samples = [Sample(p, None, 0) for p in auth] + _pair_masks(splc, find, "green", problems)
    return Dataset("columbia", root, samples, problems)


def load_dso1(root: Path) -> Dataset:
    """DSO-1: DSO-1/{normal,splicing}-*.png with DSO-1-Fake-Images-Masks/ (minority colour = spliced)."""
    if not (root / "DSO-1").is_dir() and (root / "tifs-database" / "DSO-1").is_dir():
        root = root / "tifs-database"
    problems: list[str] = []
    normal = _images(root / "DSO-1", "normal-*")
    splicing = _images(root / "DSO-1", "splicing-*")
    _expect(problems, "DSO-1/normal-*", len(normal), 100)
    _expect(problems, "DSO-1/splicing-*", len(splicing), 100)
    mask_dir = root / "DSO-1-Fake-Images-Masks"

    def find(img: Path) -> Path | None:
        for name in (img.name, img.stem + ".png"):
            if (mask_dir / name).is_file():
                return mask_dir / name
        return None

    samples = [Sample(p, None, 0) for p in normal] + _pair_masks(splicing, find, "minority", problems)
    return Dataset("dso1", root, samples, problems)


def load_korus(root: Path) -> Dataset:
    """Realistic Tampering: <camera>/{pristine,tampered-realistic}/*.TIF with <camera>/ground-truth/*.PNG."""
    if (root / "data-images").is_dir():
        root = root / "data-images"
    problems: list[str] = []
    pristine = sorted(p for p in root.glob("*/pristine/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    tampered = sorted(p for p in root.glob("*/tampered-realistic/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    _expect(problems, "*/pristine/*", len(pristine), 220)
    _expect(problems, "*/tampered-realistic/*", len(tampered), 220)

    def find(img: Path) -> Path | None:
        gt = img.parent.parent / "ground-truth"
        for name in (img.stem + ".PNG", img.stem + ".png"):
            if (gt / name).is_file():
                return gt / name
        return None

    samples = [Sample(p, None, 0) for p in pristine] + _pair_masks(tampered, find, "any", problems)
    return Dataset("korus", root, samples, problems)


def load_inthewild(root: Path) -> Dataset:
    """In-the-Wild: images/*.jpg with masks/<stem>.png; every image is spliced."""
    if not (root / "images").is_dir() and (root / "label_in_wild" / "images").is_dir():
        root = root / "label_in_wild"
    problems: list[str] = []
    images = _images(root / "images")
    _expect(problems, "images/*", len(images), 201)

    def find(img: Path) -> Path | None:
        p = root / "masks" / f"{img.stem}.png"
        return p if p.is_file() else None

    return Dataset("inthewild", root, _pair_masks(images, find, "white", problems), problems)


def _casia(root: Path, kind: str, au_dir: str, tp_dirs: tuple[str, ...], n_au: int, n_tp: int) -> Dataset:
    """CASIA v1/v2: authentic and tampered folders, ground-truth masks found by stem anywhere under root."""
    problems: list[str] = []
    authentic = sorted(p for p in (root / au_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if (root / au_dir).is_dir() else []
    tampered: list[Path] = []
    for d in tp_dirs:
        if (root / d).is_dir():
            tampered += sorted(p for p in (root / d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    _expect(problems, f"{au_dir}/ authentic images", len(authentic), n_au)
    _expect(problems, f"{'/'.join(tp_dirs)}/ tampered images", len(tampered), n_tp)
    # Masks are whatever image-like file is neither an authentic nor a tampered image.
    images = {p.resolve() for p in tampered + authentic}
    index = {k: v for k, v in _file_index(root).items() if v.resolve() not in images}

    def find(img: Path) -> Path | None:
        stem = img.stem.lower()
        return index.get(f"{stem}_gt") or index.get(stem)

    samples = [Sample(p, None, 0) for p in authentic] + _pair_masks(tampered, find, "white", problems)
    return Dataset(kind, root, samples, problems)


def load_casia1(root: Path) -> Dataset:
    """CASIA v1.0 in its published layout (Au/, Sp/) plus the casia1groundtruth masks."""
    if (root / "MANIFEST.csv").is_file() and not (root / "Au").is_dir():
        return load_manifest(root, "MANIFEST.csv", kind="casia1")
    return _casia(root, "casia1", "Au", ("Sp", "Modified Tp"), 800, 921)


def load_casia2(root: Path) -> Dataset:
    """CASIA v2.0 in its published layout (Au/, Tp/) plus <stem>_gt.png ground truth."""
    return _casia(root, "casia2", "Au", ("Tp",), 7491, 5123)


def load_manifest(root: Path, name: str = "manifest.csv", kind: str = "generic") -> Dataset:
    """A folder with a CSV manifest (image, mask, label; paths relative to the folder)."""
    path = root / name
    if not path.is_file():
        alt = root / (name.upper() if name.islower() else name.lower())
        if not alt.is_file():
            raise DatasetError(f"{root}: no {name} (expected columns image,mask,label)")
        path = alt
    problems: list[str] = []
    samples: list[Sample] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing_cols = {"image", "mask", "label"} - set(reader.fieldnames or [])
        if missing_cols:
            raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing_cols))}")
        for line_no, row in enumerate(reader, start=2):
            try:
                label = int(row["label"])
            except ValueError:
                raise DatasetError(f"{path}:{line_no}: label {row['label']!r} is not 0 or 1") from None
            if label not in (0, 1):
                raise DatasetError(f"{path}:{line_no}: label {label} is not 0 or 1")
            image = root / row["image"]
            if not image.is_file():
                problems.append(f"{path.name}:{line_no}: image {row['image']} not found (skipped)")
                continue
            mask_cell = (row["mask"] or "").strip()
            if label == 1 and not mask_cell:
                problems.append(f"{path.name}:{line_no}: manipulated image {row['image']} has no mask (skipped)")
                continue
            mask = root / mask_cell if mask_cell else None
            if mask is not None and not mask.is_file():
                problems.append(f"{path.name}:{line_no}: mask {mask_cell} not found (skipped)")
                continue
            samples.append(Sample(image, mask if label == 1 else None, label))
    return Dataset(kind, root, samples, problems)


LOADERS: dict[str, Callable[[Path], Dataset]] = {
    "columbia": load_columbia,
    "dso1": load_dso1,
    "korus": load_korus,
    "inthewild": load_inthewild,
    "casia1": load_casia1,
    "casia2": load_casia2,
    "manifest": lambda root: load_manifest(root, "MANIFEST.csv", kind="manifest"),
    "generic": load_manifest,
}
ALIASES = {"dso-1": "dso1", "rt": "korus", "realistic-tampering": "korus", "in-the-wild": "inthewild", "casia": "casia1"}


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split 'KIND:PATH' into a known kind and a path."""
    match = re.match(r"^([A-Za-z0-9_-]+):(.+)$", spec)
    if not match:
        raise DatasetError(f"dataset spec {spec!r} is not KIND:PATH (kinds: {', '.join(LOADERS)})")
    kind = ALIASES.get(match.group(1).lower(), match.group(1).lower())
    if kind not in LOADERS:
        raise DatasetError(f"unknown dataset kind {match.group(1)!r} (kinds: {', '.join(LOADERS)})")
    return kind, Path(match.group(2)).expanduser()


def load_dataset(spec: str, strict: bool = False) -> Dataset:
    """Load a dataset from 'KIND:PATH'; raise DatasetError when empty, or on any problem when strict."""
    kind, root = parse_spec(spec)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (for {kind})")
    dataset = LOADERS[kind](root)
    if not dataset.samples:
        detail = "; ".join(dataset.problems) or "no images found"
        raise DatasetError(f"{root}: no usable images for dataset kind {kind!r} ({detail}); see `exiflang bench --help` for the expected layout")
    if strict and dataset.problems:
        raise DatasetError(f"{root}: dataset {kind!r} is incomplete: " + "; ".join(dataset.problems))
    return dataset


__all__ = ["DatasetError", "Sample", "Dataset", "load_mask", "load_dataset", "parse_spec", "LOADERS"]
