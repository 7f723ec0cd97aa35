"""Official-checkpoint conversion: time, exactness against the official forward pass, and CPU cost of the paper model.

Builds a checkpoint with the official layout and shapes (random weights, as `tests/official_layout.py` does),
converts it with `exiflang convert-official`'s code path, loads it with `exiflang.load_model`, and prints:
file size, read/convert/load seconds, the largest deviation of `encode_image` / `encode_tokens` from the
official forward pass, and patches/s of the converted model against the reference module on the same inputs.

    .venv/bin/python benchmarks/official_conversion.py [--patches 64] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from official_layout import build_reference, save_like_official  # noqa: E402

import exiflang  # noqa: E402
from exiflang.models.convert_official import convert_weights, read_official_checkpoint  # noqa: E402


def _rate(fn, x: torch.Tensor, batch: int) -> float:
    """Patches per second of `fn` over `x` in batches (after one warm-up batch)."""
    with torch.no_grad():
        fn(x[:batch])
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            fn(x[i:i + batch])
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    """Run the measurements and print one line per number."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=64, help="128x128 patches timed per model (default 64)")
    parser.add_argument("--batch", type=int, default=32, help="patches per forward pass (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ref = build_reference(seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "wrapper_75_new.pth", Path(tmp) / "official"
        save_like_official(ref, ckpt)
        t0 = time.perf_counter()
        weights = read_official_checkpoint(ckpt)
        t1 = time.perf_counter()
        report = convert_weights(weights, out)
        t2 = time.perf_counter()
        model = exiflang.load_model(out)
        t3 = time.perf_counter()
        size_mb = ckpt.stat().st_size / 1e6
        out_mb = (out / "model.safetensors").stat().st_size / 1e6

    torch.manual_seed(1)
    x = torch.rand(args.patches, 3, 128, 128)
    ids = torch.randint(1000, 30000, (4, 96))
    mask = torch.ones_like(ids)
    mask[2:, 60:] = 0
    with torch.no_grad():
        d_img = (model.encode_image(x[:8]) - ref.encode_image(x[:8])).abs().max().item()
        scale_img = ref.encode_image(x[:8]).abs().max().item()
        d_txt = (model.encode_tokens(ids, mask) - ref.encode_tokens(ids, mask)).abs().max().item()
        scale_txt = ref.encode_tokens(ids, mask).abs().max().item()
    ours = _rate(model.encode_image, x, args.batch)
    theirs = _rate(ref.encode_image, x, args.batch)

    print(f"checkpoint (official layout, random weights): {size_mb:.0f} MB -> model.safetensors {out_mb:.0f} MB")
    print(f"read (weights_only, mmap): {t1 - t0:.2f} s; convert+save: {t2 - t1:.2f} s; load_model: {t3 - t2:.2f} s")
    print(f"tensors mapped: {report.n_mapped}; dropped: {len(report.dropped)}; missing: {len(report.missing)}; "
          f"unexpected: {len(report.unexpected)}; logit scale {report.logit_scale:g}")
    print(f"max |encode_image - official visual|: {d_img:.2e} (outputs up to {scale_img:.2f})")
    print(f"max |encode_tokens - official masked mean|: {d_txt:.2e} (outputs up to {scale_txt:.2f})")
    print(f"CPU ({args.threads} threads) 128x128 patches/s: exiflang {ours:.1f}, official-style module {theirs:.1f} "
          f"(ratio {ours / theirs:.2f}); a 30x30 detect grid = 900 patches ~ {900 / ours:.0f} s")


if __name__ == "__main__":
    main()
