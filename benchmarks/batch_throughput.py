"""Photos per second: `exiflang batch` on Ray with 1, 2 and 4 workers against single-process detection, in one run.

    .venv/bin/python benchmarks/batch_throughput.py [--n 1000] [--workers 1,2,4] [--method fusion] [--per-side N]
                                                    [--compile-workers 2] [--bf16-workers 2] [--baseline 1caadd9]

The N images are the shared 1024x768 photos, taken in turn; from the second round on, each copy gets a few bytes
after the JPEG's end-of-image marker (same pixels, same work, another content hash, so nothing counts as done).
Rows, all on the same N images:

* ``detect (1 process)``: the single-process path of `exiflang detect` (the method built once, then decode +
  analyse for each image, as `exiflang detect` without --out does), torch on all CPU threads, in a fresh process;
* ``detect (1 process), code at REV``: the same loop run by the package as it was at git revision REV (`--baseline`;
  its ``src/`` is taken with `git archive` into a temporary folder): "today's code" of issue 23, item 4, beside
  this one in the same run, so the per-photo speed-up and the goal (2x its warm throughput) are measured, not
  multiplied from other days' figures;
* ``batch, W worker(s)``: `exiflang batch FOLDER --workers W` in a fresh process (a local Ray cluster, W actors of
  one CPU each); ``wall`` counts everything from the command's start (Ray, model loading in every worker), ``warm``
  leaves out the fixed costs, measured by running the same command again on the finished table (it skips every
  image but lists and hashes them, starts Ray and builds every worker's model);
* ``batch, W worker(s), --compile``: the same with each worker's image encoder compiled (`models.compiled`);
* ``batch, W worker(s), --precision bfloat16``: the same with the encoder's trunk in bfloat16 (maps not identical:
  their accuracy is benchmarks/precision_accuracy.py's table);
* the per-photo speed-up of the compiled and of the bfloat16 encoder, one thread, CPU seconds of the embedding step
  per photo (about half of a photo's time with the fusion at 15 per side), eager, compiled and bfloat16 on the same
  photos in turn, with the largest differences of their heatmap cells and scores from eager's.

Every time is measured in this run on this machine: compare the rows with each other, not with other machines. On
a machine shared with other work the rows run one after another under whatever load there is; the 1-minute load
average after each row is printed beside it, and the per-photo row counts CPU seconds, which load changes least.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def make_images(n: int, out: Path) -> list[Path]:
    """N JPEG files from the shared 1024x768 photos (copies of repeated photos differ after their end marker)."""
    from PIL import Image

    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "photos").is_dir():
        sys.exit("the shared photos are needed: set EXIFLANG_DATA or place them at ../shared/data/photos")
    photos = [p for p in sorted((root / "photos").rglob("*.jpg")) if Image.open(p).size == (1024, 768)]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src, dst = photos[i % len(photos)], out / f"img{i:05d}.jpg"
        data = src.read_bytes()
        dst.write_bytes(data if i < len(photos) else data + f"exiflang-copy-{i}".encode())
        paths.append(dst)
    return paths


def single_process_in(src: Path, paths: list[Path], method_name: str, per_side: int) -> dict:
    """`single_process` in a fresh Python whose `exiflang` is the package under ``src``."""
    listing = Path(tempfile.mkdtemp(prefix="paths-")) / "paths.txt"
    listing.write_text("\n".join(map(str, paths)))
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import batch_throughput as b; "
            "paths = [Path(p) for p in Path(sys.argv[2]).read_text().split(chr(10))]; "
            "print(json.dumps(b.single_process(paths, sys.argv[3], int(sys.argv[4]))))")
    proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(listing), method_name,
                           str(per_side)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    shutil.rmtree(listing.parent, ignore_errors=True)
    if proc.returncode != 0:
        sys.exit(f"single-process detection with {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def source_at(revision: str, out: Path) -> Path:
    """The package's src/ as it was at a git revision, extracted under out (git archive: no checkout touched)."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", revision, "src"], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"cannot read src/ at {revision}: {archive.stderr.decode(errors='replace').strip()}")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out / "src"


