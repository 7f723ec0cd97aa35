"""In-process fallback reader (pyexiv2) with ExifTool-style tag names and human-readable values.

pyexiv2 returns raw values ("3/2", "16"); ExifTool prints "1.5" and "Off, Did not fire". This module
re-states ExifTool's print conversion for the standard EXIF tags that matter for the text, so both
readers give the same text for the common tags. Rarer tags keep their raw value.
pyexiv2 is imported here only, lazily, so machines without it (e.g. a GPU trainer) still import exiflang.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from .errors import ExifReadError

# Exiv2 names that differ from ExifTool's.
_RENAME = {
    "ISOSpeedRatings": "ISO",
    "PhotographicSensitivity": "ISO",
    "ExposureBiasValue": "ExposureCompensation",
    "DateTime": "ModifyDate",
    "DateTimeDigitized": "CreateDate",
    "PixelXDimension": "ExifImageWidth",
    "PixelYDimension": "ExifImageHeight",
    "ImageLength": "ImageHeight",
    "RelatedImageLength": "RelatedImageHeight",
    "FocalLengthIn35mmFilm": "FocalLengthIn35mmFormat",
    "LensSpecification": "LensInfo",
    "InteroperabilityIndex": "InteropIndex",
    "InteroperabilityVersion": "InteropVersion",
    "CameraOwnerName": "OwnerName",
    "BodySerialNumber": "SerialNumber",
    # Exiv2 follows the TIFF spec (0xfe NewSubfileType, 0xff SubfileType); ExifTool calls them SubfileType and
    # OldSubfileType.
    "NewSubfileType": "SubfileType",
    "SubfileType": "OldSubfileType",
}
# Standard tags that Exiv2 knows in one IFD only ("Exif.Photo.0x9211" in the ExifIFD, "Exif.Image.0xa403" in
# IFD0, "Exif.Image.0x1001"): ExifTool has one tag table for IFD0, ExifIFD and InteropIFD, so it names them
# wherever they are. Only IDs that ExifTool itself names (checked against its Exif.pm) are listed.
_BY_ID = {
    0x829A: "ExposureTime", 0x829D: "FNumber", 0x8822: "ExposureProgram", 0x8824: "SpectralSensitivity",
    0x8827: "ISO", 0x8830: "SensitivityType", 0x8831: "StandardOutputSensitivity",
    0x8832: "RecommendedExposureIndex", 0x8833: "ISOSpeed", 0x9000: "ExifVersion", 0x9003: "DateTimeOriginal",
    0x9004: "CreateDate", 0x9010: "OffsetTime", 0x9011: "OffsetTimeOriginal", 0x9012: "OffsetTimeDigitized",
    0x9101: "ComponentsConfiguration", 0x9102: "CompressedBitsPerPixel", 0x9201: "ShutterSpeedValue",
    0x9202: "ApertureValue", 0x9203: "BrightnessValue", 0x9204: "ExposureCompensation",
    0x9205: "MaxApertureValue", 0x9206: "SubjectDistance", 0x9207: "MeteringMode", 0x9208: "LightSource",
    0x9209: "Flash", 0x920A: "FocalLength", 0x9211: "ImageNumber", 0x9214: "SubjectArea",
    0x9290: "SubSecTime", 0x9291: "SubSecTimeOriginal", 0x9292: "SubSecTimeDigitized",
    0xA000: "FlashpixVersion", 0xA001: "ColorSpace", 0xA002: "ExifImageWidth", 0xA003: "ExifImageHeight",
    0xA20B: "FlashEnergy", 0xA20E: "FocalPlaneXResolution", 0xA20F: "FocalPlaneYResolution",
    0xA210: "FocalPlaneResolutionUnit", 0xA214: "SubjectLocation", 0xA215: "ExposureIndex",
    0xA217: "SensingMethod", 0xA300: "FileSource", 0xA301: "SceneType", 0xA401: "CustomRendered",
    0xA402: "ExposureMode", 0xA403: "WhiteBalance", 0xA404: "DigitalZoomRatio",
    0xA405: "FocalLengthIn35mmFormat", 0xA406: "SceneCaptureType", 0xA407: "GainControl", 0xA408: "Contrast",
    0xA409: "Saturation", 0xA40A: "Sharpness", 0xA40C: "SubjectDistanceRange", 0xA420: "ImageUniqueID",
    0xA430: "OwnerName", 0xA431: "SerialNumber", 0xA432: "LensInfo", 0xA433: "LensMake", 0xA434: "LensModel",
    0xA435: "LensSerialNumber", 0xA460: "CompositeImage",
    0x882A: "TimeZoneOffset", 0xEA1D: "OffsetSchema",
    0x1000: "RelatedImageFileFormat", 0x1001: "RelatedImageWidth", 0x1002: "RelatedImageHeight",
}
_BY_ID_GROUPS = {"Image", "Photo", "Iop"}  # the IFDs that share ExifTool's Exif::Main table (not GPS)
# Pointers and blobs that ExifTool does not list as tags of their own.
_SKIP = {"ExifTag", "GPSTag", "InteroperabilityTag", "MakerNote", "PrintImageMatching", "XMLPacket",
         "JPEGInterchangeFormat", "JPEGInterchangeFormatLength", "IPTCNAA", "InterColorProfile",
         "DeviceSettingDescription"}  # the last one is binary: ExifTool shows no value either
_STANDARD_GROUPS = {"Image", "Photo", "Iop", "GPSInfo"}

_FLASH = {
    0x0: "No Flash", 0x1: "Fired", 0x5: "Fired, Return not detected", 0x7: "Fired, Return detected",
    0x8: "On, Did not fire", 0x9: "On, Fired", 0xD: "On, Return not detected", 0xF: "On, Return detected",
    0x10: "Off, Did not fire", 0x14: "Off, Did not fire, Return not detected", 0x18: "Auto, Did not fire",
    0x19: "Auto, Fired", 0x1D: "Auto, Fired, Return not detected", 0x1F: "Auto, Fired, Return detected",
    0x20: "No flash function", 0x30: "Off, No flash function", 0x41: "Fired, Red-eye reduction",
    0x45: "Fired, Red-eye reduction, Return not detected", 0x47: "Fired, Red-eye reduction, Return detected",
    0x49: "On, Red-eye reduction", 0x4D: "On, Red-eye reduction, Return not detected",
    0x4F: "On, Red-eye reduction, Return detected", 0x50: "Off, Red-eye reduction",
    0x58: "Auto, Did not fire, Red-eye reduction", 0x59: "Auto, Fired, Red-eye reduction",
    0x5D: "Auto, Fired, Red-eye reduction, Return not detected",
    0x5F: "Auto, Fired, Red-eye reduction, Return detected",
}
_ENUMS: dict[str, dict[int, str]] = {
    "Flash": _FLASH,
    "ExposureProgram": {0: "Not Defined", 1: "Manual", 2: "Program AE", 3: "Aperture-priority AE",
                        4: "Shutter speed priority AE", 5: "Creative (Slow speed)", 6: "Action (High speed)",
                        7: "Portrait", 8: "Landscape", 9: "Bulb"},
    "MeteringMode": {0: "Unknown", 1: "Average", 2: "Center-weighted average", 3: "Spot", 4: "Multi-spot",
                     5: "Multi-segment", 6: "Partial", 255: "Other"},
    "LightSource": {0: "Unknown", 1: "Daylight", 2: "Fluorescent", 3: "Tungsten (Incandescent)", 4: "Flash",
                    9: "Fine Weather", 10: "Cloudy", 11: "Shade", 12: "Daylight Fluorescent",
                    13: "Day White Fluorescent", 14: "Cool White Fluorescent", 15: "White Fluorescent",
                    16: "Warm White Fluorescent", 17: "Standard Light A", 18: "Standard Light B",
                    19: "Standard Light C", 20: "D55", 21: "D65", 22: "D75", 23: "D50",
                    24: "ISO Studio Tungsten", 255: "Other"},
    "WhiteBalance": {0: "Auto", 1: "Manual"},
    "ExposureMode": {0: "Auto", 1: "Manual", 2: "Auto bracket"},
    "SceneCaptureType": {0: "Standard", 1: "Landscape", 2: "Portrait", 3: "Night"},
    "ColorSpace": {1: "sRGB", 2: "Adobe RGB", 0xFFFF: "Uncalibrated"},
    "Orientation": {1: "Horizontal (normal)", 2: "Mirror horizontal", 3: "Rotate 180", 4: "Mirror vertical",
                    5: "Mirror horizontal and rotate 270 CW", 6: "Rotate 90 CW",
                    7: "Mirror horizontal and rotate 90 CW", 8: "Rotate 270 CW"},
    "ResolutionUnit": {1: "None", 2: "inches", 3: "cm"},
    "FocalPlaneResolutionUnit": {1: "None", 2: "inches", 3: "cm", 4: "mm", 5: "um"},
    "SensingMethod": {1: "Not defined", 2: "One-chip color area", 3: "Two-chip color area",
                      4: "Three-chip color area", 5: "Color sequential area", 7: "Trilinear",
                      8: "Color sequential linear"},
    "CustomRendered": {0: "Normal", 1: "Custom", 2: "HDR (no original saved)", 3: "HDR (original saved)",
                       4: "Original (for HDR)", 6: "Panorama", 7: "Portrait HDR", 8: "Portrait"},
    "Contrast": {0: "Normal", 1: "Low", 2: "High"},
    "Saturation": {0: "Normal", 1: "Low", 2: "High"},
    "Sharpness": {0: "Normal", 1: "Soft", 2: "Hard"},
    "GainControl": {0: "None", 1: "Low gain up", 2: "High gain up", 3: "Low gain down", 4: "High gain down"},
    "SubjectDistanceRange": {0: "Unknown", 1: "Macro", 2: "Close", 3: "Distant"},
    "YCbCrPositioning": {1: "Centered", 2: "Co-sited"},
    "FileSource": {1: "Film Scanner", 2: "Reflection Print Scanner", 3: "Digital Camera"},
    "SceneType": {1: "Directly photographed"},
    "Compression": {1: "Uncompressed", 6: "JPEG (old-style)", 7: "JPEG"},
    "PhotometricInterpretation": {0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "RGB Palette",
                                  4: "Transparency Mask", 5: "CMYK", 6: "YCbCr", 8: "CIELab", 9: "ICCLab",
                                  10: "ITULab", 32803: "Color Filter Array", 32844: "Pixar LogL",
                                  32845: "Pixar LogLuv", 32892: "Sequential Color Filter", 34892: "Linear Raw",
                                  51177: "Depth Map", 52527: "Semantic Mask"},
    "OldSubfileType": {1: "Full-resolution image", 2: "Reduced-resolution image", 3: "Single page of multi-page image"},
    "CompositeImage": {0: "Unknown", 1: "Not a Composite Image", 2: "General Composite Image",
                       3: "Composite Image Captured While Shooting"},
    "SensitivityType": {0: "Unknown", 1: "Standard Output Sensitivity", 2: "Recommended Exposure Index",
                        3: "ISO Speed", 4: "Standard Output Sensitivity and Recommended Exposure Index",
                        5: "Standard Output Sensitivity and ISO Speed",
                        6: "Recommended Exposure Index and ISO Speed",
                        7: "Standard Output Sensitivity, Recommended Exposure Index and ISO Speed"},
}


def _rational(raw: str) -> Fraction:
    """Parse "a/b" or "a" as a Fraction (raises ValueError/ZeroDivisionError)."""
    return Fraction(raw.split()[0])


def _number(x: float) -> str:
    """Print a number the way ExifTool does: no trailing zeros."""
    return f"{x:.10g}"


def _exposure_time(seconds: float) -> str:
    """ExifTool's exposure time: "1/250" below a quarter second, else decimal seconds.

    Same arithmetic as ExifTool (10 significant digits, then int(0.5 + 1/x)), so "10/615" prints "1/62" and
    "10/1015" prints "1/101" in both readers.
    """
    if 0 < seconds < 0.25001:
        return f"1/{int(0.5 + 1 / seconds)}"
    return f"{seconds:.1f}".removesuffix(".0")


def _float(raw: str) -> float:
    """A rational "a/b" as ExifTool computes it: float division rounded to 10 significant digits."""
    num, _, den = raw.split()[0].partition("/")
    return float(f"{float(num) / float(den) if den else float(num):.10g}")


def _rationals(raw: str) -> str:
    """Space-separated rationals as decimals ("313/1000 329/1000" -> "0.313 0.329"); 0/0 is "undef"."""
    out = []
    for token in raw.split():
        num, _, den = token.partition("/")
        out.append("undef" if den and float(den) == 0 else _number(_float(token)))
    return " ".join(out)


def _cfa_pattern(raw: str) -> str:
    """CFAPattern bytes "0 2 0 2 1 0 2 1" -> "[Green,Red][Blue,Green]" (either byte order of the size)."""
    colours = ["Red", "Green", "Blue", "Cyan", "Magenta", "Yellow", "White"]
    vals = [int(v) for v in raw.split()]
    width, height = max(vals[0], vals[1]), max(vals[2], vals[3])
    cells = vals[4:]
    if width * height != len(cells) or max(cells, default=0) >= len(colours):
        return raw
    rows = [cells[r * width:(r + 1) * width] for r in range(height)]
    return "".join("[" + ",".join(colours[c] for c in row) + "]" for row in rows)


def _signed_fraction(raw: str) -> str:
    """ExifTool's exposure bias (its PrintFraction): "0", "+1", "+1/2", "-2/3", else 3 digits ("+0.3", "-0.66").

    An undefined value (0/0) prints "0", as in ExifTool.
    """
    num, _, den = raw.split()[0].partition("/")
    if den and float(den) == 0:
        return "0"
    value = _float(raw) * 1.00001  # ExifTool's guard against round-off
    if not value:
        return "0"
    for n, suffix in ((1, ""), (2, "/2"), (3, "/3")):
        if int(value * n) / (value * n) > 0.999:
            return f"{int(value * n):+d}{suffix}"
    return f"{value:+.3g}"


def _user_comment(raw: str) -> str:
    """UserComment: Exiv2 prefixes the character set ("charset=Ascii dpreview.com   "); ExifTool shows the text only,
    cut at a NUL and without trailing blanks."""
    text = re.sub(r"\Acharset=\S+ ?", "", raw)
    return text.split("\x00", 1)[0].rstrip(" ")


def _version(raw: str) -> str:
    """Undefined-type version fields: "48 50 51 50" -> "0232".

    Some writers (Google Pixel) store the version as an ASCII string; Exiv2 then gives "0232" itself, which must not
    be read as the single byte 232.
    """
    tokens = raw.split()
    if len(tokens) == 1 and len(tokens[0]) == 4:
        return tokens[0]
    try:
        return "".join(chr(int(b)) for b in tokens)
    except ValueError:
        return raw


_SUBFILE_TYPES = {0: "Full-resolution image", 1: "Reduced-resolution image", 2: "Single page of multi-page image",
                  3: "Single page of multi-page reduced-resolution image", 4: "Transparency mask",
                  5: "Transparency mask of reduced-resolution image", 6: "Transparency mask of multi-page image",
                  7: "Transparency mask of reduced-resolution multi-page image", 8: "Depth map",
                  9: "Depth map of reduced-resolution image", 16: "Enhanced image data",
                  0x10001: "Alternate reduced-resolution image", 0x10004: "Semantic Mask", 0xFFFFFFFF: "invalid"}
_SUBFILE_BITS = ("Reduced resolution", "Single page", "Transparency mask", "TIFF/IT final page",
                 "TIFF-FX mixed raster content")


def _subfile_type(raw: str) -> str:
    """SubfileType (TIFF NewSubfileType): ExifTool's names, else its list of set bits ("Single page, [5]")."""
    code = int(raw.split()[0])
    if code in _SUBFILE_TYPES:
        return _SUBFILE_TYPES[code]
    bits = [_SUBFILE_BITS[b] if b < len(_SUBFILE_BITS) else f"[{b}]" for b in range(32) if code >> b & 1]
    return ", ".join(bits) or "(none)"


