"""`exiflang bench --dataset KIND:PATH [--method M] [--model NAME] --out DIR`: forensic benchmark of one method."""
from __future__ import annotations

import argparse
from pathlib import Path

KINDS_HELP = (
    "KIND:PATH. Kinds: columbia (4cam_auth/, 4cam_splc/ + edgemask/), dso1 (DSO-1/, DSO-1-Fake-Images-Masks/), "
    "korus (<camera>/pristine|tampered-realistic|ground-truth/), inthewild (images/, masks/), casia1 (Au/, Sp/ + "
    "casia1groundtruth masks), casia2 (Au/, Tp/ + *_gt.png), manifest (MANIFEST.csv: the ../shared/data/casia1 "
    "layout), generic (manifest.csv with image,mask,label; what make-splices writes)."
)


# The --method choices of `bench` and `detect`: the keys of exiflang.eval.bench.METHODS (kept here so that
# building the CLI parser imports no numpy; tests/test_bench_methods.py checks the two agree). A new method is
# a builder + an entry in METHODS, its name here and a clause in METHOD_HELP.
METHOD_NAMES = ("exiflang", "random", "noise", "grid", "dq", "fusion")
METHOD_HELP = (
    "exiflang: a trained model (--model) through the patch-consistency pipeline; random: the --model architecture "
    "with random weights (seed --seed); noise: the classical noise-level-inconsistency baseline; grid: classical "
    "JPEG 8x8 block-grid analysis; dq: classical JPEG double-quantisation analysis of the file's own DCT "
    "coefficients (grid, noise and dq are training-free and ignore --model); fusion: the --model map combined "
    "with the grid and dq maps by a rule chosen on validation composites (exiflang.forensics.fusion) "
    "(default: %(default)s)"
)


