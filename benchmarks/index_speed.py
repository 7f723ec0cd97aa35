"""Index speed and outcomes: ms per photo (1 vs 2 workers, both readers, re-run), acceptance, exif-samples.

Usage: .venv/bin/python benchmarks/index_speed.py [--photos DIR] [--samples DIR]
Prints a Markdown report (the numbers in docs/results/index.md come from this script).
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from exiflang.data.index import IndexOptions, build_index, iter_records, iter_rejects
from exiflang.exif import ExifReader
from exiflang.exif.exiftool import find_exiftool
from exiflang.paths import shared_data_dir


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ExifTool), so numbers survive a busy machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_index(photos: Path, out: Path, **kwargs) -> tuple[float, float, object]:
    """Build an index and return (wall seconds, CPU seconds, summary)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = build_index(photos, out, progress=False, **kwargs)
    return time.perf_counter() - start, cpu_seconds() - cpu, summary


def exiftool_per_file_vs_batch(files: list[Path]) -> tuple[float, float]:
    """Seconds to read `files` with one ExifTool process per file, and with the batch reader."""
    exe = find_exiftool()
    start = time.perf_counter()
    for f in files:
        subprocess.run([exe, "-j", "-G0", "-EXIF:all", str(f)], capture_output=True, check=False)
    per_file = time.perf_counter() - start
    start = time.perf_counter()
    with ExifReader(backend="exiftool") as reader:
        for f in files:
            reader.read(f)
    return per_file, time.perf_counter() - start


def main() -> None:
    """Run every measurement and print the report."""
    root = shared_data_dir()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=root / "photos" if root else None)
    parser.add_argument("--samples", type=Path, default=root / "exif-samples" if root else None)
    parser.add_argument("--baseline-files", type=int, default=40, help="files for the per-file vs batch ExifTool comparison")
    args = parser.parse_args()
    if args.photos is None or not args.photos.is_dir():
        raise SystemExit("shared photos not found: pass --photos DIR")

    n_photos = sum(1 for _ in csv.DictReader((args.photos / "MANIFEST.csv").open())) if (args.photos / "MANIFEST.csv").is_file() else None
    print(f"# Index benchmark: {args.photos}\n")
    print(f"Machine load average at start: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        runs = [
            ("exiftool, 1 worker (baseline)", tmp / "w1", {"workers": 1}),
            ("exiftool, 2 workers", tmp / "w2", {"workers": 2}),
            ("exiftool, 2 workers, re-run (nothing changed)", tmp / "w2", {"workers": 2}),
            ("exiftool, 2 workers, header only (no pixel decode)", tmp / "hdr", {"workers": 2, "options": IndexOptions(decode="header")}),
            ("pyexiv2 fallback, 2 workers", tmp / "px", {"workers": 2, "backend": "pyexiv2"}),
        ]
        base = None
        for name, out, kw in runs:
            seconds, cpu, summary = timed_index(args.photos, out, **kw)
            per = 1000 * seconds / summary.n_files
            base = base or per
            rows.append((name, summary.n_files, summary.n_examined, seconds, per, base / per,
                          1000 * cpu / summary.n_files, summary.n_accepted))
        print(f"Machine load average after the runs: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)\n")
        print("| run | files | examined | wall s | wall ms per file | speed-up vs baseline | CPU ms per file | accepted |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, n, ex, s, per, ratio, cpu, acc in rows:
            print(f"| {name} | {n} | {ex} | {s:.2f} | {per:.1f} | {ratio:.2f}x | {cpu:.1f} | {acc} |")

        accepted = [r for r in iter_records(tmp / "w2")]
        rejects = list(iter_rejects(tmp / "w2"))
        photo_rejects = [r for r in rejects if r["relpath"] != "MANIFEST.csv"]
        denom = n_photos or (len(accepted) + len(photo_rejects))
        print(f"\nAcceptance: {len(accepted)} of {denom} photos = {100 * len(accepted) / denom:.1f}%")
        for r in photo_rejects:
            print(f"- rejected `{r['relpath']}`: {r['reason']} ({r['detail']})")
        px = {r["relpath"] for r in iter_records(tmp / "px")}
        print(f"pyexiv2 fallback accepts {len(px)}; differs from ExifTool on {len(px ^ {r['relpath'] for r in accepted})} files")

        if find_exiftool():
            files = sorted(args.photos.rglob("*.jpg"))[: args.baseline_files]
            per_file, batch = exiftool_per_file_vs_batch(files)
            print(f"\nExifTool, {len(files)} files: one process per file {1000 * per_file / len(files):.1f} ms/file, "
                  f"batch -stay_open {1000 * batch / len(files):.1f} ms/file ({per_file / batch:.1f}x faster)")

        if args.samples and args.samples.is_dir():
            seconds, _, summary = timed_index(args.samples, tmp / "samples", workers=2)
            print(f"\n## exif-samples: {summary.n_files} files in {seconds:.2f} s: {summary.n_accepted} indexed, "
                  f"{summary.n_rejected} rejected ({', '.join(f'{k} {v}' for k, v in sorted(summary.reasons.items()))})\n")
            print("| file | outcome | detail |")
            print("|---|---|---|")
            outcomes = [(r["relpath"], "indexed", f"{r['n_tags']} tags, {r['width']}x{r['height']}") for r in iter_records(tmp / "samples")]
            outcomes += [(r["relpath"], r["reason"], r["detail"].replace("|", "/")) for r in iter_rejects(tmp / "samples")]
            for rel, outcome, detail in sorted(outcomes):
                print(f"| `{rel}` | {outcome} | {detail} |")


if __name__ == "__main__":
    main()
