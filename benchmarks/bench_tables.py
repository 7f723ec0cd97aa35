"""Print the Markdown tables of docs/results/forensics_bench.md from the summary.json files of benchmark runs.

    python benchmarks/bench_tables.py runs/bench        (each sub-folder with a summary.json is one run)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

COLS = [("pmap", "p-mAP"), ("pmap_strict", "mAP strict"), ("ciou", "cIoU"), ("ciou_strict", "cIoU strict"),
        ("ciou_single", "cIoU 1-thr"), ("f1_best", "F1 best"), ("mcc_best", "MCC best"), ("f1_fixed", "F1@0.5"),
        ("pixel_auc", "pixel AUC"), ("det_ap", "det AP"), ("det_auc", "det AUC")]


def method_label(summary: dict) -> str:
    """Human name of a run's method."""
    mid = summary["method"]
    desc = summary.get("settings", {}).get("description", "")
    if mid.startswith("random-"):
        return f"random weights, same encoder ({mid})"
    if mid.startswith("noise"):
        return f"noise-level inconsistency, classical ({mid})"
    if "objective image-only" in desc:
        return f"image-only contrastive ({mid})"
    return f"EXIF-as-language ({mid})"


def table(runs: list[dict]) -> str:
    """One Markdown table, one row per run."""
    lines = ["| method | " + " | ".join(c[1] for c in COLS) + " | manip/auth |",
             "|" + "---|" * (len(COLS) + 2)]
    for s in runs:
        vals = ["–" if s.get(k) is None else f"{s[k]:.3f}" for k, _ in COLS]
        c = s["counts"]
        lines.append(f"| {method_label(s)} | " + " | ".join(vals) + f" | {c['manipulated']}/{c['authentic']} |")
    return "\n".join(lines)


def main(root: str) -> int:
    """Group runs by dataset and print a table per dataset."""
    summaries = [json.loads(p.read_text()) for p in sorted(Path(root).glob("*/summary.json"))]
    if not summaries:
        print(f"no */summary.json under {root}", file=sys.stderr)
        return 1
    order = {"EXIF": 0, "imag": 1, "rand": 2, "nois": 3}
    # Group by the dataset folder's name, so runs of one dataset made on different machines share a table.
    by_ds: dict[str, list[dict]] = {}
    for s in summaries:
        kind, _, path = s["dataset"].partition(":")
        every = int(s.get("every", 1) or 1)
        label = f"{kind}:{Path(path).name}" + (f", 1 image in {every}" if every > 1 else "")
        by_ds.setdefault(label, []).append(s)
    for ds, runs in by_ds.items():
        runs.sort(key=lambda s: order.get(method_label(s)[:4], 9))
        dates = sorted({s["date"] for s in runs})
        commits = sorted({s["commit"] for s in runs})
        print(f"### `{ds}`\n\nruns dated {', '.join(dates)}; commit(s) {', '.join(commits)}\n")
        print(table(runs) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/bench"))
