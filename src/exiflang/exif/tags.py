"""The tag table: canonical order, display names, named subsets and default exclusions (each with a reason).

Tag names are ExifTool's, without group prefix ("ExposureTime", "FNumber", "Make").
Exclusions come in two categories:

* ``private``: identifies a person, a place or a single device (GPS, serial numbers, owner, free text).
  These are dropped from index records as well (unless the user asks to keep them), so an index or a
  shard built from it never carries them.
* ``uninformative``: says nothing about how the camera formed the pixels, or is false for our data
  (image sizes of cropped photos, offsets, thumbnails, timestamps). Kept in the index's raw tags,
  left out of the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# The fixed order in which tags appear in the text: what the camera is, then how the exposure was made,
# then how the camera processed and stored the image. Tags not listed here follow, alphabetically.
CANONICAL_ORDER: tuple[str, ...] = (
    "Make",
    "Model",
    "LensMake",
    "LensModel",
    "LensInfo",
    "Software",
    "HostComputer",
    "ExposureTime",
    "FNumber",
    "ISO",
    "ISOSpeed",
    "SensitivityType",
    "RecommendedExposureIndex",
    "ExposureProgram",
    "ExposureMode",
    "ExposureCompensation",
    "ShutterSpeedValue",
    "ApertureValue",
    "MaxApertureValue",
    "BrightnessValue",
    "MeteringMode",
    "LightSource",
    "Flash",
    "FlashEnergy",
    "FocalLength",
    "FocalLengthIn35mmFormat",
    "DigitalZoomRatio",
    "SubjectDistance",
    "SubjectDistanceRange",
    "SubjectArea",
    "WhiteBalance",
    "SceneCaptureType",
    "SceneType",
    "CustomRendered",
    "GainControl",
    "Contrast",
    "Saturation",
    "Sharpness",
    "SensingMethod",
    "FileSource",
    "ColorSpace",
    "Gamma",
    "ComponentsConfiguration",
    "CompressedBitsPerPixel",
    "Compression",
    "YCbCrPositioning",
    "YCbCrSubSampling",
    "Orientation",
    "XResolution",
    "YResolution",
    "ResolutionUnit",
    "FocalPlaneXResolution",
    "FocalPlaneYResolution",
    "FocalPlaneResolutionUnit",
    "ExifVersion",
    "FlashpixVersion",
    "InteropIndex",
    "InteropVersion",
    "CompositeImage",
)

_ORDER_INDEX = {name: i for i, name in enumerate(CANONICAL_ORDER)}

# The official EXIF-as-language texts were built from YFCC100M's EXIF dump, not from ExifTool. The dump names tags
# the way Drew Noakes' metadata-extractor does (its categories are "Exif IFD0", "Exif SubIFD", ...; the official
# code's own keys "Exif SubIFD.Exposure Bias Value" and "Exif SubIFD.ISO Speed Ratings" and the YFCC README's
# example "Exif SubIFD.Focal Plane Resolution Unit: Inches" are metadata-extractor names), and lists a photo's
# tags in file order: IFD0, then the Exif sub-IFD, then the interoperability IFD, each by ascending tag ID.
# This table maps ExifTool's name of each standard EXIF tag to the dump's name, in that order.
# Private tags (Artist, Copyright, serial numbers, GPS, ...) are left out: they are never in the official text's
# >= 49 % set, and exiflang never puts them into text.
OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    # IFD0
    ("Make", "Make"),
    ("Model", "Model"),
    ("Orientation", "Orientation"),
    ("XResolution", "X Resolution"),
    ("YResolution", "Y Resolution"),
    ("ResolutionUnit", "Resolution Unit"),
    ("Software", "Software"),
    ("ModifyDate", "Date/Time"),
    ("WhitePoint", "White Point"),
    ("PrimaryChromaticities", "Primary Chromaticities"),
    ("YCbCrCoefficients", "YCbCr Coefficients"),
    ("YCbCrSubSampling", "YCbCr Sub-Sampling"),
    ("YCbCrPositioning", "YCbCr Positioning"),
    ("ReferenceBlackWhite", "Reference Black/White"),
    # Exif sub-IFD
    ("ExposureTime", "Exposure Time"),
    ("FNumber", "F-Number"),
    ("ExposureProgram", "Exposure Program"),
    ("ISO", "ISO Speed Ratings"),
    ("SensitivityType", "Sensitivity Type"),
    ("RecommendedExposureIndex", "Recommended Exposure Index"),
    ("ExifVersion", "Exif Version"),
    ("DateTimeOriginal", "Date/Time Original"),
    ("CreateDate", "Date/Time Digitized"),
    ("ComponentsConfiguration", "Components Configuration"),
    ("CompressedBitsPerPixel", "Compressed Bits Per Pixel"),
    ("ShutterSpeedValue", "Shutter Speed Value"),
    ("ApertureValue", "Aperture Value"),
    ("BrightnessValue", "Brightness Value"),
    ("ExposureCompensation", "Exposure Bias Value"),
    ("MaxApertureValue", "Max Aperture Value"),
    ("SubjectDistance", "Subject Distance"),
    ("MeteringMode", "Metering Mode"),
    ("LightSource", "White Balance"),  # metadata-extractor's name of tag 0x9208
    ("Flash", "Flash"),
    ("FocalLength", "Focal Length"),
    ("SubjectArea", "Subject Location"),
    ("SubSecTime", "Sub-Sec Time"),
    ("SubSecTimeOriginal", "Sub-Sec Time Original"),
    ("SubSecTimeDigitized", "Sub-Sec Time Digitized"),
    ("FlashpixVersion", "FlashPix Version"),
    ("ColorSpace", "Color Space"),
    ("ExifImageWidth", "Exif Image Width"),
    ("ExifImageHeight", "Exif Image Height"),
    ("FocalPlaneXResolution", "Focal Plane X Resolution"),
    ("FocalPlaneYResolution", "Focal Plane Y Resolution"),
    ("FocalPlaneResolutionUnit", "Focal Plane Resolution Unit"),
    ("ExposureIndex", "Exposure Index"),
    ("SensingMethod", "Sensing Method"),
    ("FileSource", "File Source"),
    ("SceneType", "Scene Type"),
    ("CFAPattern", "CFA Pattern"),
    ("CustomRendered", "Custom Rendered"),
    ("ExposureMode", "Exposure Mode"),
    ("WhiteBalance", "White Balance Mode"),  # tag 0xA403
    ("DigitalZoomRatio", "Digital Zoom Ratio"),
    ("FocalLengthIn35mmFormat", "Focal Length 35"),
    ("SceneCaptureType", "Scene Capture Type"),
    ("GainControl", "Gain Control"),
    ("Contrast", "Contrast"),
    ("Saturation", "Saturation"),
    ("Sharpness", "Sharpness"),
    ("SubjectDistanceRange", "Subject Distance Range"),
    ("LensInfo", "Lens Specification"),
    ("LensMake", "Lens Make"),
    ("LensModel", "Lens Model"),
    ("Gamma", "Gamma"),
    # Interoperability IFD
    ("InteropIndex", "Interoperability Index"),
    ("InteropVersion", "Interoperability Version"),
)
_OFFICIAL_NAME = dict(OFFICIAL_NAMES)
_OFFICIAL_INDEX = {tag: i for i, (tag, _) in enumerate(OFFICIAL_NAMES)}

# The official texts keep only tags present in >= 49 % of the training photos (a count file computed on the authors'
# YFCC subset, which is not published). This list applies that same 49 % rule to the tags of OFFICIAL_NAMES on the
# 302 shared photos (digicam_corpus + metadata-extractor-images + exif-samples, mostly 2000-2015 cameras like
# YFCC's); an approximation, in dump order. SensingMethod (48 %) and DigitalZoomRatio (44 %) fell just short.
OFFICIAL_FREQUENT: tuple[str, ...] = (
    "Make", "Model", "Orientation", "XResolution", "YResolution", "ResolutionUnit", "Software", "ModifyDate",
    "YCbCrPositioning",
    "ExposureTime", "FNumber", "ExposureProgram", "ISO", "ExifVersion", "DateTimeOriginal", "CreateDate",
    "ComponentsConfiguration", "CompressedBitsPerPixel", "ShutterSpeedValue", "ApertureValue",
    "ExposureCompensation", "MaxApertureValue", "MeteringMode", "LightSource", "Flash", "FocalLength",
    "FlashpixVersion", "ColorSpace", "ExifImageWidth", "ExifImageHeight", "FileSource", "SceneType",
    "CustomRendered", "ExposureMode", "WhiteBalance", "SceneCaptureType",
    "InteropIndex", "InteropVersion",
)

# Named tag subsets for the paper's ablations ("which tags does the model need to read?").
NAMED_SUBSETS: dict[str, tuple[str, ...]] = {
    "camera-only": ("Make", "Model"),
    "exposure": ("ExposureTime", "FNumber", "ISO", "FocalLength", "ExposureProgram", "ExposureCompensation"),
    "lens": ("LensMake", "LensModel", "LensInfo", "FocalLength", "FocalLengthIn35mmFormat", "FNumber"),
    "processing": ("WhiteBalance", "ColorSpace", "Contrast", "Saturation", "Sharpness", "CustomRendered",
                   "SceneCaptureType", "CompressedBitsPerPixel", "YCbCrSubSampling"),
    "official": OFFICIAL_FREQUENT,  # the official texts' tag set (approximated, see OFFICIAL_FREQUENT)
}

# Display names whose automatic CamelCase split would read badly.
_DISPLAY_OVERRIDES = {
    "FNumber": "F Number",
    "ISO": "ISO",
    "FocalLengthIn35mmFormat": "Focal Length In 35mm Format",
    "ExifVersion": "Exif Version",
    "FlashpixVersion": "Flashpix Version",
}


@dataclass(frozen=True)
class Exclusion:
    """A rule that leaves tags out of the text by default, with the category and the reason."""

    pattern: str  # regular expression matched against the whole tag name
    category: str  # "private" or "uninformative"
    reason: str


DEFAULT_EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(r"GPS.*", "private", "GPS position, altitude, time and direction reveal where the photo was taken"),
    Exclusion(r"(Country|City|State|Location|Sub-?location|Province).*", "private", "location names"),
    Exclusion(r".*Serial.*|ImageUniqueID|.*UniqueID|CameraID|InternalSerialNumber", "private",
              "serial numbers and unique IDs identify one physical device or file, not a camera model"),
    Exclusion(r"Artist|Copyright|.*Owner.*|XPAuthor|Author|By-line.*|Creator|Photographer|ImageEditor", "private",
              "names of the photographer, owner or editor"),
    Exclusion(r"ImageDescription|UserComment|XPComment|XPTitle|XPKeywords|XPSubject|DocumentName|PageName|"
              r"Caption.*|Keywords|Title|ImageTitle|Comment", "private", "free text typed by a person, may hold anything"),
    Exclusion(r"FileName|Directory|FilePath|SourceFile|File.*Date|FilePermissions|FileSize|OriginalFileName|"
              r"OriginalRawFileName|RelatedImageFile.*", "private", "file-system names and dates of this copy"),
    Exclusion(r"(Exif)?Image(Width|Height|Length|Size)|RelatedImage(Width|Height)|PixelXDimension|"
              r"PixelYDimension|Default(Crop|User)?(Origin|Size)|CropSize|SensorWidth|SensorHeight",
              "uninformative", "image dimensions: the shared photos are crops, and a patch cannot show the frame size"),
    Exclusion(r".*Offsets?|.*ByteCounts?|.*Thumbnail.*|.*Preview.*|JpgFromRaw.*|OtherImage.*|MakerNoteOffset|"
              r"ExifOffset|InteropOffset|OffsetSchema|SubIFD.*|IFD\d*", "uninformative",
              "pointers, lengths and embedded thumbnails/previews describe the file layout, not the capture"),
    Exclusion(r".*Date.*|.*TimeStamp.*|SubSecTime.*|OffsetTime.*|TimeZone.*|RunTime.*|.*TimeCreated|"
              r"ModifyDate|CreateDate", "uninformative",
              "dates and times name the moment, not the imaging pipeline; unique per photo, they invite memorising"),
    Exclusion(r"PrintIM.*|PrintImageMatching|XPosition|YPosition", "uninformative",
              "printer hints written for print shops"),
)


@lru_cache(maxsize=None)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Compile exclusion patterns once, anchored to the whole tag name."""
    return tuple(re.compile(rf"(?:{p})\Z") for p in patterns)


