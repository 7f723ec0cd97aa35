"""Argparse types shared by every command: numbers checked against a range, output folders, device names.

A bad value is refused at parse time by argparse itself: one usage line naming the flag, exit 2, before any
work. The ranges are worded by `exiflang.ranges`, the same words `TrainOptions` uses, so `exiflang train`'s
derived flags and every other command's flags speak alike. Every number that sets memory or time has an upper
bound (`exiflang.ranges.MAX_*`); a type's `limits` ("in [1, 256]") is what help texts show of it.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable

from ..device import device_name_problem
from ..ranges import (MAX_BATCH_SIZE, MAX_ITERS, MAX_PATCHES, MAX_PER_SIDE, MAX_PIXELS, MAX_QUEUED, MAX_REPEATS,
                      MAX_SEED, MAX_TIMEOUT_S, MAX_UPLOAD_FILES, MAX_UPLOAD_MB, MAX_WORKERS, describe_range, range_problem)
from ..ranges import MAX_GPUS_PER_WORKER, MAX_IMAGES_PER_CALL, MAX_ROWS_PER_PART


def ranged(convert: Callable[[str], Any], low: float | None = None, high: float | None = None, *,
           open_low: bool = False, open_high: bool = False) -> Callable[[str], Any]:
    """An argparse type: `convert(text)` (int or float) that must lie in the range, else ArgumentTypeError."""
    meta = {"low": low, "high": high, "open_low": open_low, "open_high": open_high}

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        problem = range_problem(value, meta)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its own messages
    parse.limits = describe_range(meta)  # for help texts: "in [1, 256]"
    return parse


positive_int = ranged(int, 1)                          # counts, steps, batch sizes: >= 1
non_negative_int = ranged(int, 0)                       # seeds, optional counts: >= 0
positive_float = ranged(float, 0.0, open_low=True)     # learning rates, timeouts, sizes: > 0
non_negative_float = ranged(float, 0.0)                 # weights, frequencies: >= 0
unit_interval = ranged(float, 0.0, 1.0)                 # probabilities, thresholds, fractions: [0, 1]
open_fraction = ranged(float, 0.0, 1.0, open_low=True, open_high=True)  # a share that leaves both sides some
percentile = ranged(float, 0.0, 100.0, open_low=True)  # (0, 100]
tcp_port = ranged(int, 0, 65535)                        # 0: any free port
at_least_two = ranged(int, 2)                           # bins, classes: one alone says nothing
jpeg_quality = ranged(int, 1, 100)                      # Pillow's JPEG quality scale
# Numbers that set memory or time, with their upper bounds (exiflang.ranges):
per_side_int = ranged(int, 1, MAX_PER_SIDE)            # patches along an image's longer side
batch_size_int = ranged(int, 1, MAX_BATCH_SIZE)        # patches per forward pass
patch_count = ranged(int, 1, MAX_PATCHES)               # patches sampled from one image
worker_count = ranged(int, 1, MAX_WORKERS)              # parallel processes
iteration_count = ranged(int, 1, MAX_ITERS)             # mean-shift iterations
repeat_count = ranged(int, 1, MAX_REPEATS)              # repeated measurements (random splits)
bin_count = ranged(int, 2, MAX_REPEATS)                 # bins: one alone says nothing
seed_int = ranged(int, 0, MAX_SEED)                     # random seeds (numpy's range)
timeout_seconds = ranged(float, 0.0, MAX_TIMEOUT_S, open_low=True)  # seconds allowed for one file
upload_mb = ranged(float, 0.0, MAX_UPLOAD_MB, open_low=True)          # one `serve` upload, in MB
upload_files = ranged(int, 1, MAX_UPLOAD_FILES)                        # files in one `serve` upload
queued_uploads = ranged(int, 1, MAX_QUEUED)                            # `serve` uploads waiting at once
megapixels = ranged(float, 0.0, MAX_PIXELS / 1e6, open_low=True)      # the image loader's limit: no higher one holds
images_per_call = ranged(int, 1, MAX_IMAGES_PER_CALL)                  # images per `batch` actor call
rows_per_part = ranged(int, 1, MAX_ROWS_PER_PART)                      # rows per `batch` Parquet part
gpus_per_worker = ranged(float, 0.0, MAX_GPUS_PER_WORKER)              # GPUs per `batch` actor


def out_dir(text: str) -> Path:
    """An output folder, refused at parse time (nothing is touched) when it is empty (that would be the current
    folder), when the path exists and is not a folder, or when a folder above it is a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is no folder; give a folder name (. for the current one)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder; give a new or existing folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text} cannot be created: {parent} is a file, not a folder")
            break
    return path


def ensure_writable_dir(path: Path, flag: str = "--out") -> Path:
    """Create the output folder and write (then remove) a probe file in it, before any work: an unwritable
    folder (/proc/x, a read-only disk, no permission) is then one CommandError line, not a traceback after
    the analysis ran. The probe is created as the atomic writer creates its temporary files (tempfile.mkstemp)."""
    import tempfile

    from ..errors import CommandError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc})") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".exiflang-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CommandError(f"{flag} {path}: cannot write in the folder ({exc.strerror or exc})") from exc
    return path


def device_name(text: str) -> str:
    """A --device value spelt as one (checked without torch; `exiflang.device.resolve_device` checks the machine)."""
    problem = device_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip().lower()


def add_device_argument(parser: Any, default: str = "cpu", help: str = "torch device") -> None:
    """The --device flag every model-running command takes (spelling checked at parse time)."""
    parser.add_argument("--device", type=device_name, default=default,
                        help=f"{help}: auto, cpu, cuda, cuda:N or mps (default: %(default)s)")


def add_precision_argument(parser: Any) -> None:
    """The --precision flag of the commands that analyse many images (`batch`, `bench`)."""
    from ..forensics.grid import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="the learned encoder's arithmetic. bfloat16: its trunk under bfloat16 autocast, the stem "
                             "and the JPEG-zero features in float32; 1.2-1.3x fewer CPU seconds per photo with the "
                             "default method on a CPU with bfloat16 instructions (AVX512-BF16, AMX), slower on one "
                             "without; maps and scores move slightly (docs/RESULTS.md, "
                             "benchmarks/precision_accuracy.py), so its results carry their own settings digest and "
                             "embedding cache. float32 is exact (default: %(default)s)")


class ProgressLine:
    """Progress messages on stderr for commands without a bar: off with --quiet or when stderr is no terminal."""

    def __init__(self, command: str, quiet: bool) -> None:
        import sys

        self.command = command
        self.enabled = not quiet and sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        """Print `exiflang COMMAND: message` to stderr when enabled."""
        if self.enabled:
            import sys

            print(f"exiflang {self.command}: {message}", file=sys.stderr, flush=True)
