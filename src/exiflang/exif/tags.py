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

# Named tag subsets for the paper's ablations ("which tags does the model need to read?").
NAMED_SUBSETS: dict[str, tuple[str, ...]] = {
    "camera-only": ("Make", "Model"),
    "exposure": ("ExposureTime", "FNumber", "ISO", "FocalLength", "ExposureProgram", "ExposureCompensation"),
    "lens": ("LensMake", "LensModel", "LensInfo", "FocalLength", "FocalLengthIn35mmFormat", "FNumber"),
    "processing": ("WhiteBalance", "ColorSpace", "Contrast", "Saturation", "Sharpness", "CustomRendered",
                   "SceneCaptureType", "CompressedBitsPerPixel", "YCbCrSubSampling"),
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
    "resolve_subset",
]
