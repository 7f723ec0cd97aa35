"""Speed of splice detection: vectorised consistency vs a loop re-statement, and end-to-end time per photo.

    .venv/bin/python benchmarks/detect_speed.py [--threads 2] [--model default] [--repeats 3]

Part 1 runs the loop version (Python loop over every patch pair for the 4-D vote, per-point mean
shift; tests/reference_consistency.py) and the vectorised one on the *same* embeddings of a
1024x768 image (the 30-per-side grid: 713 patches, 884 cells), checks that their consistency
maps and heatmaps agree (max abs difference <= 1e-5) and prints the speed-up.
Part 2 times `detect()` end to end (pixels in, heatmap + mask + score out; model already loaded)
on a 1024x768 image with the chosen model, after one warm-up run, with a time breakdown.
The image is a shared photo of that size when ../shared/data is present, else a generated composite.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def test_image() -> tuple[np.ndarray, str]:
    """A 1024x768 photo from the shared collection if there is one, else the demo composite."""
    from exiflang.imageio import load_rgb
    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is not None and (root / "photos").is_dir():
        for path in sorted((root / "photos").rglob("*.jpg")):
            arr, _ = load_rgb(path)
            if arr.shape[:2] == (768, 1024):
                return arr, str(path.relative_to(root))
    from exiflang.forensics.synthetic import make_composite

    return make_composite(768, 1024, seed=0)[0], "generated composite (seed 0)"


def compare_versions(emb: np.ndarray, grid) -> dict:
    """Time the loop and vectorised consistency maps on the same embeddings; return times and differences."""
    from exiflang.forensics.consistency import mode_consistency_map
    from exiflang.forensics.heatmap import normalised_inconsistency
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the loop version is a test oracle
    from reference_consistency import loop_mode_consistency_map

    t0 = time.perf_counter()
    slow_mode, slow_vote, slow_r = loop_mode_consistency_map(emb, grid.gy, grid.gx, grid.spread)
    t1 = time.perf_counter()
    fast_times = []
    for _ in range(3):
        s = time.perf_counter()
        fast_mode, fast_vote, fast_r = mode_consistency_map(emb, grid.gy, grid.gx, grid.spread)
        fast_times.append(time.perf_counter() - s)
    return {
        "loop_s": t1 - t0,
        "fast_s": min(fast_times),
        "diff_vote": float(np.abs(slow_vote - fast_vote).max()),
        "diff_mode": float(np.abs(slow_mode - fast_mode).max()),
        "diff_heatmap": float(np.abs(normalised_inconsistency(slow_mode) - normalised_inconsistency(fast_mode)).max()),
        "diff_radius": abs(slow_r - fast_r),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s, the target machine)")
    parser.add_argument("--model", default="default", help="model name or weights folder (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed end-to-end runs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="patches per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--skip-loop", action="store_true", help="only the end-to-end timing")
    args = parser.parse_args(argv)

    import torch

    from exiflang.forensics import detect, embed_patches, resolve_model

    torch.set_num_threads(args.threads)
    image, name = test_image()
    t = time.perf_counter()
    model = resolve_model(args.model, args.device)
    load_s = time.perf_counter() - t
    print(f"image: {name} {image.shape[1]}x{image.shape[0]}; model {model.model_id} "
          f"(loaded in {load_s:.2f} s); torch threads {torch.get_num_threads()}; device {args.device}")
    emb, grid = embed_patches(image, model, batch_size=args.batch_size)
    print(f"grid: {grid.gy}x{grid.gx} = {grid.n_patches} patches of {grid.patch}px, stride {grid.stride}, "
          f"{grid.cell_shape[0]}x{grid.cell_shape[1]} cells, embedding dim {emb.shape[1]}")

    ok = True
    if not args.skip_loop:
        r = compare_versions(emb, grid)
        ok = max(r["diff_mode"], r["diff_heatmap"]) <= 1e-5
        print("\n[consistency map: loop re-statement vs vectorised, same embeddings]")
        print(f"loop       {r['loop_s']:8.3f} s")
        print(f"vectorised {r['fast_s']:8.3f} s   (best of 3)")
        print(f"speed-up   {r['loop_s'] / r['fast_s']:8.1f} x   (target >= 20)")
        print(f"max |diff| vote {r['diff_vote']:.2e}, mode map {r['diff_mode']:.2e}, heatmap {r['diff_heatmap']:.2e}, "
              f"radius {r['diff_radius']:.2e}   ({'OK' if ok else 'FAIL'}: <= 1e-5)")

    print(f"\n[end to end: detect() on the {image.shape[1]}x{image.shape[0]} image, model loaded, batch {args.batch_size}]")
    detect(image, model, batch_size=args.batch_size, device=args.device)  # warm-up
    runs = []
    for _ in range(args.repeats):
        res = detect(image, model, batch_size=args.batch_size, device=args.device)
        runs.append((res.seconds, res.timings))
    med = statistics.median(s for s, _ in runs)
    best = min(runs, key=lambda x: x[0])
    parts = ", ".join(f"{k} {v:.3f}" for k, v in best[1].items() if k != "load_s")
    print(f"seconds per image: median {med:.3f}, best {best[0]:.3f}   (target <= 2 s on 2 cores); best run: {parts}")
    print(f"patches/s in the embedding step: {grid.n_patches / best[1]['embed_s']:.0f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