def _shutter_speed(raw: str) -> str:
    """ShutterSpeedValue (APEX): 2**-v; like ExifTool, an undefined (0/0) or absurd (|v| >= 100) value gives 0."""
    num, _, den = raw.split()[0].partition("/")
    if den and float(den) == 0:
        return _exposure_time(0)
    value = _float(raw)
    return _exposure_time(2 ** -value if abs(value) < 100 else 0)


_INTEROP_INDEX = {"R98": "R98 - DCF basic file (sRGB)", "R03": "R03 - DCF option file (Adobe RGB)",
                  "THM": "THM - DCF thumbnail file"}


def _components(raw: str) -> str:
    """ComponentsConfiguration "1 2 3 0" -> "Y, Cb, Cr, -"."""
    names = {0: "-", 1: "Y", 2: "Cb", 3: "Cr", 4: "R", 5: "G", 6: "B"}
    return ", ".join(names.get(int(b), "?") for b in raw.split())


def _lens_info(raw: str) -> str:
    """LensSpecification "min max fmin fmax" -> "18-55mm f/3.5-5.6"."""
    vals = [float(_rational(v)) if _rational(v).denominator else 0.0 for v in raw.split()]
    if len(vals) != 4:
        return raw
    focal = _number(vals[0]) if vals[0] == vals[1] else f"{_number(vals[0])}-{_number(vals[1])}"
    aperture = _number(vals[2]) if vals[2] == vals[3] else f"{_number(vals[2])}-{_number(vals[3])}"
    return f"{focal}mm f/{aperture}"


