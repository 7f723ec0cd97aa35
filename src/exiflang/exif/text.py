"""EXIF tags -> the text the model reads: "Make: Canon, Model: Canon EOS 40D, Exposure Time: 1/125, ...".

Default format (the official EXIF-as-language code's rules, re-stated from its description):

* ``"Tag Name: value"`` pairs joined with ``", "``, in one fixed canonical order (`tags.CANONICAL_ORDER`,
  then the remaining tags alphabetically); names are ExifTool names split at case changes ("Exposure Time").
* Values: resolutions (X/Y/focal-plane resolution) and exposure bias (ExposureCompensation) are rationals
  turned into integers, truncated toward zero like Python's ``int()`` ("-1/3" -> "0", "300/1" -> "300");
  focal length gets exactly one decimal and keeps its unit ("5.7 mm"; "50 mm" -> "50.0 mm");
  ISO keeps its first token ("100 200" -> "100").
* Every character outside ``[a-zA-Z0-9.,/-]`` is removed, **except spaces**, which are kept and collapsed
  to one (so "Auto, Did not fire" stays readable to a word-piece tokenizer; "YCbCr4:2:0" -> "YCbCr420").
* A value longer than 20 characters after that cleaning becomes "Unknown"; a value that is empty after
  cleaning is dropped together with its tag name.
* Tags in `tags.DEFAULT_EXCLUSIONS` are left out (privacy, or nothing to do with the imaging pipeline).

``value_rules="official"`` instead reproduces the official code's value rules exactly, quirks included (the
`paper` preset uses it, so that the converted official checkpoint reads the texts it was trained on); see
`official_value`. ``tag_names="official"`` and ``order="official"`` use the names and the order of the YFCC100M
EXIF dump the official texts came from (`tags.OFFICIAL_NAMES`), and ``subset="official"`` its >= 49 % tag set
(approximated: `tags.OFFICIAL_FREQUENT`).

`TextConfig` switches each of these for the paper's ablations and is stored in model configs as
``text_format`` (`to_dict()` / `from_dict()`).
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, Mapping

from . import tags as tagtable

_DISALLOWED = re.compile(r"[^a-zA-Z0-9.,/\- ]")
_SPACES = re.compile(r"\s+")
# The official cleaning: everything outside [a-zA-Z0-9.,/-] goes, spaces included.
_OFFICIAL_DISALLOWED = re.compile(r"[^a-zA-Z0-9.,/\-]")
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)(/[-+]?\d+(\.\d*)?)?")

# Rationals turned into integers (the official rule names resolutions and the exposure bias).
INTEGER_TAGS = frozenset({
    "XResolution", "YResolution", "FocalPlaneXResolution", "FocalPlaneYResolution", "ExposureCompensation",
})
FOCAL_LENGTH_TAGS = frozenset({"FocalLength"})
FIRST_TOKEN_TAGS = frozenset({"ISO"})
# The official rule floors the rationals of every tag whose name ends in "Resolution", and of the exposure bias.
OFFICIAL_BIAS_TAGS = frozenset({"ExposureCompensation"})
VALUE_RULES = ("exiflang", "official")
TAG_NAME_STYLES = ("exiftool", "official")
ORDERS = ("canonical", "shuffle", "official")


@dataclass
class TextConfig:
    """How EXIF tags become text; every field is one of the paper's ablation switches."""

    include_names: bool = True  # "Exposure Time: 1/500" (True) or just "1/500" (False)
    order: str = "canonical"  # "canonical", "shuffle" (a seeded random order) or "official" (the YFCC dump's order)
    seed: int = 0  # seed of the "shuffle" order
    subset: str | list[str] | None = None  # None = all; "camera-only", another named subset, one tag, or a list
    min_frequency: float = 0.0  # keep tags present in at least this fraction (0..1) of the collection
    frequent_tags: list[str] | None = None  # filled by with_tag_counts(): the tags that pass min_frequency
    default_exclusions: bool = True  # drop private and uninformative tags (tags.DEFAULT_EXCLUSIONS)
    exclude: list[str] = field(default_factory=list)  # further tag names to drop
    normalize_values: bool = True  # apply `value_rules`; False = ExifTool's values as read
    value_rules: str = "exiflang"  # "exiflang" (readable: spaces kept, ...) or "official" (the official code, exactly)
    tag_names: str = "exiftool"  # "exiftool" ("Exposure Compensation") or "official" ("Exposure Bias Value")
    max_value_chars: int = 20  # longer values become `unknown`
    unknown: str = "Unknown"
    separator: str = ", "

    def __post_init__(self) -> None:
        """Validate the options so that a bad config fails when it is made, not deep inside training."""
        if self.order not in ORDERS:
            raise ValueError(f"TextConfig.order must be one of {ORDERS}, not {self.order!r}")
        if self.value_rules not in VALUE_RULES:
            raise ValueError(f"TextConfig.value_rules must be one of {VALUE_RULES}, not {self.value_rules!r}")
        if self.tag_names not in TAG_NAME_STYLES:
            raise ValueError(f"TextConfig.tag_names must be one of {TAG_NAME_STYLES}, not {self.tag_names!r}")
        if not 0.0 <= float(self.min_frequency) <= 1.0:
            raise ValueError(f"TextConfig.min_frequency is a fraction in [0, 1], not {self.min_frequency!r}")
        if self.max_value_chars < 1:
            raise ValueError("TextConfig.max_value_chars must be positive")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stored in model configs as `text_format`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "TextConfig":
        """Rebuild a config from `to_dict()` output; unknown keys are an error (they would be silently ignored)."""
        if data is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TextConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))

    def with_tag_counts(self, tag_counts: Mapping[str, Any]) -> "TextConfig":
        """Resolve `min_frequency` against an index's tag_counts.json ({"n_photos": N, "counts": {tag: n}})."""
        n_photos = int(tag_counts["n_photos"])
        counts = tag_counts["counts"]
        if n_photos <= 0:
            return replace(self, frequent_tags=[])
        keep = sorted(t for t, n in counts.items() if n / n_photos >= self.min_frequency)
        return replace(self, frequent_tags=keep)


