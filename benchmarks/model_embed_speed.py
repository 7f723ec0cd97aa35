"""Patch-embedding speed of model configs: seconds to embed N patches (default 900 of 128x128, the dense grid
of a 1024x768 photo) with `encode_image`, inference mode, on CPU (or --device cuda).

    .venv/bin/python benchmarks/model_embed_speed.py                       # small vs tiny vs resnet18
    .venv/bin/python benchmarks/model_embed_speed.py --configs small --repeats 5

The `small` (default) model's budget is about 1.2 s for 900 patches on the 2-core CPU; resnet18 (torchvision
layout) is measured in the same run as the baseline, and each time is also given as a ratio to it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from exiflang.models import create_model


def embed_seconds(config: str, n: int, patch: int | None, batch: int, repeats: int, device: str) -> tuple[float, int]:
    """Median seconds to embed n random patches with a fresh model of this config; also the patch size used."""
    model = create_model(config, seed=0).eval().to(device)
    size = patch or model.patch_size
    x = torch.rand(n, 3, size, size)
    times = []
    with torch.inference_mode():
        model.encode_image(x[:batch].to(device))  # warm-up: allocations and kernel selection
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            for i in range(0, n, batch):
                model.encode_image(x[i:i + batch].to(device))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return statistics.median(times), size


def main() -> None:
    """Measure each config and print a table plus JSON lines."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["small", "tiny", "resnet18"], help="model configs to time")
    ap.add_argument("--baseline", default="resnet18", help="config the others are compared with (default resnet18)")
    ap.add_argument("--patches", type=int, default=900, help="patches per measurement (default 900)")
    ap.add_argument("--patch", type=int, default=128, help="patch size (default 128; 0 = each model's own)")
    ap.add_argument("--batch", type=int, default=150, help="patches per forward pass (default 150)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default 3)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = list(dict.fromkeys([*args.configs, args.baseline]))
    results = {c: embed_seconds(c, args.patches, args.patch or None, args.batch, args.repeats, args.device)
               for c in configs}
    base = results[args.baseline][0]
    print(f"{args.patches} patches, {args.device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for config, (sec, size) in results.items():
        print(f"  {config:10s} {size}x{size}  {sec:6.2f} s  {args.patches / sec:7.0f} patches/s  "
              f"{sec / base:5.2f}x {args.baseline}")
        print(json.dumps({"config": config, "patch": size, "seconds": sec, "ratio_to_baseline": sec / base}))


if __name__ == "__main__":
    main()