_CONVERTERS: dict[str, Callable[[str], str]] = {
    "ExposureTime": lambda r: _exposure_time(_float(r)),
    "ShutterSpeedValue": _shutter_speed,
    "FNumber": lambda r: f"{float(_rational(r)):.1f}",
    "ApertureValue": lambda r: f"{2 ** (float(_rational(r)) / 2):.1f}",
    "MaxApertureValue": lambda r: f"{2 ** (float(_rational(r)) / 2):.1f}",
    "FocalLength": lambda r: f"{float(_rational(r)):.1f} mm",
    "FocalLengthIn35mmFormat": lambda r: f"{int(r.split()[0])} mm",
    "ExposureCompensation": _signed_fraction,
    "UserComment": _user_comment,
    "BrightnessValue": lambda r: _number(float(_rational(r))),
    "DigitalZoomRatio": _rationals,
    "CompressedBitsPerPixel": lambda r: _number(float(_rational(r))),
    "SubjectDistance": lambda r: f"{_number(float(_rational(r)))} m",
    "XResolution": lambda r: _number(float(_rational(r))),
    "YResolution": lambda r: _number(float(_rational(r))),
    "FocalPlaneXResolution": lambda r: _number(float(_rational(r))),
    "FocalPlaneYResolution": lambda r: _number(float(_rational(r))),
    "ExifVersion": _version,
    "FlashpixVersion": _version,
    "InteropVersion": _version,
    "ComponentsConfiguration": _components,
    "LensInfo": _lens_info,
    "CFAPattern": _cfa_pattern,
    # ExifTool prints a value outside its list as "Unknown (value)", an empty one included ("Unknown ()").
    "InteropIndex": lambda r: _INTEROP_INDEX.get(r.strip(), f"Unknown ({r})"),
    "SubfileType": _subfile_type,
}
_RATIONAL_VALUE = re.compile(r"-?\d+/\d+( -?\d+/\d+)*")


