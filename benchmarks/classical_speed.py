"""Speed of the classical detectors (JPEG grid, double quantisation) on real 1024x768 photos.

    .venv/bin/python benchmarks/classical_speed.py [--photos 5] [--repeats 3] [--learned] [--threads 2]

Times `grid_analysis(pixels)`, `dq_analysis_file(path)` (the file's own DCT coefficients) and
`dq_analysis(pixels)` (block DCT on the grid `grid_origin` finds) on the first N 1024x768 photos of
../shared/data/photos (or $EXIFLANG_DATA/photos), median of `--repeats` runs each, and prints seconds per
image (target <= 2 s on 2 cores). The DQ model caches its quantisation templates per (Q1, Q2) pair; the
"cold" column is the first dq_analysis_file call on a photo with that cache cleared. With `--learned` it
also times `exiflang.detect(image)` with the built-in default model (after one warm-up run, model loaded)
and prints each classical method's time as a ratio against it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def photos(n: int) -> list[Path]:
    """The first n 1024x768 (stored size) JPEG photos of the shared collection, sorted by path."""
    from PIL import Image

    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "photos").is_dir():
        sys.exit("shared photos not found: set EXIFLANG_DATA or place them at ../shared/data/photos")
    out = []
    for path in sorted((root / "photos").rglob("*.jpg")):
        with Image.open(path) as img:
            if img.size == (1024, 768):
                out.append(path)
        if len(out) == n:
            break
    return out


def median_time(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Time the classical detectors (and optionally the learned one) and print seconds per image."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5, help="how many 1024x768 photos (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method and photo (default: %(default)s)")
    parser.add_argument("--learned", action="store_true", help="also time exiflang.detect with the default model")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for --learned (default: %(default)s)")
    args = parser.parse_args(argv)

    from exiflang.forensics import dq, jpeg_grid
    from exiflang.imageio import load_rgb

    paths = photos(args.photos)
    detect = None
    if args.learned:
        import torch

        import exiflang

        torch.set_num_threads(args.threads)
        detect = exiflang.detect
        detect(load_rgb(paths[0])[0])  # warm-up: loads and caches the default model

    header = f"{'photo':52s} {'grid':>7s} {'dq_file':>8s} {'(cold)':>7s} {'dq_pix':>7s}"
    header += f" {'learned':>8s}" if detect else ""
    print(f"seconds per image, median of {args.repeats} runs")
    print(header)
    rows = []
    for path in paths:
        image, _ = load_rgb(path)
        dq._dq_basis.cache_clear()
        t = time.perf_counter()
        dq.dq_analysis_file(path)
        cold = time.perf_counter() - t
        row = {
            "grid": median_time(lambda: jpeg_grid.grid_analysis(image), args.repeats),
            "dq_file": median_time(lambda: dq.dq_analysis_file(path), args.repeats),
            "cold": cold,
            "dq_pix": median_time(lambda: dq.dq_analysis(image), args.repeats),
        }
        if detect:
            row["learned"] = median_time(lambda: detect(image), args.repeats)
        rows.append(row)
        name = str(Path(path.parent.name) / path.name)[:52]
        line = f"{name:52s} {row['grid']:7.3f} {row['dq_file']:8.3f} {row['cold']:7.3f} {row['dq_pix']:7.3f}"
        print(line + (f" {row['learned']:8.3f}" if detect else ""))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    line = f"{'median over photos':52s} {med['grid']:7.3f} {med['dq_file']:8.3f} {med['cold']:7.3f}"
    line += f" {med['dq_pix']:7.3f}"
    print(line + (f" {med['learned']:8.3f}" if detect else ""))
    if detect:
        print("\nratio to the learned detector (classical / learned, median over photos):")
        for key in ("grid", "dq_file", "dq_pix"):
            print(f"  {key:8s} {med[key] / med['learned']:.3f}")
    worst = max(max(r["grid"], r["dq_file"], r["dq_pix"]) for r in rows)
    print(f"\nslowest classical median: {worst:.3f} s   (target <= 2 s on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
