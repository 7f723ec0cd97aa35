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
        return (f"in {'(' if meta.get('open_low') else '['}{_number(low)}, {_number(high)}"
                f"{')' if meta.get('open_high') else ']'}")
    if low is not None:
        return f"{'>' if meta.get('open_low') else '>='} {_number(low)}"
    if high is not None:
        return f"{'<' if meta.get('open_high') else '<='} {_number(high)}"
    return ""


def _number(value: float) -> str:
    """A bound or value as people write it: whole numbers in full (4294967295, not 4.29497e+09), others by :g.

    An integer too long to read is cut (a 400-digit one would not even convert to float for :g)."""
    if isinstance(value, int):
        digits = str(value)
        return digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits.lstrip('-'))} digits)"
    if value == value and abs(value) < 1e18 and float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


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
        return f"must be {limits or 'a finite number'}, got {_number(value)}"
    return None


# Upper bounds of the numbers that set a run's memory or time, written once for the CLI flags
# (`exiflang.commands.argtypes`), `TrainOptions` and the Python API (`forensics.Detector`). Each lies far above any
# useful setting and far below what exhausts a machine or runs silently for hours.
MAX_PER_SIDE = 256  # patches along an image's longer side: at most 257 x 257 = 66,049 patches (stride 1 px)
MAX_PIXELS = 100_000_000  # pixels of one image: larger than any consumer camera frame, small enough for memory
MAX_BATCH_SIZE = 4096  # patches per forward pass (4096 patches of 128 px are 0.8 GB of float32 input)
MAX_PATCHES = 4096  # patches sampled from one image (predict-exif, check-exif, probes)
MAX_WORKERS = 64  # worker processes or threads (each a process with its own ExifTool, or a data loader)
MAX_THREADS = 1024  # CPU threads for torch
MAX_CROPS_PER_PHOTO = 256  # training crops cut from one photo per visit
MAX_PHOTOS_PER_BATCH = 4096  # distinct photos in one training step
MAX_STEPS = 10_000_000  # training steps (and any step number: warm-up, --stop-at)
MAX_ITERS = 100  # mean-shift iterations (each one goes over every pair of patches)
MAX_REPEATS = 100  # repeated runs of a measurement (random splits, distortion bins)
MAX_QUEUED = 100  # `serve` uploads waiting for the analyser (each keeps up to --max-upload-mb on disk)
MAX_SEED = 2**32 - 1  # numpy's seed range (torch takes it too); a larger one is an OverflowError, not a seed
MAX_TIMEOUT_S = 3600.0  # seconds allowed for one file
MAX_UPLOAD_MB = 4096.0  # one `serve` upload, held in memory
MAX_UPLOAD_FILES = 1000  # files in one `serve` upload
MAX_IMAGES_PER_CALL = 256  # images one `batch` actor call analyses before it hands its rows back (a listing chunk)
MAX_ROWS_PER_PART = 1_000_000  # rows of one `batch` Parquet part (held in the driver's memory until written)
MAX_GPUS_PER_WORKER = 16.0  # GPUs one `batch` actor asks Ray for
