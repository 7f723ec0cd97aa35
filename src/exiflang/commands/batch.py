"""`exiflang batch INPUT... --out TABLE`: one method over a folder, a glob or a list of millions of images, on Ray."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the `batch` sub-command."""
    from .argtypes import add_precision_argument, batch_size_int, out_dir, per_side_int, seed_int
    from exiflang.eval.methods import DEFAULT_METHOD, FUSION_PER_SIDE, LEARNED_PER_SIDE

    from .bench import METHOD_HELP, METHOD_NAMES

    p = subparsers.add_parser(
        "batch",
        help="analyse a whole archive on Ray into one Parquet table (resumable)",
        description=(
            "Splice analysis of many images on Ray Data: a pool of workers, each loading the model once, analyses "
            "every image the inputs name and the rows (path, content sha256, width, height, score, probability, "
            "verdict, flagged fraction, method, model id, settings digest, seconds, error) are written into one "
            "Parquet table, folder --out, in parts as they finish (read it with pyarrow.parquet.read_table(OUT)). "
            "A re-run skips the images whose content hash and settings are already in the table, so a killed run "
            "is resumed by running the same command again. A file that fails is a row with its error. Without "
            "--address a local Ray cluster is started; with it, the run joins that cluster (every node needs this "
            "exiflang and must see the image paths)."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (searched recursively), glob patterns ('photos/**/*.jpg', quoted), or "
                        "lists of paths: .txt/.lst (one a line), .csv or .parquet (the 'path' column, else the first)")
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR",
                   help="the table's folder (part-*.parquet; re-use it to resume or add images)")
    p.add_argument("--method", choices=METHOD_NAMES, default=DEFAULT_METHOD, help=METHOD_HELP)
    p.add_argument("--model", default="default", help="model name ('default' = built-in weights) or a weights folder (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help=f"initialisation seed of --method random, {seed_int.limits} (default: %(default)s)")
    p.add_argument("--per-side", type=per_side_int, default=None, help=f"patches along the longer side, {per_side_int.limits} (default: the density the method's verdict was calibrated at, as in `exiflang detect`: {FUSION_PER_SIDE} for fusion, {LEARNED_PER_SIDE} for exiflang)")
    p.add_argument("--batch-size", type=batch_size_int, default=None,
                   help=f"patches per forward pass, {batch_size_int.limits} (default: 64 on a CPU, 256 on a GPU)")
    _add_cluster_arguments(p)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile each worker's image encoder: about a minute more at the start of every worker, "
                        "then 1.1-1.2x fewer CPU seconds per photo (the same results to 1e-4; worth it from a few "
                        "hundred photos per worker)")
    add_precision_argument(p)
    p.add_argument("--maps", action="store_true",
                   help="also write each image's report files (heatmap .npy, PNGs, .json) into DIR/_maps/, named "
                        "<name>-<hash prefix> (off by default: a million images make millions of files)")
    p.add_argument("--report", action="store_true",
                   help="with --maps: also write DIR/_maps/index.html, one offline page with every image of this table")
    p.add_argument("--overwrite", action="store_true", help="delete the table's parts in --out first and analyse everything")
    p.set_defaults(func=run)


def _add_cluster_arguments(p) -> None:
    """How the run spreads over Ray: workers, their CPUs and GPUs, the cluster, and the work and table units."""
    from .argtypes import gpus_per_worker, images_per_call, rows_per_part, worker_count

    p.add_argument("--workers", type=worker_count, default=2,
                   help=f"Ray workers (actors, each with its own model), {worker_count.limits} (default: %(default)s)")
    p.add_argument("--threads-per-worker", type=worker_count, default=1,
                   help=f"CPUs (torch threads) each worker asks Ray for, {worker_count.limits} (default: %(default)s)")
    p.add_argument("--gpus-per-worker", type=gpus_per_worker, default=None,
                   help=f"GPUs each worker asks Ray for, {gpus_per_worker.limits} (default: 1 where the cluster has a "
                        "GPU for every worker, else 0: CPU workers)")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="an existing Ray cluster (e.g. 10.0.0.5:6379, or 'auto'); default: start a local one with "
                        "workers x threads + 1 CPUs")
    p.add_argument("--images-per-call", type=images_per_call, default=4,
                   help=f"fewest images one worker call analyses (the paths are cut into chunks of about an eighth of each "
                        f"worker's share, at most 256), {images_per_call.limits} (default: %(default)s)")
    p.add_argument("--rows-per-part", type=rows_per_part, default=256,
                   help=f"rows per Parquet part (a part is also written every 30 s), {rows_per_part.limits} "
                        "(default: %(default)s)")


def _write_page(args: argparse.Namespace, digest_rows) -> None:
    """DIR/_maps/index.html from the per-image files (exiflang.report), for --report."""
    from exiflang.eval.batch import maps_stem
    from exiflang.report.html import ReportError, build_report, save_page

    items = [(path, maps_stem(path, sha), error) for path, sha, error in digest_rows]
    log = lambda message: print(f"exiflang batch: {message}", file=sys.stderr)  # noqa: E731
    try:
        page = save_page(build_report(args.out / "_maps", items, model=args.model, exif_check=False, log=log),
                         args.out / "_maps")
        print(f"HTML report: {page}")
    except ReportError as exc:
        log(f"HTML report not written: {exc}")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the batch; print where the table is; exit 1 when an image of this run failed."""
    from exiflang.errors import CommandError
    from exiflang.eval.batch import BatchOptions, run_batch
    from exiflang.eval.batch_io import BatchInputError, read_table

    from .argtypes import ensure_writable_dir

    if args.compile and args.precision != "float32":
        raise CommandError("--compile checks the compiled encoder against float32; use it without --precision bfloat16")
    if args.report and not args.maps:
        raise CommandError("--report needs --maps (the page shows the per-image files)")
    ensure_writable_dir(args.out)
    from exiflang.eval.methods import default_per_side

    per_side = args.per_side or default_per_side(args.method)  # as `exiflang detect`: the calibration's density
    options = BatchOptions(method=args.method, model=args.model, per_side=per_side, batch_size=args.batch_size,
                           seed=args.seed, workers=args.workers, threads=args.threads_per_worker,
                           gpus=args.gpus_per_worker, images_per_call=args.images_per_call,
                           rows_per_part=args.rows_per_part, compile=args.compile, precision=args.precision,
                           maps_dir=str((args.out / "_maps").resolve()) if args.maps else None)
    try:
        progress = run_batch(args.inputs, args.out, options, address=args.address, overwrite=args.overwrite)
    except BatchInputError as exc:
        raise CommandError(str(exc)) from exc
    print(f"table: {args.out}/ ({progress['analysed']} rows written now, {progress['skipped']} images already there, "
          f"{progress['failed']} failed; read it with pyarrow.parquet.read_table('{args.out}'))")
    if args.report:
        table = read_table(Path(args.out), ["path", "sha256", "error", "settings_digest"])
        digest = progress.get("settings_digest")
        rows = [(p, s, e) for p, s, e, d in zip(*(table.column(c).to_pylist() for c in table.column_names))
                if d == digest]
        _write_page(args, rows)
    if progress["failed"]:
        print(f"{progress['failed']} of {progress['analysed']} images failed (their errors are in the table's "
              f"'error' column)", file=sys.stderr)
    return 1 if progress["failed"] else 0