def print_value(tag: str, raw: str) -> str:
    """ExifTool-style human-readable value of a raw Exiv2 value (raw value when no rule applies)."""
    try:
        if tag in _ENUMS:
            code = int(raw.split()[0])
            return _ENUMS[tag].get(code, f"Unknown ({code})")
        if tag in _CONVERTERS:
            return _CONVERTERS[tag](raw)
        if _RATIONAL_VALUE.fullmatch(raw.strip()):  # other rational tags: ExifTool prints decimals
            return _rationals(raw)
    except (ValueError, ZeroDivisionError, IndexError, OverflowError):
        pass  # malformed value: keep it raw rather than lose the tag
    return raw


def _split_key(key: str) -> tuple[str, str, str]:
    """'Exif.Photo.FNumber' -> ('Exif', 'Photo', 'FNumber')."""
    family, _, rest = key.partition(".")
    group, _, name = rest.partition(".")
    return family, group, name


def read_with_pyexiv2(path: str | Path, makernotes: bool = False) -> dict[str, Any]:
    """Read a file with pyexiv2 into the same shape as ExifTool's -G0 JSON ("EXIF:Make": "Canon", ...)."""
    try:
        import pyexiv2  # lazy: only the fallback needs it
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ExifReadError(path, "neither ExifTool nor pyexiv2 is available to read EXIF") from exc
    path = str(path)
    # Mute Exiv2's log: at its default level pyexiv2 prints warnings and turns recoverable MakerNote
    # errors into exceptions, losing every tag of a file that ExifTool reads fine.
    pyexiv2.set_log_level(4)
    try:
        img = pyexiv2.Image(path)
    except Exception as exc:  # pyexiv2 raises plain RuntimeError/Exception for broken files
        raise ExifReadError(path, f"pyexiv2 cannot open the file ({exc})") from exc
    try:
        exif = _read_dict(img.read_exif, path)
        xmp = _read_dict(img.read_xmp, path, required=False)
        iptc = _read_dict(img.read_iptc, path, required=False)
        comment = _read_dict(lambda encoding: {"File:Comment": img.read_comment(encoding)}, path, required=False)
    finally:
        img.close()
    if not exif and _is_heif(path):
        exif = _heif_exif_via_libheif(path)
    out: dict[str, Any] = {"SourceFile": path}
    for key, raw in exif.items():
        family, group, name = _split_key(key)
        if name.startswith("0x") and group in _BY_ID_GROUPS:
            name = _BY_ID.get(int(name, 16), name)  # already ExifTool's name
        elif name in _RENAME:
            name = _RENAME[name]
        if group == "Thumbnail" or name in _SKIP or name.startswith("0x") or not isinstance(raw, str):
            continue
        if group in _STANDARD_GROUPS:
            out.setdefault(f"EXIF:{name}", print_value(name, raw))
        elif makernotes:
            out.setdefault(f"MakerNotes:{name}", raw)
    text = _unknown_text_makernote(exif)
    if text is not None:
        out.setdefault("EXIF:MakerNoteUnknownText", text)
    out.update(_xmp_tags(xmp))
    out.update({_IPTC_NAMES[k]: v for k, v in iptc.items() if k in _IPTC_NAMES})
    if str(comment.get("File:Comment") or "").strip():
        out["File:Comment"] = comment["File:Comment"]
    return out


