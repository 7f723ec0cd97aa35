"""The camera-disjoint table: every method on composites of cameras no model trained on, and their twins.

    .venv/bin/python benchmarks/camera_disjoint.py --splices runs/cd_test --out runs/cd_bench \
        --model "new default=default" --model "old default=runs/old_default" \
        --model "no history=runs/abl_nohistory/model" ... [--baselines random,noise,grid,dq,fusion]

`--splices` is a folder written by `exiflang make-splices PHOTOS --cameras heldout --twins`: its manifest.csv
(lossless PNG) and the twins jpeg90/, jpeg75/, resized75_jpeg90/ (each a `generic:` dataset). Every
(method, twin) pair is one `exiflang bench` run under OUT/<twin>/<method slug>/ (resumable; embeddings are
cached), all in this one invocation, so rows are comparable. It prints one Markdown table per twin
(p-mAP, strict p-mAP, cIoU, detection AP and AUC, and whether the model had seen the dataset's cameras),
and writes them to OUT/tables.md.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

TWINS = [("lossless", "."), ("jpeg90", "jpeg90"), ("jpeg75", "jpeg75"), ("resized75_jpeg90", "resized75_jpeg90")]
COLS = [("pmap", "p-mAP"), ("pmap_strict", "strict p-mAP"), ("ciou", "cIoU"), ("det_ap", "det AP"),
        ("det_auc", "det AUC")]


def slug(name: str) -> str:
    """Folder-safe name of a method row."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def parse_models(specs: list[str], flag: str = "--model") -> list[tuple[str, str]]:
    """'label=model' strings (the values of `flag`) -> (label, model) pairs."""
    out = []
    for spec in specs:
        label, sep, model = spec.partition("=")
        if not sep or not label or not model:
            raise SystemExit(f"{flag} {spec!r}: expected LABEL=MODEL (a built-in name or a model folder)")
        out.append((label, model))
    return out


def methods(models: list[tuple[str, str]], baselines: list[str], random_like: str, cache: Path, per_side: int,
            fusion_model: str = "default"):
    """(label, Method) for every row of the table."""
    from exiflang.eval.bench import build_method

    rows = [(label, build_method("exiflang", model, cache, per_side=per_side)) for label, model in models]
    for name in baselines:
        if name == "random":
            rows.append((f"random weights ({random_like} architecture)",
                         build_method("random", random_like, cache, per_side=per_side)))
        elif name == "fusion":
            rows.append((f"fusion ({fusion_model} + grid + dq)", build_method("fusion", fusion_model, cache,
                                                                             per_side=per_side)))
        else:
            rows.append((name, build_method(name, "default", cache, per_side=per_side)))
    return rows


def overlap_status(summary: dict) -> str:
    """Short camera-overlap status of one run."""
    info = summary.get("camera_overlap") or {}
    status = info.get("status", "unknown")
    if status == "overlap":
        return f"OVERLAP {info.get('seen_by_model')}/{info.get('dataset_cameras')}"
    return status.split(" (")[0]


def table(rows: list[tuple[str, dict]]) -> str:
    """Markdown table of (label, summary)."""
    head = "| method | " + " | ".join(c[1] for c in COLS) + " | cameras | n (spliced/authentic) |"
    lines = [head, "|" + "---|" * (len(COLS) + 3)]
    for label, s in rows:
        vals = ["–" if s.get(k) is None else f"{s[k]:.3f}" for k, _ in COLS]
        c = s["counts"]
        lines.append(f"| {label} | " + " | ".join(vals) + f" | {overlap_status(s)} | {c['manipulated']}/{c['authentic']} |")
    return "\n".join(lines)


def bench_condition(name: str, folder: Path, rows: list, out: Path) -> list[tuple[str, dict]] | None:
    """Every method row on one `generic:` folder, each under OUT/<name>/<method slug> (resumable); None when absent."""
    from exiflang.eval.bench import run_bench
    from exiflang.eval.datasets import load_dataset

    if not (folder / "manifest.csv").is_file():
        print(f"skip {name}: no {folder / 'manifest.csv'}", file=sys.stderr)
        return None
    dataset = load_dataset(f"generic:{folder}")
    results = []
    for label, method in rows:
        summary, _ = run_bench(dataset, method, out / name / slug(label), dataset_spec=f"generic:{folder}",
                               write_maps=False, progress=False)
        results.append((label, summary))
        print(f"{name:>18} | {label:<40} p-mAP {summary.get('pmap') or 0:.3f} det AP {summary.get('det_ap') or 0:.3f}",
              file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run every (method, twin) benchmark and print the tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splices", required=True, type=Path, help="make-splices folder with twins")
    p.add_argument("--out", required=True, type=Path, help="bench output root (resumable)")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=MODEL", help="a learned row (repeatable)")
    p.add_argument("--baselines", default="random,noise,grid,dq,fusion",
                   help="comma-separated training-free / reference rows (default %(default)s)")
    p.add_argument("--random-like", default="default", help="architecture of the random-weights row")
    p.add_argument("--fusion-model", default="default", help="learned model of the fusion row (default %(default)s)")
    p.add_argument("--twins", default=",".join(t for t, _ in TWINS), help="which twins (default: all)")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedding cache (default OUT/cache)")
    p.add_argument("--per-side", type=int, default=30, help="patches along the longer side (default %(default)s)")
    args = p.parse_args(argv)
    cache = args.cache_dir or args.out / "cache"
    wanted = [t for t in args.twins.split(",") if t]
    rows = methods(parse_models(args.model), [b for b in args.baselines.split(",") if b], args.random_like, cache, args.per_side,
                   args.fusion_model)
    text = [f"Camera-disjoint composites `{args.splices}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"]
    for twin, sub in TWINS:
        if twin not in wanted:
            continue
        results = bench_condition(twin, args.splices / sub, rows, args.out)
        if results is None:
            continue
        block = f"### {twin}\n\n{table(results)}\n"
        print(block, flush=True)
        text.append(block)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.md").write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