def single_process(paths: list[Path], method_name: str, per_side: int) -> dict:
    """Warm photos/s of the single-process detection loop (model built once, torch on every CPU thread)."""
    import torch

    from exiflang.eval.methods import analyse_file, build_method

    torch.set_num_threads(os.cpu_count() or 1)
    method = build_method(method_name, per_side=per_side)
    analyse_file(method, paths[0])  # warm-up, not timed
    t0 = time.perf_counter()
    for path in paths:
        analyse_file(method, path)
    seconds = time.perf_counter() - t0
    return {"photos_per_s": len(paths) / seconds, "seconds": seconds, "threads": torch.get_num_threads()}


def ray_batch(folder: Path, workers: int, method_name: str, per_side: int, extra: list[str]) -> dict:
    """`exiflang batch FOLDER --workers W` in a fresh process, then the same command again on its finished table:
    that second run analyses nothing but pays every fixed cost (listing and hashing the files, starting Ray, building
    the workers' models, compiling), so N / (first - second) is the warm rate."""
    from exiflang.eval.batch_io import read_progress

    out = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    cmd = [sys.executable, "-m", "exiflang", "batch", str(folder), "--out", str(out), "--workers", str(workers),
           "--method", method_name, "--per-side", str(per_side), *extra]
    walls, progress = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
        walls.append(time.perf_counter() - t0)
        progress.append(read_progress(out) or {})
        if proc.returncode != 0 or not progress[-1]:
            sys.exit(f"batch with {workers} worker(s) failed:\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    n = progress[0]["analysed"]
    assert progress[1]["analysed"] == 0 and progress[1]["skipped"] == n, "the second run should skip every image"
    return {"photos_per_s": n / walls[0], "warm_photos_per_s": n / (walls[0] - walls[1]), "seconds": walls[0],
            "fixed_cost_s": walls[1], "failed": progress[0]["failed"]}


def compiled_speedup(paths: list[Path], per_side: int, rounds: int = 2) -> dict:
    """Eager vs compiled vs bfloat16 encoder, one torch thread: CPU seconds of the embedding step per photo (the step
    they replace; the consistency step's numpy calls may spin BLAS threads, whose CPU time under load says nothing
    about the encoder), rotating which goes first; and the largest differences of the maps from eager's."""
    import torch

    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb
    from exiflang.models.compiled import compile_image_encoder

    torch.set_num_threads(1)
    eager, fast = Detector.load("default", per_side=per_side), Detector.load("default", per_side=per_side)
    fast.model = _copy_model(fast.model)
    t0 = time.perf_counter()
    assert compile_image_encoder(fast.model, fast.batch_size, log=print)
    compile_s = time.perf_counter() - t0
    half = Detector.load("default", per_side=per_side, precision="bfloat16")
    images = [load_rgb(p)[0] for p in paths]
    times = {"eager": 0.0, "compiled": 0.0, "bfloat16": 0.0}
    diffs = {name: {"map": 0.0, "score": 0.0} for name in ("compiled", "bfloat16")}
    for i in range(rounds * len(images)):
        image, results = images[i % len(images)], {}
        order = [("eager", eager), ("compiled", fast), ("bfloat16", half)]
        for name, det in order[i % 3:] + order[:i % 3]:
            t = time.process_time()
            emb, grid = det.embed(image)
            times[name] += time.process_time() - t
            results[name] = det.analyse_embeddings(emb, grid)
        for name, d in diffs.items():
            d["map"] = max(d["map"], float(np.abs(results["eager"].cell_heatmap - results[name].cell_heatmap).max()))
            d["score"] = max(d["score"], abs(results["eager"].score - results[name].score))
    n = rounds * len(images)
    return {"eager_cpu_s": times["eager"] / n, "compiled_cpu_s": times["compiled"] / n,
            "bfloat16_cpu_s": times["bfloat16"] / n, "compile_s": compile_s, "max_map_diff": diffs["compiled"]["map"],
            "max_score_diff": diffs["compiled"]["score"], "bf16_map_diff": diffs["bfloat16"]["map"],
            "bf16_score_diff": diffs["bfloat16"]["score"], "photos": len(images)}


def _copy_model(model):
    """A second model object (the loader caches one per name), so the eager detector keeps its encoder."""
    import copy

    return copy.deepcopy(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images (default: %(default)s)")
    parser.add_argument("--workers", default="1,2,4", help="Ray worker counts to time (default: %(default)s)")
    parser.add_argument("--compile-workers", type=int, default=2,
                        help="also time this worker count with --compile (0: skip; default: %(default)s)")
    parser.add_argument("--bf16-workers", type=int, default=2,
                        help="also time this worker count with --precision bfloat16 (0: skip; default: %(default)s)")
    parser.add_argument("--method", default="fusion", help="the detector, on both paths (default: %(default)s, "
                        "the default of `exiflang detect` and `exiflang batch`)")
    parser.add_argument("--per-side", type=int, default=None,
                        help="patches per side (default: the density the method's verdict was calibrated at)")
    parser.add_argument("--speedup-photos", type=int, default=5, help="photos for the eager/compiled row (default: %(default)s)")
    parser.add_argument("--baseline", default="1caadd9", metavar="REV",
                        help="also time single-process detection with the code at this git revision ('' to skip; "
                             "default: %(default)s, the code before the fusion counted the JPEG-grid votes once)")
    args = parser.parse_args(argv)
    from exiflang.eval.methods import default_per_side

    args.per_side = args.per_side or default_per_side(args.method)

    work = Path(tempfile.mkdtemp(prefix="batch-throughput-"))
    try:
        paths = make_images(args.n, work / "images")
        print(f"{len(paths)} images of 1024x768 from the shared photos, method {args.method}, {args.per_side} "
              f"patches per side, {os.cpu_count()} CPU cores", flush=True)
        rows = []
        if args.baseline:
            old = single_process_in(source_at(args.baseline, work / "baseline"), paths, args.method, args.per_side)
            rows.append((f"detect (1 process), code at {args.baseline}", {**old, "load": os.getloadavg()[0]}))
            print(json.dumps(rows[-1]), flush=True)
        single = single_process_in(SRC, paths, args.method, args.per_side)
        rows.append(("detect (1 process)", {**single, "load": os.getloadavg()[0]}))
        print(json.dumps(rows[-1]), flush=True)
        runs = [(int(w), []) for w in args.workers.split(",")]
        runs += [(args.compile_workers, ["--compile"])] if args.compile_workers else []
        runs += [(args.bf16_workers, ["--precision", "bfloat16"])] if args.bf16_workers else []
        for workers, extra in runs:
            label = f"batch, {workers} worker(s)" + "".join(f", {a}" if a.startswith("--") else f" {a}" for a in extra)
            rows.append((label, {**ray_batch(work / "images", workers, args.method, args.per_side, extra),
                                 "load": os.getloadavg()[0]}))
            print(label, json.dumps(rows[-1][1]), flush=True)
        speed = compiled_speedup(paths[: args.speedup_photos], args.per_side)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0][1]["photos_per_s"]
    print(f"\n| run | photos/s (wall) | photos/s (warm) | vs {rows[0][0]} (warm) | load average after |\n|---|---|---|---|---|")
    for label, r in rows:
        warm = r.get("warm_photos_per_s") or r["photos_per_s"]
        print(f"| {label} | {r['photos_per_s']:.3f} | {warm:.3f} | {warm / base:.2f}x | {r['load']:.1f} |")
    print(f"| embedding step, 1 thread: eager encoder | | {speed['eager_cpu_s']:.3f} CPU s/photo | 1.00x | |")
    print(f"| embedding step, 1 thread: compiled encoder | | {speed['compiled_cpu_s']:.3f} CPU s/photo | "
          f"{speed['eager_cpu_s'] / speed['compiled_cpu_s']:.2f}x | |")
    print(f"| embedding step, 1 thread: bfloat16 trunk | | {speed['bfloat16_cpu_s']:.3f} CPU s/photo | "
          f"{speed['eager_cpu_s'] / speed['bfloat16_cpu_s']:.2f}x | |")
    print(f"\ncompiled vs eager on {speed['photos']} photos (each twice): max |heatmap cell diff| {speed['max_map_diff']:.1e}, "
          f"max |score diff| {speed['max_score_diff']:.1e} (must be <= 1e-4); compiling took {speed['compile_s']:.0f} s")
    print(f"bfloat16 vs eager: max |heatmap cell diff| {speed['bf16_map_diff']:.1e}, max |score diff| "
          f"{speed['bf16_score_diff']:.1e} (another arithmetic: its accuracy is benchmarks/precision_accuracy.py's)")
    return 0 if max(speed["max_map_diff"], speed["max_score_diff"]) <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
