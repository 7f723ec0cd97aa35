"""EXIF -> text: the official default format, every ablation option, privacy exclusions."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from exiflang.exif import TextConfig, exif_to_text, read_exif
from exiflang.exif.tags import CANONICAL_ORDER, display_name, exclusion_for, is_private
from exiflang.exif.text import clean_value, normalize_value

TAGS = {
    "Model": "NIKON D3200",
    "Make": "NIKON CORPORATION",
    "ISO": "100 200",
    "FocalLength": "50 mm",
    "ExposureTime": "1/500",
    "FNumber": "5.6",
    "XResolution": "300/1",
    "ExposureCompensation": "-2/3",
    "Flash": "Auto, Did not fire",
    "YCbCrSubSampling": "YCbCr4:2:0 (2 2)",
    "LensModel": "AF-S DX Zoom-Nikkor 18-55mm f/3.5-5.6G ED",
    "GPSLatitude": "40 deg 26' 46.30\" N",
    "SerialNumber": "3012345",
    "Artist": "Jane Doe",
    "Copyright": "Jane Doe 2020",
    "OwnerName": "Jane",
    "ImageUniqueID": "a1b2c3",
    "DateTimeOriginal": "2020:01:02 03:04:05",
    "ExifImageWidth": "6016",
    "ExifImageHeight": "4000",
    "ThumbnailOffset": "2588",
    "UserComment": "my holiday",
}


def test_default_text_is_the_official_format() -> None:
    text = exif_to_text(TAGS)
    assert text == (
        "Make: NIKON CORPORATION, Model: NIKON D3200, Lens Model: Unknown, Exposure Time: 1/500, F Number: 5.6, "
        "ISO: 100, Exposure Compensation: 0, Flash: Auto, Did not fire, Focal Length: 50.0 mm, "
        "YCbCr Sub Sampling: YCbCr420 2 2, X Resolution: 300"
    )


def test_value_rules() -> None:
    assert normalize_value("XResolution", "300/1") == "300"
    assert normalize_value("YResolution", "72") == "72"
    assert normalize_value("ExposureCompensation", "-4/3") == "-1"  # truncated toward zero, like int()
    assert normalize_value("ExposureCompensation", "+0.7") == "0"
    assert normalize_value("FocalLength", "5.7 mm") == "5.7 mm"
    assert normalize_value("FocalLength", "18") == "18.0"
    assert normalize_value("ISO", "100, 200") == "100"
    assert normalize_value("Make", "Canon") == "Canon"
    assert clean_value("Off, Did not fire") == "Off, Did not fire"
    assert clean_value("Horizontal (normal)") == "Horizontal normal"
    assert clean_value("a" * 21) == "Unknown"
    assert clean_value("a" * 20) == "a" * 20
    assert clean_value("f/2.8  @  1/60s!") == "f/2.8 1/60s"
    assert clean_value("a" * 30, max_chars=64) == "a" * 30


def test_names_are_split_at_case_changes() -> None:
    assert display_name("ExposureTime") == "Exposure Time"
    assert display_name("FNumber") == "F Number"
    assert display_name("ISOSpeed") == "ISO Speed"
    assert display_name("FocalLengthIn35mmFormat") == "Focal Length In 35mm Format"
    assert display_name("Make") == "Make"
    assert display_name("YCbCrCoefficients") == "YCbCr Coefficients"


def test_privacy_and_uninformative_exclusions() -> None:
    text = exif_to_text(TAGS)
    for leaked in ("Jane", "3012345", "40 deg", "a1b2c3", "2020", "6016", "4000", "2588", "holiday"):
        assert leaked not in text, leaked
    for tag in ("GPSLatitude", "SerialNumber", "LensSerialNumber", "Artist", "Copyright", "OwnerName", "ImageUniqueID",
                "UserComment", "FileName"):
        assert is_private(tag), tag
    for tag in ("ExifImageWidth", "ImageHeight", "ThumbnailOffset", "DateTimeOriginal", "SubSecTimeOriginal",
                "StripOffsets", "PreviewImage"):
        rule = exclusion_for(tag)
        assert rule is not None and rule.category == "uninformative" and rule.reason, tag
    for tag in ("Make", "Model", "ExposureTime", "FNumber", "ISO", "FocalLength", "Flash", "WhiteBalance",
                "Software", "Orientation", "XResolution", "FocalPlaneXResolution", "ExposureCompensation"):
        assert exclusion_for(tag) is None, tag
    everything = exif_to_text(TAGS, TextConfig(default_exclusions=False))
    assert "Serial Number: 3012345" in everything and "Artist: Jane Doe" in everything


def test_real_photo_privacy(photos_dir: Path) -> None:
    tags = read_exif(photos_dir / "Canon_Canon-EOS-5D-Mark-III/_K6A7943.jpg")
    assert tags["Artist"] == "Tyler Thorsted" and "SerialNumber" in tags and "GPSVersionID" in tags
    text = exif_to_text(tags)
    assert "Thorsted" not in text and "302022000566" not in text and "GPS" not in text
    # The official 20-character rule hides long model names ("Canon EOS 5D Mark III" has 21): documented.
    assert text.startswith("Make: Canon, Model: Unknown, Lens Model: Unknown, Lens Info: 28-135mm f/0,")
    longer = exif_to_text(tags, TextConfig(max_value_chars=40))
    assert longer.startswith("Make: Canon, Model: Canon EOS 5D Mark III, Lens Model: EF28-135mm f/3.5-5.6 IS USM,")


def test_include_names_off() -> None:
    text = exif_to_text(TAGS, TextConfig(include_names=False, subset=["Make", "Model", "ExposureTime"]))
    assert text == "NIKON CORPORATION, NIKON D3200, 1/500"


def test_canonical_order_is_fixed_whatever_the_input_order() -> None:
    shuffled = dict(random.Random(3).sample(sorted(TAGS.items()), len(TAGS)))
    assert exif_to_text(shuffled) == exif_to_text(TAGS)
    assert CANONICAL_ORDER[:2] == ("Make", "Model")
    # Unlisted tags follow the listed ones, alphabetically.
    assert exif_to_text({"Zeta": "1", "Alpha": "2", "Make": "X"}) == "Make: X, Alpha: 2, Zeta: 1"


def test_seeded_shuffle_order() -> None:
    a = exif_to_text(TAGS, TextConfig(order="shuffle", seed=1))
    b = exif_to_text(TAGS, TextConfig(order="shuffle", seed=1))
    c = exif_to_text(TAGS, TextConfig(order="shuffle", seed=2))
    canonical = exif_to_text(TAGS)
    assert a == b and a != c and a != canonical
    assert sorted(a.split(", ")) == sorted(canonical.split(", "))
    # With an rng, each call draws a fresh order (per-sample shuffling in training).
    rng = random.Random(0)
    draws = {exif_to_text(TAGS, TextConfig(order="shuffle"), rng=rng) for _ in range(10)}
    assert len(draws) > 1


def test_subsets() -> None:
    assert exif_to_text(TAGS, TextConfig(subset="camera-only")) == "Make: NIKON CORPORATION, Model: NIKON D3200"
    assert exif_to_text(TAGS, TextConfig(subset="FNumber")) == "F Number: 5.6"
    assert exif_to_text(TAGS, TextConfig(subset=["ISO", "Make"])) == "Make: NIKON CORPORATION, ISO: 100"
    exposure = exif_to_text(TAGS, TextConfig(subset="exposure"))
    assert exposure.startswith("Exposure Time: 1/500, F Number: 5.6, ISO: 100") and "Make" not in exposure
    # A subset does not bypass the privacy exclusions.
    assert exif_to_text(TAGS, TextConfig(subset=["SerialNumber", "Make"])) == "Make: NIKON CORPORATION"


def test_min_frequency_with_tag_counts() -> None:
    counts = {"n_photos": 100, "counts": {"Make": 100, "Model": 100, "FNumber": 60, "ISO": 9, "Flash": 10}}
    cfg = TextConfig(min_frequency=0.10)
    text = exif_to_text(TAGS, cfg, tag_counts=counts)
    assert text == "Make: NIKON CORPORATION, Model: NIKON D3200, F Number: 5.6, Flash: Auto, Did not fire"
    resolved = cfg.with_tag_counts(counts)
    assert resolved.frequent_tags == ["FNumber", "Flash", "Make", "Model"]
    assert exif_to_text(TAGS, resolved) == text  # no counts needed once resolved (stored in model configs)
    with pytest.raises(ValueError, match="tag_counts"):
        exif_to_text(TAGS, cfg)


def test_raw_values_and_custom_length_limit() -> None:
    raw = exif_to_text(TAGS, TextConfig(normalize_values=False, subset=["LensModel", "ISO"]))
    assert raw == "Lens Model: AF-S DX Zoom-Nikkor 18-55mm f/3.5-5.6G ED, ISO: 100 200"
    longer = exif_to_text(TAGS, TextConfig(max_value_chars=64, subset=["LensModel"]))
    assert longer == "Lens Model: AF-S DX Zoom-Nikkor 18-55mm f/3.5-5.6G ED"


def test_text_config_round_trip_and_validation() -> None:
    cfg = TextConfig(include_names=False, order="shuffle", seed=7, subset="camera-only", min_frequency=0.2,
                     frequent_tags=["Make"], exclude=["Software"])
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TextConfig.from_dict(data) == cfg
    assert TextConfig.from_dict(None) == TextConfig()
    with pytest.raises(ValueError, match="unknown TextConfig keys"):
        TextConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError):
        TextConfig(order="random")
    with pytest.raises(ValueError):
        TextConfig(min_frequency=5)
    assert exif_to_text(TAGS, TextConfig(exclude=["Flash"])).count("Flash") == 0