@lru_cache(maxsize=65536)
def exclusion_for(tag: str) -> Exclusion | None:
    """Return the default exclusion rule that covers `tag`, or None when the tag is kept."""
    rules = DEFAULT_EXCLUSIONS
    for rule, rx in zip(rules, _compiled(tuple(r.pattern for r in rules))):
        if rx.match(tag):
            return rule
    return None


def is_excluded(tag: str) -> bool:
    """True when the tag is left out of the text by default (private or uninformative)."""
    return exclusion_for(tag) is not None


def is_private(tag: str) -> bool:
    """True when the tag identifies a person, a place or one device (dropped from index records)."""
    rule = exclusion_for(tag)
    return rule is not None and rule.category == "private"


def order_key(tag: str) -> tuple[int, str]:
    """Sort key of the canonical order: listed tags first, in list order, then the rest alphabetically."""
    return (_ORDER_INDEX.get(tag, len(_ORDER_INDEX)), tag)


def official_order_key(tag: str) -> tuple[int, str]:
    """Sort key of the YFCC dump's order (OFFICIAL_NAMES); tags outside it follow, alphabetically."""
    return (_OFFICIAL_INDEX.get(tag, len(_OFFICIAL_INDEX)), tag)


def official_name(tag: str) -> str:
    """The name the official texts use for an ExifTool tag ("ISO" -> "ISO Speed Ratings"); else `display_name`."""
    return _OFFICIAL_NAME.get(tag) or display_name(tag)


