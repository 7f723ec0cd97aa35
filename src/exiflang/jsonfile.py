"""The one reader for JSON that a user hands us: model folders' config.json and calibration.json, candidate and
reference lists, training configs.

Such files are untrusted input. Python's decoder turns a file of 100 000 nested brackets into a RecursionError
traceback and reads a file of any size into memory; here both are one-line errors: at most `MAX_BYTES` are read
and nesting deeper than `MAX_DEPTH` is refused (real configs nest three levels).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ExiflangError

MAX_BYTES = 64 << 20
MAX_DEPTH = 32


class JsonFileError(ExiflangError):
    """A JSON file could not be read, parsed, or is too large or too deeply nested."""


def nesting_depth(data: Any) -> int:
    """How deeply lists and objects nest in `data` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(text: str, source: str, error: type[ExiflangError] = JsonFileError) -> Any:
    """Parse JSON text; `error` (naming `source`) for bad syntax, excessive nesting or non-finite constants."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise error(f"{source}: JSON nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise error(f"{source}: invalid JSON ({exc})") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise error(f"{source}: JSON nested too deeply (more than {MAX_DEPTH} levels)")
    return data


def read_json(path: "str | Path", error: type[ExiflangError] = JsonFileError, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse a JSON file of at most `max_bytes`; `error` names the file and the cause."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: too large for a JSON file of this kind (over {max_bytes >> 20} MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    return parse_json(text, str(path), error)


def read_json_object(path: "str | Path", error: type[ExiflangError] = JsonFileError,
                     max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """`read_json` for files whose top level must be an object."""
    data = read_json(path, error, max_bytes)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; a config value of Infinity would slip past every range check."""
    raise ValueError(f"{name} is not a valid JSON value")