# The XMP properties and IPTC datasets the provenance checks read (exif.provenance: editing software, dates),
# under ExifTool's -G0 names. Exiv2 names an XMP property with its namespace ("Xmp.tiff.Software"), ExifTool by
# the property alone, capitalised ("XMP:Software").
_XMP_WANTED = re.compile(r"CreatorTool|.*Software|.*SoftwareAgent|CreateDate|ModifyDate|DateTimeOriginal")
_XMP_DATES = ("CreateDate", "ModifyDate", "DateTimeOriginal")
_IPTC_NAMES = {"Iptc.Application2.Program": "IPTC:OriginatingProgram",
               "Iptc.Application2.ProgramVersion": "IPTC:ProgramVersion"}


def _xmp_tags(xmp: dict[str, Any]) -> dict[str, Any]:
    """The wanted top-level XMP properties ("XMP:CreatorTool", dates as ExifTool prints them) and the software
    agents of the edit history ("XMP:HistorySoftwareAgent", a list, as in ExifTool's JSON)."""
    out: dict[str, Any] = {}
    for key, value in xmp.items():
        name = key.split(".", 2)[-1]
        if "/" in name or "[" in name or not isinstance(value, str):
            continue  # structures, arrays, language alternatives: none of the wanted properties is one
        name = name[:1].upper() + name[1:]
        if _XMP_WANTED.fullmatch(name):
            out.setdefault(f"XMP:{name}", xmp_date(value) if name in _XMP_DATES else value)
    agents = [v for k, v in xmp.items() if k.startswith("Xmp.xmpMM.History") and k.endswith("softwareAgent")]
    if agents:
        out["XMP:HistorySoftwareAgent"] = agents
    return out