def _as_fraction(value: str) -> Fraction | None:
    """Parse "1/3", "+0.7", "300" (optionally followed by a unit) as a Fraction; None when it isn't numeric."""
    match = _NUMBER.match(value.strip())
    if not match:
        return None
    try:
        return Fraction(match.group(0).replace("+", ""))
    except (ValueError, ZeroDivisionError):
        return None


def normalize_value(tag: str, value: str) -> str:
    """Apply the official value rules that depend on the tag (integers, focal length, ISO first token)."""
    value = value.strip()
    if tag in INTEGER_TAGS:
        number = _as_fraction(value)
        if number is not None:
            return str(int(number))
    elif tag in FOCAL_LENGTH_TAGS:
        number = _as_fraction(value)
        if number is not None:
            unit = " mm" if "mm" in value else ""
            return f"{float(number):.1f}{unit}"
    elif tag in FIRST_TOKEN_TAGS and value:
        return value.split()[0].rstrip(",")
    return value


def clean_value(value: str, max_chars: int = 20, unknown: str = "Unknown") -> str:
    """Strip characters outside [a-zA-Z0-9.,/-] (spaces kept, collapsed); over-long values become `unknown`."""
    cleaned = _SPACES.sub(" ", _DISALLOWED.sub("", value.replace("\t", " "))).strip()
    if len(cleaned) > max_chars:
        return unknown
    return cleaned


