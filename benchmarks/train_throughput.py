"""Training throughput: patches/s of the data pipeline alone, the model step alone, and the full loop.

    .venv/bin/python benchmarks/train_throughput.py                 # default config (small) on CPU
    .venv/bin/python benchmarks/train_throughput.py --device cuda --photos-per-batch 64

The data pipeline must cost at most 10% of a full step. Without --index, the shared photos are indexed
into .cache/bench_index first (once).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from exiflang.data.patches import to_float
from exiflang.paths import shared_data_dir
from exiflang.training import TrainOptions, make_loader, prepare

ROOT = Path(__file__).resolve().parents[1]


def default_index() -> Path:
    """Index of the shared photo collection, built once into .cache/bench_index."""
    from exiflang.data.index import build_index

    photos = shared_data_dir()
    if photos is None or not (photos / "photos").is_dir():
        sys.exit("no shared photos found: pass --index or set EXIFLANG_DATA")
    out = ROOT / ".cache" / "bench_index"
    if not (out / "records.jsonl").is_file():
        build_index(photos / "photos", out)
    return out


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_data(run, steps: int, offset: int) -> float:
    """Seconds per step to build a batch and hand it to the device as float."""
    t = time.perf_counter()
    for s in range(offset, offset + steps):
        batch = run.batches[s]
        to_float(batch["pixels"].to(run.device, non_blocking=True))
    sync(run.device)
    return (time.perf_counter() - t) / steps


def time_model(run, steps: int) -> float:
    """Seconds per optimisation step on one fixed, already built batch."""
    batch = run.batches[0]
    run.stepper.step(batch)  # warm-up (allocations, kernel choice)
    sync(run.device)
    t = time.perf_counter()
    for _ in range(steps):
        run.stepper.step(batch)
    sync(run.device)
    return (time.perf_counter() - t) / steps


def time_full(run, steps: int, offset: int) -> float:
    """Seconds per step of the real loop (the training DataLoader feeding the model step)."""
    loader = iter(make_loader(run, offset, offset + steps + 1))
    run.stepper.step(next(loader))  # worker start-up is not part of the steady state
    sync(run.device)
    t = time.perf_counter()
    for batch in loader:
        run.stepper.step(batch)
    sync(run.device)
    return (time.perf_counter() - t) / steps


def main() -> None:
    """Parse options, measure, print one table and a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", help="index folder (default: the shared photos, indexed once)")
    ap.add_argument("--config", default="small", help="model config (default small)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--photos-per-batch", type=int, default=16)
    ap.add_argument("--crops-per-photo", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per measurement (default 8)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--objective", default="exif", choices=["exif", "image-only"])
    ap.add_argument("--text-features", help="frozen-text feature cache file to reuse (see exiflang train)")
    ap.add_argument("--workers", type=int, default=None, help="data workers of the full loop (default: as train)")
    args = ap.parse_args()
    index = Path(args.index) if args.index else default_index()
    with tempfile.TemporaryDirectory() as tmp:
        opt = TrainOptions(index=str(index), out=tmp, config=args.config, device=args.device,
                           photos_per_batch=args.photos_per_batch, crops_per_photo=args.crops_per_photo,
                           threads=args.threads, objective=args.objective, steps=10_000, progress=False,
                           text_features=args.text_features, workers=args.workers)
        run = prepare(opt)
        crops = args.photos_per_batch * args.crops_per_photo
        t_data = time_data(run, args.steps, offset=1)
        t_model = time_model(run, args.steps)
        t_full = time_full(run, args.steps, offset=1 + args.steps)
    rows = [("data pipeline alone", t_data), ("model step alone", t_model), ("full loop", t_full)]
    print(f"config {args.config} on {run.device} ({torch.get_num_threads()} CPU threads), {crops} crops/step "
          f"({args.photos_per_batch} photos x {args.crops_per_photo}), patch {run.model.patch_size}, "
          f"{args.steps} timed steps each")
    for name, sec in rows:
        print(f"  {name:22s} {crops / sec:9.1f} patches/s   {sec * 1000:8.1f} ms/step")
    print(f"  data share of a full step: {t_data / t_full:.1%} if built serially (target <= 10%); "
          f"exposed in the loop (full - model) / full: {max(0.0, t_full - t_model) / t_full:.1%}")
    print(json.dumps({"config": args.config, "device": str(run.device), "crops_per_step": crops,
                      "data_patches_per_s": crops / t_data, "model_patches_per_s": crops / t_model,
                      "full_patches_per_s": crops / t_full, "data_fraction": t_data / t_full,
                      "exposed_data_fraction": max(0.0, t_full - t_model) / t_full}))


if __name__ == "__main__":
    main()
