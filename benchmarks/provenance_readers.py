"""Do the metadata checks answer the same through ExifTool and through the pyexiv2 fallback?

Reads every file with both readers of exiflang.exif.provenance (the fallback forced as on a machine without
ExifTool: $EXIFTOOL naming no file) and runs the checks that depend on the reader (software, camera, dimensions,
dates; the thumbnail and Content Credentials checks read the file themselves). Prints, per check, on how many
files the status and the whole line agree, the files that differ, and each reader's time per file.

    PYTHONPATH=$PWD/src python benchmarks/provenance_readers.py [--casia 60]
"""
from __future__ import annotations

import argparse
import collections
import os
import time

from exiflang.errors import ExiflangError
from exiflang.exif.provenance import ProvenanceReader, camera_check, dates_check, dimensions_check, software_check
from exiflang.imageio import load_rgb
from exiflang.paths import shared_data_dir

SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff", ".png", ".heic", ".heif", ".webp")


def _files(casia: int) -> list:
    root = shared_data_dir()
    files = sorted((root / "photos").glob("*/*.jpg"))
    for sub in ("tampered", "authentic"):
        files += sorted((root / "casia1" / sub).glob("*.jpg"))[:casia]
    files += sorted(p for p in (root / "exif-samples").rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    return files


def _checks(reader, path, size, seconds) -> dict:
    t0 = time.perf_counter()
    try:
        meta = reader.metadata(path)
    except ExiflangError as exc:
        return {"metadata": ("unreadable", str(exc))}
    finally:
        seconds.append(time.perf_counter() - t0)
    found = [software_check(meta), camera_check(meta), dimensions_check(meta, *size), dates_check(meta)]
    return {c.id: (c.status, c.text) for c in found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--casia", type=int, default=60, help="CASIA files of each kind (default: %(default)s)")
    args = ap.parse_args()
    exiftool = ProvenanceReader()
    if exiftool.backend != "exiftool":
        raise SystemExit("exiftool is not installed: nothing to compare the fallback with")
    os.environ["EXIFTOOL"] = "/nonexistent/exiftool"  # what a machine without ExifTool gets
    fallback = ProvenanceReader()
    times = {"exiftool": [], "pyexiv2": []}
    status_same, text_same, differ = collections.Counter(), collections.Counter(), collections.defaultdict(list)
    n = 0
    for path in _files(args.casia):
        try:
            height, width = load_rgb(path)[0].shape[:2]
        except ExiflangError:
            continue  # not an image either reader's checks would see
        n += 1
        a = _checks(exiftool, path, (width, height), times["exiftool"])
        b = _checks(fallback, path, (width, height), times["pyexiv2"])
        for check in sorted(set(a) | set(b)):
            status_same[check] += a.get(check, ("",))[0] == b.get(check, ("",))[0]
            text_same[check] += a.get(check) == b.get(check)
            if a.get(check) != b.get(check):
                differ[check].append(f"{path.parent.name}/{path.name}: {a.get(check)} | {b.get(check)}")
    print(f"{n} files (shared photos, {args.casia}+{args.casia} CASIA, exif-samples)")
    for check in sorted(status_same):
        print(f"{check:11s} same status {status_same[check]}/{n}, same line {text_same[check]}/{n}")
        for line in differ[check][:4]:
            print(f"    {line[:220]}")
    et, px = (sum(t) / len(t) * 1000 for t in (times["exiftool"], times["pyexiv2"]))
    print(f"time per file: exiftool {et:.1f} ms, pyexiv2 {px:.1f} ms ({px / et:.2f}x)")
    exiftool.close()


if __name__ == "__main__":
    main()
