"""How the EXIF-thumbnail check (exiflang.exif.thumbnail) answers on the shared photos.

Every shared photo is a lossless 1024x768 centre crop whose EXIF thumbnail still shows the uncropped frame, so
the right answer for its own thumbnail is 'crop'. As a control, each photo is also compared with the thumbnail of
another photo (the one `--offset` places further in the sorted list), where the right answer is 'other'.
Prints the outcome counts and the correlation quantiles of both.

    PYTHONPATH=$PWD/src python benchmarks/thumbnail_check.py [--every 3] [--offset 13]
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from exiflang.exif.thumbnail import compare_thumbnail, extract_thumbnail, thumbnail_rgb
from exiflang.imageio import ImageLoadError, load_rgb
from exiflang.paths import shared_data_dir


def _thumb(path):
    blob = extract_thumbnail(path)
    try:
        return thumbnail_rgb(blob, str(path)) if blob else None
    except ImageLoadError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=3, help="use every n-th photo (default: %(default)s)")
    ap.add_argument("--offset", type=int, default=13, help="the control pairs photo i with photo i+offset")
    args = ap.parse_args()
    files = sorted((shared_data_dir() / "photos").glob("*/*.jpg"))[:: args.every]
    thumbs = [_thumb(f) for f in files]
    t0 = time.perf_counter()
    results = {"own": [], "other photo's": []}
    for i, f in enumerate(files):
        pixels = load_rgb(f)[0]
        for kind, j in (("own", i), ("other photo's", (i + args.offset) % len(files))):
            if thumbs[j] is not None:
                r = compare_thumbnail(thumbs[j], pixels)
                results[kind].append((r.outcome, r.correlation))
    seconds = time.perf_counter() - t0
    print(f"{len(files)} photos ({sum(t is None for t in thumbs)} without a readable thumbnail), "
          f"{seconds / max(len(files), 1) / 2:.3f} s per comparison")
    for kind, rows in results.items():
        r = np.array([c for _, c in rows])
        counts = collections.Counter(o for o, _ in rows)
        print(f"{kind} thumbnail: n={len(rows)} outcomes {dict(counts)}; correlation quantiles 5/50/95 % "
              f"{np.quantile(r, [0.05, 0.5, 0.95]).round(3).tolist()}")


if __name__ == "__main__":
    main()
