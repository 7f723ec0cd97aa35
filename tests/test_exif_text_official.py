"""The official EXIF-as-language text format (`value_rules="official"`, the `paper` preset) on real photos.

Expected strings are worked out by hand from the official value rule (see `exiflang.exif.text.official_value`);
every example value is read from a shared photo, or written into a copy of one with ExifTool and read back.
"""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from exiflang.exif import ExifReader, TextConfig, exif_to_text, read_exif
from exiflang.exif import tags as tagtable
from exiflang.exif.text import official_value
from exiflang.models.factory import resolve_config

OFFICIAL = TextConfig(value_rules="official")
IPHONE6 = "Apple_iPhone-6/Apple iPhone 6.jpg"  # Flash "Auto, Did not fire", ExposureCompensation "0"
OLYMPUS_P3 = "OLYMPUS-IMAGING-CORP_E-P3/42_IndexError.jpg"  # ExposureProgram "Creative (Slow speed)" (21 chars)
GOPRO = "GoPro_HERO7-Black/GOPR8508.jpg"  # FlashpixVersion is one control byte "\x08"
LUMIX = "Panasonic_DMC-LC70/Panasonic DMC-LC70 (Lumix).jpg"  # ExposureCompensation "-0.66"
OLYMPUS_S760 = "OLYMPUS-IMAGING-CORP_u760-S760/Olympus S760.jpg"  # ExposureCompensation "+0.7"
IXUS750 = "Canon_Canon-DIGITAL-IXUS-750/Canon IXUS 750.jpg"  # FocalPlaneXResolution "10816.90141"


def _tags(photos_dir: Path, rel: str) -> dict[str, str]:
    """The photo's tags as exiflang reads them (ExifTool's values)."""
    return read_exif(photos_dir / rel)


def _paper_config() -> TextConfig:
    """The text format stored in the `paper` preset (a partial dict, completed by TextConfig's defaults)."""
    return TextConfig.from_dict(resolve_config("paper").text_format)


def test_rule1_cleaning_strips_spaces(photos_dir):
    tags = _tags(photos_dir, IPHONE6)
    assert tags["Flash"] == "Auto, Did not fire"
    assert official_value("Flash", tags["Flash"]) == "Auto,Didnotfire"
    assert "Flash: Auto,Didnotfire" in exif_to_text(tags, OFFICIAL)
    assert "Flash: Auto, Did not fire" in exif_to_text(tags)  # the default keeps the spaces
    assert official_value("Orientation", tags["Orientation"]) == "Horizontalnormal"  # "Horizontal (normal)"


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs ExifTool to write a test value")
def test_rule2_negative_rationals_are_floored(photos_dir, tmp_path):
    # ExifTool prints an exact third as a fraction: write -1/3 and -4/3 into copies of a real photo.
    expected = {"-0.333333333": ("-1/3", "-1", "0"), "-1.333333333": ("-4/3", "-2", "-1")}
    for written, (printed, official, default) in expected.items():
        photo = tmp_path / "bias.jpg"
        shutil.copyfile(photos_dir / IPHONE6, photo)
        subprocess.run(["exiftool", "-q", "-overwrite_original", f"-ExposureCompensation={written}", str(photo)],
                       check=True, timeout=60)
        tags = read_exif(photo)
        assert tags["ExposureCompensation"] == printed
        assert f"Exposure Compensation: {official}," in exif_to_text(tags, OFFICIAL)
        assert f"Exposure Compensation: {default}," in exif_to_text(tags)
    assert official_value("ExposureCompensation", "+2/3") == "0"
    assert official_value("XResolution", "0/0") == "0"  # division by zero: the numerator is kept


def test_rule3_decimals_of_integer_tags_are_kept(photos_dir):
    for rel, value in ((LUMIX, "-0.66"), (OLYMPUS_S760, "+0.7")):
        tags = _tags(photos_dir, rel)
        assert tags["ExposureCompensation"] == value
        assert f"Exposure Compensation: {value}," in exif_to_text(tags, OFFICIAL)
        assert "Exposure Compensation: 0," in exif_to_text(tags)  # the default truncates decimals too
    tags = _tags(photos_dir, IXUS750)
    assert tags["FocalPlaneXResolution"] == "10816.90141"
    assert official_value("FocalPlaneXResolution", tags["FocalPlaneXResolution"]) == "10816.90141"
    assert "Focal Plane X Resolution: 10816," in exif_to_text(tags)


def test_rule4_special_tags_keep_their_rest_and_skip_cleaning_and_length(photos_dir):
    tags = _tags(photos_dir, IPHONE6)
    assert tags["FocalLength"] == "4.2 mm"
    assert official_value("FocalLength", tags["FocalLength"]) == "4.2 mm"  # unit and space kept, never cleaned
    assert official_value("FocalLength", "50 mm") == "50.0 mm"
    assert official_value("ExposureCompensation", "-1/3  EV") == "-1 EV"  # rest kept, whitespace collapsed
    assert official_value("XResolution", "72 dots per inch") == "72 dots per inch"  # 16+ chars, never checked
    assert official_value("ISO", "100, 200") == "100,"  # first token, not cleaned
    assert official_value("FocalLength", "50/1 mm") == "Unknown"  # float() fails: the official loader's Unknown
    # Other tags: the 20-character limit is checked on the raw value, before cleaning.
    tags = _tags(photos_dir, OLYMPUS_P3)
    raw = tags["ExposureProgram"]
    assert raw == "Creative (Slow speed)" and len(raw) == 21
    assert official_value("ExposureProgram", raw) == "Unknown"  # cleaned it would be 17 characters
    assert "Exposure Program: Unknown," in exif_to_text(tags, OFFICIAL)
    assert "Exposure Program: Creative Slow speed," in exif_to_text(tags)