def xmp_date(value: str) -> str:
    """An XMP date as ExifTool prints it, EXIF style: "2005-09-07T15:07:40-07:00" -> "2005:09:07 15:07:40-07:00",
    "2005-09" -> "2005:09"; anything else unchanged."""
    text = value.strip()
    found = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d:\d\d)(:\d\d)?(\S*)", text)
    if found:
        year, month, day, minutes, seconds, rest = found.groups()
        return f"{year}:{month}:{day} {minutes}{seconds or ''}{rest}"
    if re.match(r"\d{4}(-\d\d){0,2}", text):
        return text.replace("-", ":")
    return value


def _unknown_text_makernote(exif: dict[str, Any]) -> str | None:
    """ExifTool's MakerNoteUnknownText: a MakerNote that no maker's format claims and that is plain text.

    Phones (Motorola/Google Camera "com.google.android.GoogleCamera 2.2.024 ...", vivo "0") write such notes.
    ExifTool lists them as an EXIF tag when the bytes are printable ASCII followed only by NULs, and only when
    at most 64 bytes long (longer ones become binary data, which the readers drop). Exiv2 marks a MakerNote it
    parses with Exif.MakerNote.Offset; an unparsed one is only the raw bytes, "99 111 109 ...".
    """
    raw = exif.get("Exif.Photo.MakerNote")
    if not isinstance(raw, str) or "Exif.MakerNote.Offset" in exif:
        return None
    try:
        data = bytes(int(b) for b in raw.split())
    except ValueError:  # not a byte list (or a byte out of range)
        return None
    if len(data) > 64 or not re.fullmatch(rb"[\x09\x0d\x0a\x20-\x7e]+\x00*", data):
        return None
    return data.rstrip(b"\x00").decode("ascii")


