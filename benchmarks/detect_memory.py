"""Peak memory and wall time of `exiflang detect --out` as photos grow: 1, 12, 24 and 95 MP.

    .venv/bin/python benchmarks/detect_memory.py [--sizes 1,12,24,95] [--compare REV] [--compare-max-mp 95]

The test photos are made at run time from one real shared photo (``../shared/data/photos``, a 1024x768 camera
JPEG): its pixels are tiled (every other tile mirrored, so there are no hard seams) to about N megapixels in
4:3 and saved as a JPEG (quality 92) under ``runs/detect_memory/``. Each size runs in a fresh child process,
``python -m exiflang detect PHOTO --out DIR --no-exif-check`` (through `PEAK_WRAPPER`), and its peak resident
memory is the ``VmHWM`` the child reads from ``/proc/self/status`` as it exits: the high-water mark of its own
address space since it started. (Not ``ru_maxrss``: Linux carries the parent's peak over fork and exec into
the child's ``ru_maxrss``, so a large parent, such as a test run, would be counted.) ``detect s`` is the
detection time the child itself reports in ``<stem>.json`` (``seconds``: decode, embedding and analysis);
``wall / detect`` is the rest of the command (interpreter and model start, writing the reports) as a ratio.

With ``--compare REV`` the same photos also run through the code of git revision REV (``git archive REV src``
into ``runs/detect_memory/src-REV``), in the same invocation, so the two columns share the machine's load;
``--compare-max-mp`` skips REV's runs above that size (the old code needs about 8.5 GB at 95 MP).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "detect_memory"


def source_photo() -> Path:
    """The first 1024x768 shared camera photo (sorted by path), so every run tiles the same pixels."""
    from PIL import Image

    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "photos").is_dir():
        sys.exit("needs ../shared/data/photos (set EXIFLANG_DATA)")
    for path in sorted((root / "photos").rglob("*.jpg")):
        with Image.open(path) as img:
            if img.size == (1024, 768):
                return path
    sys.exit("no 1024x768 photo in the shared photos")


def make_photo(src: Path, megapixels: float) -> Path:
    """A ~megapixels 4:3 JPEG tiled from the source photo's pixels (made once, reused)."""
    from PIL import Image

    from exiflang.imageio import load_rgb

    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 16)) * 16
    height = int(round(width * 3 / 4 / 16)) * 16
    out = WORK / f"tiled_{megapixels:g}mp_{width}x{height}.jpg"
    if out.is_file():
        return out
    tile, _ = load_rgb(src)
    row = np.concatenate([tile, tile[:, ::-1]], axis=1)  # mirrored neighbours: no seams at tile edges
    block = np.concatenate([row, row[::-1]], axis=0)
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    pixels = np.ascontiguousarray(np.tile(block, reps)[:height, :width])
    WORK.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(out, quality=92)
    return out


def export_revision(rev: str) -> Path:
    """The src/ tree of git revision ``rev`` under runs/detect_memory/src-<rev> (for the baseline column)."""
    dest = WORK / f"src-{rev.replace('/', '_')}"
    if dest.is_dir():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tar = dest / "src.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), rev, "src"], cwd=ROOT, check=True)
    with tarfile.open(tar) as fh:
        fh.extractall(dest, filter="data")
    tar.unlink()
    return dest / "src"


# `python -m exiflang ARGS...` that prints its own peak RSS (VmHWM, kB) as the last line of stderr when it exits.
PEAK_WRAPPER = """
import atexit, runpy, sys
def _peak():
    with open('/proc/self/status') as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith('VmHWM:'))
    sys.stderr.write(f'\\nPEAK_RSS_KB {kb}\\n')
atexit.register(_peak)
sys.argv = ['exiflang'] + sys.argv[1:]
runpy.run_module('exiflang', run_name='__main__', alter_sys=True)
"""


def peak_rss_bytes(stderr: str) -> int:
    """The peak RSS `PEAK_WRAPPER` printed (bytes)."""
    line = [ln for ln in stderr.splitlines() if ln.startswith("PEAK_RSS_KB ")][-1]
    return int(line.split()[1]) * 1024


def run_detect(src: Path, photo: Path, out: Path) -> dict:
    """One `exiflang detect --out` in a child process on the code in ``src``: wall s, peak RSS, detect s."""
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-c", PEAK_WRAPPER, "detect", str(photo), "--out", str(out), "--no-exif-check"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"detect failed on {photo} with {src}:\n{proc.stderr[-2000:]}")
    meta = json.loads((out / f"{photo.stem}.json").read_text())
    npy = out / f"{photo.stem}.heatmap.npy"
    files_mb = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6
    return {"wall_s": wall, "rss_gb": peak_rss_bytes(proc.stderr) / 1e9, "detect_s": float(meta["seconds"]),
            "npy_mb": npy.stat().st_size / 1e6, "files_mb": files_mb}


def main() -> None:
    """Make the photos, run detect on each with this tree (and REV), print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,12,24,95", help="megapixels, comma-separated (default: %(default)s)")
    parser.add_argument("--compare", default=None, metavar="REV", help="also run git revision REV's code (e.g. main)")
    parser.add_argument("--compare-max-mp", type=float, default=95.0, help="largest size REV runs on (default: 95)")
    args = parser.parse_args()
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # this script writes and measures the large test photos itself
    src = source_photo()
    sizes = [float(s) for s in args.sizes.split(",")]
    trees = [("this tree", ROOT / "src")]
    if args.compare:
        trees.insert(0, (args.compare, export_revision(args.compare)))
    print(f"photos tiled from {src.name} ({src.parent.name}); each run: a fresh `python -m exiflang detect PHOTO "
          f"--out DIR --no-exif-check`")
    print(f"{'code':<12} {'photo':>22} {'MP':>6} {'peak RSS GB':>12} {'wall s':>8} {'detect s':>9} "
          f"{'wall/detect':>12} {'heatmap.npy MB':>15} {'all files MB':>13}")
    for mp in sizes:
        photo = make_photo(src, mp)
        from PIL import Image

        with Image.open(photo) as img:
            w, h = img.size
        for name, tree in trees:
            if name != "this tree" and mp > args.compare_max_mp:
                continue
            r = run_detect(tree, photo, WORK / f"out_{mp:g}mp_{'new' if name == 'this tree' else 'old'}")
            print(f"{name:<12} {f'{w}x{h}':>22} {w * h / 1e6:>6.1f} {r['rss_gb']:>12.2f} {r['wall_s']:>8.1f} "
                  f"{r['detect_s']:>9.2f} {r['wall_s'] / r['detect_s']:>11.2f}x {r['npy_mb']:>15.2f} "
                  f"{r['files_mb']:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
