"""What bfloat16 costs: the default method (fusion) at float32 and at bfloat16 on the same desk composites.

Issue 23 item 4 allows trading precision for speed "with an accuracy table": this is that table. Every image of
every desk condition (camera-disjoint composites built by benchmarks/desk_regime.py) is analysed by the default
method twice, once with the learned encoder in float32 (exact, today's default) and once with its trunk under
bfloat16 autocast (`--precision bfloat16` of `exiflang batch` / `exiflang bench`), the two taking turns image by
image so both meet the same machine load. Per condition it prints p-mAP and detection AP of each, the verdicts
that differ, the largest score and heatmap differences, and the CPU seconds per image of each (a ratio measured
in the same run). No embedding cache is used, so every image is embedded by both.

    .venv/bin/python benchmarks/precision_accuracy.py --root runs/desk --every 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desk_regime import CONDITIONS  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def analyse_both(methods: dict, sample) -> dict:
    """Both precisions on one image: score, verdict, pixel AP (spliced), heatmap and CPU seconds of each."""
    from exiflang.eval.analysis import analyse_file, verdict_fields
    from exiflang.eval.datasets import load_mask
    from exiflang.eval.metrics import image_localization_metrics

    out = {}
    for name, method in methods.items():
        t0 = time.process_time()
        done = analyse_file(method, sample.image)
        seconds = time.process_time() - t0
        heat = np.asarray(done.analysis.heatmap, dtype=np.float64)
        ap = None
        if sample.label == 1:
            mask = load_mask(sample, heat.shape)
            ap = image_localization_metrics(heat, mask)["ap"] if mask.any() else None
        out[name] = {"score": float(done.analysis.score), "verdict": verdict_fields(done.analysis)["verdict"],
                     "ap": ap, "heat": heat, "seconds": seconds}
    return out


def condition_row(label: str, records: list[dict], labels: list[int]) -> str:
    """One table row: p-mAP and det AP of each precision, verdict changes, largest differences, CPU s/image."""
    from exiflang.eval.metrics import average_precision

    cells = []
    for name in PRECISIONS:
        aps = [r[name]["ap"] for r in records if r[name]["ap"] is not None]
        scores = np.array([r[name]["score"] for r in records])
        cells.append(f"{np.mean(aps):.3f} / {average_precision(scores, np.array(labels)):.3f}")
    changed = sum(r["float32"]["verdict"] != r["bfloat16"]["verdict"] for r in records)
    d_score = max(abs(r["float32"]["score"] - r["bfloat16"]["score"]) for r in records)
    d_heat = max(float(np.abs(r["float32"]["heat"] - r["bfloat16"]["heat"]).max()) for r in records)
    mean_heat = np.mean([float(np.abs(r["float32"]["heat"] - r["bfloat16"]["heat"]).mean()) for r in records])
    secs = [np.mean([r[name]["seconds"] for r in records]) for name in PRECISIONS]
    return (f"| {label} | {len(records)} | {cells[0]} | {cells[1]} | {changed} | {d_score:.1e} | {d_heat:.1e} / "
            f"{mean_heat:.1e} | {secs[0]:.3f} | {secs[1]:.3f} | {secs[0] / secs[1]:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    """Run both precisions over every condition and print the table."""
    import torch

    from exiflang.eval.datasets import load_dataset
    from exiflang.eval.methods import DEFAULT_METHOD, FUSION_PER_SIDE, build_method

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("runs/desk"), help="desk root (default %(default)s)")
    p.add_argument("--every", type=int, default=2, help="every k-th image of each condition (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--model", default="default", help="learned model of the fusion (default %(default)s)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = {name: build_method(DEFAULT_METHOD, args.model, None, "cpu", FUSION_PER_SIDE, precision=name)
               for name in PRECISIONS}
    lines = [f"`{DEFAULT_METHOD}` at {FUSION_PER_SIDE} per side, model {args.model}, every {args.every}, "
             f"{args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "| condition | images | float32 p-mAP / det AP | bfloat16 p-mAP / det AP | verdicts changed | "
             "max abs score diff | heatmap abs diff max / mean | float32 CPU s | bfloat16 CPU s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, set_name, sub in CONDITIONS:
        folder = args.root / set_name / sub
        if not (folder / "manifest.csv").is_file():
            print(f"skip {label}: no {folder / 'manifest.csv'}", file=sys.stderr)
            continue
        samples = load_dataset(f"generic:{folder}").samples[:: args.every]
        records = []
        for i, sample in enumerate(samples):
            # alternate which precision goes first, so neither always meets a warm cache or a busy neighbour
            order = PRECISIONS if i % 2 == 0 else PRECISIONS[::-1]
            records.append(analyse_both({name: methods[name] for name in order}, sample))
        lines.append(condition_row(label, records, [s.label for s in samples]))
        print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