def _is_heif(path: str) -> bool:
    """An ISO-BMFF image (HEIC/HEIF/AVIF): 'ftyp' at byte 4 with an image brand."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif")


def _heif_exif_via_libheif(path: str) -> dict:
    """EXIF of a HEIF file whose Exif item Exiv2's BMFF parser misses: libheif (pillow-heif) extracts the block,
    and pyexiv2 parses it from a tiny in-memory JPEG carrying it, so values get the same print conversion."""
    import io

    import pyexiv2
    from PIL import Image

    from ..imageio import HEIF_SUPPORTED  # importing it registers the HEIF opener with Pillow

    if not HEIF_SUPPORTED:
        return {}
    try:
        with Image.open(path) as im:
            block = im.info.get("exif")
        if not block:
            return {}
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "JPEG", exif=block)
        data = pyexiv2.ImageData(buf.getvalue())
    except Exception:  # noqa: BLE001 - a broken file: no EXIF rather than a crash, as for any other fallback miss
        return {}
    try:
        return _read_dict(data.read_exif, path, required=False)
    finally:
        data.close()


def _read_dict(reader: Callable[..., dict], path: str, required: bool = True) -> dict:
    """Call a pyexiv2 read_* method, retrying in Latin-1 when the strings are not UTF-8."""
    for encoding in ("utf-8", "latin-1"):
        try:
            return reader(encoding=encoding)
        except UnicodeDecodeError:
            continue
        except Exception as exc:
            if not required:
                return {}
            raise ExifReadError(path, f"pyexiv2 cannot read EXIF ({exc})") from exc
    return {}


__all__ = ["read_with_pyexiv2", "print_value", "xmp_date"]