def test_rule5_empty_values_are_kept(photos_dir):
    tags = _tags(photos_dir, GOPRO)
    assert tags["FlashpixVersion"] == "\x08"
    assert "Flashpix Version: , " in exif_to_text(tags, OFFICIAL)
    assert "Flashpix Version" not in exif_to_text(tags)  # the default drops a value empty after cleaning
    assert official_value("Software", "") == ""
    assert official_value("ISO", "") == "Unknown"  # the special tags fail on an empty value


def test_rule6_names_order_and_tag_set(photos_dir):
    tags = _tags(photos_dir, IPHONE6)
    text = exif_to_text(tags, _paper_config())
    assert text.startswith("Make: Apple, Model: iPhone6, Orientation: Horizontalnormal, X Resolution: 72, "
                           "Y Resolution: 72, Resolution Unit: inches, Software: 8.0, Date/Time: 20140916140512, ")
    assert "F-Number: 2.2, Exposure Program: ProgramAE, ISO Speed Ratings: 32, Exif Version: 0221, " in text
    assert "Exposure Bias Value: 0, Metering Mode: Multi-segment, Flash: Auto,Didnotfire, Focal Length: 4.2 mm, " \
           "FlashPix Version: 0100, Color Space: sRGB, Exif Image Width: 3264, Exif Image Height: 2448, " in text
    assert text.endswith("Exposure Mode: Auto, White Balance Mode: Auto, Scene Capture Type: Standard")
    names = [part.split(": ")[0] for part in text.split(", ") if ": " in part]
    assert "Lens Model" not in names and "Brightness Value" not in names  # outside the >= 49 % set
    dump_order = [name for _, name in tagtable.OFFICIAL_NAMES]
    assert names == sorted(names, key=dump_order.index)


FIRST_BATCH = {"drewnoakes/digicam_corpus", "drewnoakes/metadata-extractor-images", "ianare/exif-samples"}


def test_official_frequent_is_the_49_percent_rule_on_the_shared_photos(photos_dir):
    # The list is frozen (the `paper` preset's text format must not drift with the data): it was derived from the
    # first batch of shared photos, so it is checked on exactly those (MANIFEST.csv source_repo).
    import csv

    with (photos_dir / "MANIFEST.csv").open(newline="") as fh:
        photos = sorted(photos_dir / r["path"] for r in csv.DictReader(fh) if r["source_repo"] in FIRST_BATCH)
    assert len(photos) == 302
    counts: Counter[str] = Counter()
    with ExifReader() as reader:
        for photo in photos:
            counts.update(reader.read(photo).keys())
    frequent = [tag for tag, _ in tagtable.OFFICIAL_NAMES if counts[tag] / len(photos) >= 0.49]
    assert tuple(frequent) == tagtable.OFFICIAL_FREQUENT


def test_paper_preset_stores_the_official_format():
    cfg = _paper_config()
    assert (cfg.value_rules, cfg.tag_names, cfg.order, cfg.subset) == ("official", "official", "official", "official")
    assert cfg.max_value_chars == 20 and cfg.unknown == "Unknown"
    assert TextConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="value_rules"):
        TextConfig(value_rules="yfcc")


def test_default_rules_unchanged(photos_dir):
    tags = _tags(photos_dir, IPHONE6)
    assert exif_to_text(tags) == (
        "Make: Apple, Model: iPhone 6, Lens Make: Apple, Lens Model: Unknown, Lens Info: 4.15mm f/2.2, Software: 8.0, "
        "Exposure Time: 1/40, F Number: 2.2, ISO: 32, Exposure Program: Program AE, Exposure Mode: Auto, "
        "Exposure Compensation: 0, Shutter Speed Value: 1/40, Aperture Value: 2.2, Brightness Value: 3.916808149, "
        "Metering Mode: Multi-segment, Flash: Auto, Did not fire, Focal Length: 4.2 mm, "
        "Focal Length In 35mm Format: 29 mm, Subject Area: 1631 1223 1795 1077, White Balance: Auto, "
        "Scene Capture Type: Standard, Scene Type: Unknown, Custom Rendered: HDR original saved, "
        "Sensing Method: One-chip color area, Color Space: sRGB, Components Configuration: Y, Cb, Cr, -, "
        "YCbCr Positioning: Centered, Orientation: Horizontal normal, X Resolution: 72, Y Resolution: 72, "
        "Resolution Unit: inches, Exif Version: 0221, Flashpix Version: 0100")
    assert TextConfig().value_rules == "exiflang" and TextConfig().tag_names == "exiftool"