def _floor_first_token(value: str) -> str:
    """The official integer rule: floor-divide a leading "a/b" token, keep the rest ("-1/3 EV" -> "-1 EV")."""
    tokens = value.split()  # an empty value has no token: the official code fails there, see official_value
    numerator, *denominators = tokens[0].split("/")
    if denominators:
        try:
            tokens[0] = str(int(numerator) // int(denominators[0]))
        except (ValueError, ZeroDivisionError):
            tokens[0] = numerator  # the official fallback on any failure: the part before the "/"
    return " ".join(tokens)


def _one_decimal_first_token(value: str) -> str:
    """The official focal-length rule: the first token with one decimal, the rest kept ("50 mm" -> "50.0 mm")."""
    tokens = value.split()
    tokens[0] = f"{float(tokens[0]):.1f}"
    return " ".join(tokens)


def official_value(tag: str, value: str, max_chars: int = 20, unknown: str = "Unknown") -> str:
    """The official code's value rule, exactly: tag-specific rules first, else length check and then cleaning.

    * tags named "...Resolution" and the exposure bias: a leading "a/b" is floor-divided ("-1/3" -> "-1"); a value
      without "/" is untouched ("+0.7" stays); the rest of the value (a unit) is kept, whitespace collapsed;
    * focal length: first token with one decimal, rest kept; ISO: first whitespace-separated token;
    * these tags are never cleaned nor length-checked; a value they cannot parse (empty, "50/1 mm" for the focal
      length) becomes `unknown`, as the official loader writes "Unknown" when its rule raises;
    * any other tag: longer than `max_chars` (before cleaning) -> `unknown`, else every character outside
      [a-zA-Z0-9.,/-] is removed, spaces included ("Auto, Did not fire" -> "Auto,Didnotfire"); "" stays "".
    """
    try:
        if tag.endswith("Resolution") or tag in OFFICIAL_BIAS_TAGS:
            return _floor_first_token(value)
        if tag in FOCAL_LENGTH_TAGS:
            return _one_decimal_first_token(value)
        if tag in FIRST_TOKEN_TAGS:
            return value.split()[0]
    except (IndexError, ValueError):
        return unknown
    if len(value) > max_chars:
        return unknown
    return _OFFICIAL_DISALLOWED.sub("", value)


def _render_value(name: str, value: str, cfg: TextConfig) -> str:
    """One tag's value as the text shows it, under cfg's value rules."""
    if not cfg.normalize_values:
        return value
    if cfg.value_rules == "official":
        return official_value(name, value, cfg.max_value_chars, cfg.unknown)
    return clean_value(normalize_value(name, value), cfg.max_value_chars, cfg.unknown)


def _shuffle_key(seed: int, tag: str) -> bytes:
    """A seeded pseudo-random rank of a tag name: the same order for every photo with the same seed."""
    return hashlib.sha1(f"{seed}:{tag}".encode()).digest()


def selected_tags(tags: Mapping[str, str], cfg: TextConfig, tag_counts: Mapping[str, Any] | None = None) -> list[str]:
    """The tag names that appear in the text, before ordering."""
    if cfg.min_frequency > 0 and cfg.frequent_tags is None:
        if tag_counts is None:
            raise ValueError("TextConfig.min_frequency > 0 needs tag_counts (or cfg.with_tag_counts(...) first)")
        cfg = cfg.with_tag_counts(tag_counts)
    subset = tagtable.resolve_subset(cfg.subset)
    names = [t for t in tags if subset is None or t in subset]
    if cfg.default_exclusions:
        names = [t for t in names if not tagtable.is_excluded(t)]
    if cfg.exclude:
        dropped = set(cfg.exclude)
        names = [t for t in names if t not in dropped]
    if cfg.min_frequency > 0:
        frequent = set(cfg.frequent_tags or ())
        names = [t for t in names if t in frequent]
    return names


def exif_to_text(
    tags: Mapping[str, str],
    cfg: TextConfig | None = None,
    *,
    tag_counts: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> str:
    """Render EXIF tags as the model's text; `rng` (optional) shuffles per call when cfg.order == "shuffle"."""
    cfg = cfg or TextConfig()
    names = selected_tags(tags, cfg, tag_counts)
    if cfg.order == "canonical":
        names.sort(key=tagtable.order_key)
    elif cfg.order == "official":
        names.sort(key=tagtable.official_order_key)
    elif rng is not None:
        names.sort()
        rng.shuffle(names)
    else:
        names.sort(key=lambda t: _shuffle_key(cfg.seed, t))
    label = tagtable.official_name if cfg.tag_names == "official" else tagtable.display_name
    parts = []
    for name in names:
        value = _render_value(name, str(tags[name]), cfg)
        if not value and (cfg.value_rules != "official" or not cfg.include_names):
            continue  # the official texts keep an empty value as "Tag: "
        parts.append(f"{label(name)}: {value}" if cfg.include_names else value)
    return cfg.separator.join(parts)


__all__ = ["TextConfig", "exif_to_text", "normalize_value", "clean_value", "official_value", "selected_tags",
           "camera_name"]


def camera_name(make: str | None, model: str | None) -> str:
    """A camera as a reader names it: "Canon PowerShot S400", not "Canon Canon PowerShot S400" (many models
    repeat their make), "NIKON D50" from ("NIKON CORPORATION", "NIKON D50"); "?" for what is missing."""
    make, model = (make or "").strip(), (model or "").strip()
    if not model:
        return make or "?"
    first = make.split()[0].lower() if make else ""
    return model if not make or model.lower().startswith(first) else f"{make} {model}"
