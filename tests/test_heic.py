"""HEIC/HEIF photos: decoded (pillow-heif), EXIF read by both readers, analysed by `detect`.

Fixtures: a HEIC made at test time with pillow-heif from a real shared photo, carrying that photo's EXIF, plus
every HEIC/HEIF in ../shared/data/exif-samples.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest
from PIL import Image

from exiflang.cli import main
from exiflang.exif import read_exif
from exiflang.imageio import HEIF_SUPPORTED, load_rgb
from photo_helpers import resized_copy, shared_photos

pytestmark = pytest.mark.skipif(not HEIF_SUPPORTED, reason="pillow-heif is not installed (pip install -e .)")

HEIF_SUFFIXES = (".heic", ".heif")


@pytest.fixture(scope="module")
def source_photo(photos_dir):
    return shared_photos(photos_dir, 1)[0]


@pytest.fixture(scope="module")
def heic_photo(tmp_path_factory, source_photo):
    """A 512-px HEIC of a real shared photo, with the photo's own EXIF block."""
    path = tmp_path_factory.mktemp("heic") / f"{source_photo.stem}.heic"
    resized_copy(source_photo, path, 512, quality=90)
    with Image.open(path) as im:
        assert im.format == "HEIF" and im.info.get("exif")
    return path


@pytest.fixture(scope="module")
def sample_heifs(exif_samples_dir):
    found = sorted(p for p in exif_samples_dir.rglob("*") if p.suffix.lower() in HEIF_SUFFIXES)
    if not found:
        pytest.skip(f"no HEIC/HEIF file in {exif_samples_dir}")
    return found


def test_heic_decodes_to_rgb(heic_photo, sample_heifs):
    arr, info = load_rgb(heic_photo)
    assert arr.shape == (384, 512, 3) and arr.dtype.name == "uint8" and info.orientation == 1
    assert arr.std() > 5  # a real picture, not a blank
    for path in sample_heifs:
        arr, info = load_rgb(path)
        assert arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) > 16, path


@pytest.mark.parametrize("backend", ["exiftool", "pyexiv2"])
def test_exif_command_reads_heic(backend, heic_photo, source_photo, capsys):
    if backend == "exiftool" and not shutil.which("exiftool"):
        pytest.skip("ExifTool is not installed (./setup.sh as root installs it)")
    assert main(["exif", "--json", "--backend", backend, str(heic_photo)]) == 0
    record = json.loads(capsys.readouterr().out)
    original = read_exif(source_photo, backend=backend)
    for tag in ("Make", "Model", "ExposureTime", "FNumber"):
        if tag in original:
            assert record["tags"].get(tag) == original[tag], tag
    assert record["tags"]["Make"] and f"Make: {original['Make']}" in record["text"]


@pytest.mark.parametrize("backend", ["exiftool", "pyexiv2"])
def test_exif_command_reads_the_shared_heif_samples(backend, sample_heifs, capsys):
    if backend == "exiftool" and not shutil.which("exiftool"):
        pytest.skip("ExifTool is not installed (./setup.sh as root installs it)")
    assert main(["exif", "--tags", "--backend", backend, *map(str, sample_heifs)]) == 0
    captured = capsys.readouterr()
    assert "no EXIF tags" not in captured.err
    for path in sample_heifs:
        with Image.open(path) as im:
            has_exif = bool(im.info.get("exif"))
        if has_exif:  # what libheif sees, the reader must see too
            tags = read_exif(path, backend=backend)
            assert tags, f"{backend} read no EXIF from {path}"


def test_both_readers_agree_on_heic(heic_photo, sample_heifs):
    if not shutil.which("exiftool"):
        pytest.skip("ExifTool is not installed")
    for path in [heic_photo, *sample_heifs]:
        a, b = read_exif(path, backend="exiftool"), read_exif(path, backend="pyexiv2")
        common = {"Make", "Model", "Orientation", "XResolution", "ResolutionUnit", "ExposureTime"} & set(a)
        assert common and all(a[t] == b.get(t) for t in common), (path, {t: (a[t], b.get(t)) for t in common})


def test_detect_analyses_heic(tmp_path, heic_photo, sample_heifs, capsys):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(heic_photo, photos / heic_photo.name)
    for i, path in enumerate(sample_heifs):
        shutil.copy(path, photos / f"sample{i}{path.suffix}")
    out = tmp_path / "out"
    # a folder: the .heic/.heif suffixes are picked up; the built-in model, a coarse grid to stay fast
    assert main(["detect", str(photos), "--out", str(out), "--per-side", "6", "--no-exif-check"]) == 0
    captured = capsys.readouterr()
    assert "FAILED" not in captured.out and captured.out.count(" ok") == 1 + len(sample_heifs)
    meta = json.loads((out / f"{heic_photo.stem}.json").read_text())
    assert meta["image_size"] == {"height": 384, "width": 512} and math.isfinite(meta["score"])
    assert meta["probability"] is not None and meta["verdict"]
    page = (out / "index.html").read_text()
    assert heic_photo.name in page and (out / f"{heic_photo.stem}.view.jpg").is_file()  # browsers cannot show HEIC