def default_cache_dir() -> Path:
    """$EXIFLANG_CACHE/embeddings, else ~/.cache/exiflang/embeddings."""
    from ..paths import cache_root

    return cache_root() / "embeddings"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the bench sub-command."""
    from .argtypes import (add_device_argument, add_precision_argument, batch_size_int, iteration_count, out_dir,
                           per_side_int, percentile, positive_int, seed_int, unit_interval)

    p = subparsers.add_parser(
        "bench",
        help="benchmark splice detection/localisation on a dataset (p-mAP, cIoU, F1, MCC, AUC, detection AP)",
        description=(
            "Run detection on every image of a dataset and score it: per-image metrics (per_image.csv), the maps "
            "and scores `exiflang detect --out` writes (maps/), summary.json and summary.md. Interrupted runs resume "
            "where they stopped (re-run the same command). Patch embeddings are cached, so re-running with other "
            "post-processing (--iters, --percentile, --threshold) or into another --out embeds nothing again. "
            "Metric definitions are in the docstring of exiflang.eval.metrics. When the dataset's manifest names its "
            "cameras and the model's config.json lists its training cameras, summary.json's camera_overlap says how "
            "many dataset cameras the model has seen (a loud warning is printed when any)."
        ),
    )
    p.add_argument("--dataset", required=True, metavar="KIND:PATH", help=KINDS_HELP)
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="output folder (re-use it to resume)")
    p.add_argument("--method", choices=METHOD_NAMES, default="exiflang", help=METHOD_HELP)
    p.add_argument("--model", default="default",
                   help="model name ('default' = built-in weights) or a weights folder, e.g. an image-only run's model "
                        "dir (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help=f"initialisation seed of --method random, {seed_int.limits} (default: %(default)s)")
    p.add_argument("--per-side", type=per_side_int, default=30,
                   help=f"patches along the longer side, {per_side_int.limits} (default: %(default)s, as in the paper)")
    p.add_argument("--iters", type=iteration_count, default=5,
                   help=f"mean-shift iterations, {iteration_count.limits} (default: %(default)s)")
    p.add_argument("--percentile", type=percentile, default=10.0, help="mean-shift radius percentile (default: %(default)s)")
    p.add_argument("--threshold", type=unit_interval, default=0.5, help="fixed heatmap threshold for f1_fixed/mcc_fixed (default: %(default)s)")
    add_precision_argument(p)
    p.add_argument("--batch-size", type=batch_size_int, default=64,
                   help=f"patches per forward pass, {batch_size_int.limits} (default: %(default)s)")
    add_device_argument(p)
    p.add_argument("--cache-dir", type=out_dir, default=None,
                   help="embedding cache (default: $EXIFLANG_CACHE/embeddings or ~/.cache/exiflang/embeddings)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--no-maps", action="store_true", help="skip writing per-image maps and PNGs (metrics only)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images (quick checks)")
    p.add_argument("--every", type=positive_int, default=1, metavar="K",
                   help="only every K-th image: a subsample that keeps the mix of manipulated and authentic images "
                        "(default 1: all)")
    p.add_argument("--strict", action="store_true", help="refuse to run when the dataset is incomplete (counts, masks)")
    p.add_argument("--overwrite", action="store_true", help="discard per-image results already in --out")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="analyse only images K, K+N, K+2N, ... and write no summary: run N shards in parallel into "
                        "one --out, then once without --shard to gather them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the dataset, build the method, run the benchmark, print the table."""
    import sys

    from ..device import resolve_device
    from ..errors import CommandError
    from ..eval.bench import BenchError, run_bench
    from ..eval.datasets import DatasetError, load_dataset

    args.device = resolve_device(args.device)  # before the dataset is read: a missing device is one line
    try:
        dataset = load_dataset(args.dataset, strict=args.strict)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    for problem in dataset.problems:
        print(f"warning: {problem}", file=sys.stderr)
    shard = None
    if args.shard:
        try:
            k, n = (int(x) for x in args.shard.split("/"))
        except ValueError:
            raise CommandError(f"--shard {args.shard!r} is not K/N (e.g. 0/4)") from None
        shard = (k, n)
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    from ..eval.bench import build_method

    method = build_method(args.method, args.model, cache, args.device, args.per_side, args.batch_size,
                                  args.iters, args.percentile, args.seed, args.precision)
    from ..eval.bench import camera_overlap, camera_overlap_line, camera_overlap_warning, dataset_cameras

    samples = dataset.samples[::max(1, args.every)]
    overlap = camera_overlap(method, dataset_cameras(dataset, samples[:args.limit] if args.limit else samples))
    warning = camera_overlap_warning(overlap)
    if warning:
        print(warning, file=sys.stderr)
    try:
        summary, stats = run_bench(dataset, method, args.out, dataset_spec=args.dataset, fixed_threshold=args.threshold,
                                   limit=args.limit, write_maps=not args.no_maps, overwrite=args.overwrite,
                                   shard=shard, every=args.every)
    except (BenchError, DatasetError) as exc:
        raise CommandError(str(exc)) from exc
    if shard is not None:
        print(f"shard {args.shard}: {stats.computed} image(s) analysed, {stats.resumed} already done, {stats.errors} error(s)")
        print(camera_overlap_line(overlap))
        return 1 if stats.errors else 0
    print((args.out / "summary.md").read_text())  # its last lines: the camera-overlap status
    if warning:
        print(warning, file=sys.stderr)  # again after the table, where it is read
    print(f"{stats.computed} image(s) analysed now, {stats.resumed} resumed from {args.out}, "
          f"{stats.cached_embeddings} from the embedding cache, {stats.errors} error(s); summary: {args.out / 'summary.json'}")
    failed, total = summary["counts"]["errors"], summary["counts"]["images"]
    if failed:  # each one is in per_image.csv with its error; the others were scored
        print(f"{failed} of {total} images failed (their errors are in {args.out / 'per_image.csv'})", file=sys.stderr)
    return 1 if failed else 0
