"""Per-image time of `exiflang predict-exif` and `check-exif` with and without the text-embedding cache (issue 14).

Usage: PYTHONPATH=src .venv/bin/python benchmarks/predict_exif_cache.py [--photos N] [--model NAME]

Each photo runs through the real command (`exiflang.cli.main`, in this process, so Python start-up is left out;
the model is loaded by every call, as a user's run does): first with --no-cache (the baseline), then with the cache
in a fresh folder. The first cached call fills the cache (the cold run), the others read it (warm). The CPU time of
each call is reported beside the wall time, so a busy machine shows as a gap between the two. Prints Markdown.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from exiflang.cli import main
from exiflang.paths import CACHE_ENV_VAR, shared_data_dir


def cpu_seconds() -> float:
    """CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one CLI call; its output is swallowed, a failure stops the benchmark."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed ({code}): {err.getvalue()[-500:]}")
    return time.perf_counter() - wall, cpu_seconds() - cpu


def photos(n: int) -> list[Path]:
    """The first photo of the first `n` camera folders of the shared photos."""
    root = shared_data_dir()
    if root is None:
        sys.exit("shared data not found: set EXIFLANG_DATA")
    folders = sorted(p for p in (root / "photos").iterdir() if p.is_dir())[:n]
    return [sorted(f.glob("*.jpg"))[0] for f in folders]


def run(command: list[str], images: list[Path], model: str) -> dict[str, list[tuple[float, float]]]:
    """Baseline, cold and warm times of `command` over `images`."""
    out: dict[str, list[tuple[float, float]]] = {"no cache": [], "cache, cold": [], "cache, warm": []}
    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV_VAR] = cache
        for i, image in enumerate(images):
            out["no cache"].append(timed([*command, str(image), "--model", model, "--no-cache"]))
            out["cache, cold" if i == 0 else "cache, warm"].append(timed([*command, str(image), "--model", model]))
    return out


def main_() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="photos per command (default 4)")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    images = photos(args.photos)
    print(f"{len(images)} photos, model {args.model}, {os.cpu_count()} cores\n")
    print("| command | run | calls | wall s per image (median) | CPU s per image | wall vs no cache |")
    print("|---|---|---:|---:|---:|---:|")
    for name, command in (("predict-exif", ["predict-exif"]), ("check-exif --no-explain",
                                                               ["check-exif", "--no-explain"])):
        times = run(command, images, args.model)
        base = statistics.median(w for w, _ in times["no cache"])
        for label, rows in times.items():
            wall, cpu = statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows)
            print(f"| {name} | {label} | {len(rows)} | {wall:.2f} | {cpu:.2f} | {wall / base:.2f}x |")


if __name__ == "__main__":
    main_()
