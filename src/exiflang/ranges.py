"""Allowed ranges of numeric options, written once: what `exiflang` flags and `TrainOptions` both check.

A range is `low`/`high` bounds, each closed unless `open_low`/`open_high`. `describe_range` words it for help
texts and errors ("> 0", ">= 1", "in [0, 1]"); `range_problem` says what is wrong with a value, or None.
"""
from __future__ import annotations

from typing import Any


def describe_range(meta: dict[str, Any]) -> str:
    """'> 0', 'in [0, 1)', '>= 1' ... for a range's bounds, or '' when it has none."""
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"in {'(' if meta.get('open_low') else '['}{low:g}, {high:g}{')' if meta.get('open_high') else ']'}"
    if low is not None:
        return f"{'>' if meta.get('open_low') else '>='} {low:g}"
    if high is not None:
        return f"{'<' if meta.get('open_high') else '<='} {high:g}"
    return ""


def range_problem(value: Any, meta: dict[str, Any]) -> str | None:
    """'must be > 0, got -1' when a number is outside the range (NaN and infinity included), else None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("open_low") else value < low)
    too_high = high is not None and (value >= high if meta.get("open_high") else value > high)
    not_finite = value != value or value in (float("inf"), float("-inf"))  # NaN never compares; inf is no setting
    if too_low or too_high or not_finite:
        limits = describe_range(meta)
        return f"must be {limits or 'a finite number'}, got {value:g}"
    return None