@lru_cache(maxsize=65536)
def display_name(tag: str) -> str:
    """Render a tag name with spaces: "ExposureTime" -> "Exposure Time", "FNumber" -> "F Number"."""
    if tag in _DISPLAY_OVERRIDES:
        return _DISPLAY_OVERRIDES[tag]
    if tag.startswith("YCbCr") and len(tag) > 5:  # one word: "YCbCr Positioning", not "Y Cb Cr Positioning"
        return "YCbCr " + display_name(tag[5:])
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", tag)  # exposureTime -> exposure Time
    name = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", name)  # ISOSpeed -> ISO Speed
    name = re.sub(r"(?<=[A-Za-z])(?=\d)", " ", name)  # In35mm -> In 35mm
    name = re.sub(r"(?<=\d)(?=[A-Z])", " ", name)  # 35mmFormat stays, 2Value -> 2 Value
    return name


def resolve_subset(subset: "str | list[str] | tuple[str, ...] | None") -> tuple[str, ...] | None:
    """Turn a subset option (None, a named subset, one tag name, or a list) into a tuple of tag names."""
    if subset is None or subset == "all":
        return None
    if isinstance(subset, str):
        return NAMED_SUBSETS.get(subset, (subset,))
    return tuple(subset)


__all__ = [
    "CANONICAL_ORDER",
    "NAMED_SUBSETS",
    "DEFAULT_EXCLUSIONS",
    "Exclusion",
    "exclusion_for",
    "is_excluded",
    "is_private",
    "order_key",
    "display_name",
    "OFFICIAL_NAMES",
    "OFFICIAL_FREQUENT",
    "official_name",
    "official_order_key",
    "resolve_subset",
]
