"""The metadata checks without ExifTool (exiflang.exif.provenance through the pyexiv2 fallback of exif.exiv2), on the
real files the ExifTool-path tests use (tests/test_provenance.py) and a few that exercise XMP dates, a JPEG
comment and IPTC: each check's status and text through the fallback, and, where ExifTool is installed, the same
status, text and evidence from both readers.

The fallback is forced the way a machine without ExifTool gets it: `$EXIFTOOL` names a file that does not exist,
so `find_exiftool()` finds none. The files edited here are written with pyexiv2, so these tests need no ExifTool."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from exiflang.exif.provenance import CHECK_IDS, NOT_AVAILABLE, OK, WARNING, ProvenanceReader
from exiflang.imageio import load_rgb
from test_provenance import IPHONE, SPLICE, _with_own_thumbnail

pyexiv2 = pytest.importorskip("pyexiv2", reason="pyexiv2 is not installed (./setup.sh installs it)")
LIGHTROOM = "Adobe Photoshop Lightroom Classic 12.4 (Windows)"


@pytest.fixture(scope="module")
def fallback(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # only while the reader looks for ExifTool
        mp.setenv("EXIFTOOL", str(tmp_path_factory.mktemp("no-exiftool") / "exiftool"))
        reader = ProvenanceReader()
    with reader:
        assert reader.backend == "pyexiv2"
        yield reader


@pytest.fixture(scope="module")
def exiftool_reader():
    with ProvenanceReader() as reader:
        if reader.backend != "exiftool":
            pytest.skip("exiftool is not installed (apt install libimage-exiftool-perl): nothing to compare with")
        yield reader


def _pyexiv2_edit(src, dst, exif=None, xmp=None, iptc=None):
    """A copy of src with metadata changed in place by Exiv2 (pixels and thumbnail untouched)."""
    shutil.copy(src, dst)
    img = pyexiv2.Image(str(dst))
    try:
        for values, modify in ((exif, img.modify_exif), (xmp, img.modify_xmp), (iptc, img.modify_iptc)):
            if values:
                modify(values)
    finally:
        img.close()
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory, photos_dir, casia_dir, exif_samples_dir):
    """name -> real file: the ExifTool-path tests' cases, plus XMP dates, a JPEG comment and IPTC."""
    folder = tmp_path_factory.mktemp("fallback")
    iphone = photos_dir / IPHONE
    out = {"splice": casia_dir / SPLICE, "iphone": iphone,
           "xmp": _pyexiv2_edit(iphone, folder / "xmp.jpg", exif={"Exif.Image.DateTime": "2024:03:01 09:30:00"},
                                xmp={"Xmp.xmp.CreatorTool": LIGHTROOM}),
           "iptc": _pyexiv2_edit(iphone, folder / "iptc.jpg", iptc={"Iptc.Application2.Program": "Adobe Photoshop",
                                                                    "Iptc.Application2.ProgramVersion": "25.0"}),
           "xmp_dates": exif_samples_dir / "jpg/xmp/BlueSquare.jpg",  # Photoshop's XMP CreateDate, EXIF ModifyDate
           "comment": exif_samples_dir / "jpg/Nikon_D70.jpg"}  # a JPEG comment "comment in GIMP 2.4.5"
    pixels, _ = load_rgb(iphone)
    Image.fromarray(pixels).save(folder / "stripped.jpg", quality=90)
    out["stripped"] = folder / "stripped.jpg"
    base = _with_own_thumbnail(iphone, folder / "base.jpg")
    with Image.open(base) as img:
        exif, picture = img.info["exif"], np.asarray(img.convert("RGB")).copy()
        img.crop((200, 150, 712, 534)).save(folder / "crop.jpg", quality=95, exif=exif)
    picture[100:340, 600:900] = (255, 40, 40)
    Image.fromarray(picture).save(folder / "edited.jpg", quality=95, exif=exif)
    out.update(base=base, crop=folder / "crop.jpg", edited=folder / "edited.jpg")
    return out


def _checks(reader, path) -> dict:
    return {c.id: c for c in reader.check(path)}


def test_software_in_exif_xmp_iptc_and_the_comment(fallback, files):
    splice = _checks(fallback, files["splice"])["software"]
    assert splice.status == WARNING and "Adobe Photoshop CS2 Windows" in splice.text
    assert splice.evidence["tags"] == {"EXIF:Software": ["Adobe Photoshop CS2 Windows"],
                                       "XMP:CreatorTool": ["Adobe Photoshop CS2 Windows"]}
    xmp = _checks(fallback, files["xmp"])["software"]
    assert xmp.status == WARNING and f"{LIGHTROOM} (in XMP:CreatorTool)" in xmp.text
    iptc = _checks(fallback, files["iptc"])["software"]
    assert iptc.status == WARNING and "Adobe Photoshop (in IPTC:OriginatingProgram)" in iptc.text
    assert iptc.evidence["tags"]["IPTC:ProgramVersion"] == ["25.0"]
    comment = _checks(fallback, files["comment"])["software"]
    assert comment.status == WARNING and comment.evidence["tags"]["File:Comment"] == ["comment in GIMP 2.4.5"]
    assert _checks(fallback, files["iphone"])["software"].status == OK  # the iPhone names only its iOS version


def test_camera_dimensions_and_thumbnail(fallback, files):
    splice = _checks(fallback, files["splice"])
    assert splice["camera"].status == WARNING and "no camera make or model" in splice["camera"].text
    assert splice["dimensions"].status == OK
    iphone = _checks(fallback, files["iphone"])
    assert iphone["camera"].status == OK and "Apple iPhone 6" in iphone["camera"].text
    assert iphone["dimensions"].status == WARNING
    assert iphone["dimensions"].evidence == {"exif": [3264, 2448], "stored": [1024, 768]}
    assert iphone["thumbnail"].evidence["outcome"] == "crop"
    stripped = _checks(fallback, files["stripped"])
    assert stripped["camera"].status == WARNING and "no EXIF metadata at all" in stripped["camera"].text
    assert {stripped[k].status for k in ("dimensions", "dates", "thumbnail")} == {NOT_AVAILABLE}
    crop = _checks(fallback, files["crop"])
    assert crop["dimensions"].status == WARNING and "the stored pixels are 512x384" in crop["dimensions"].text
    assert [_checks(fallback, files[k])["thumbnail"].evidence["outcome"] for k in ("base", "crop", "edited")] == \
        ["match", "crop", "edited"]


def test_dates_in_exif_and_xmp(fallback, files):
    xmp = _checks(fallback, files["xmp"])["dates"]
    assert xmp.status == WARNING and "EXIF ModifyDate is 3454 days after EXIF DateTimeOriginal" in xmp.text
    # only XMP holds this file's capture date: Exiv2's "2005-09-07T15:07:40-07:00", printed as ExifTool does
    blue = _checks(fallback, files["xmp_dates"])["dates"]
    assert blue.status == WARNING and "EXIF ModifyDate is 2 minutes after XMP CreateDate" in blue.text
    assert blue.evidence["XMP:CreateDate"] == "2005:09:07 15:07:40-07:00"
    assert _checks(fallback, files["iphone"])["dates"].status == OK


def test_both_readers_agree_on_every_check(fallback, exiftool_reader, files):
    for name, path in files.items():
        a, b = _checks(exiftool_reader, path), _checks(fallback, path)
        assert set(a) == set(b) == set(CHECK_IDS), name
        for check in CHECK_IDS:
            assert (a[check].status, a[check].text) == (b[check].status, b[check].text), (name, check)
            assert a[check].evidence == b[check].evidence, (name, check)
