"""`exiflang shard INDEX --out DIR`: pack an index's photos into webdataset tar shards for training."""
from __future__ import annotations

import argparse

from ..errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `shard` sub-command."""
    from .argtypes import out_dir, positive_float, positive_int

    p = subparsers.add_parser(
        "shard", help="pack an index into webdataset tar shards",
        description="Write the photos of INDEX as webdataset tar shards in DIR: each sample is <key>.jpg (the "
                    "original file bytes, never re-encoded, so camera traces survive) and <key>.json (the index "
                    "record: size, make, model, tags, text). Train from them with `exiflang train --shards DIR`.")
    p.add_argument("index", metavar="INDEX", help="index folder made by `exiflang index`")
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR", help="folder for shard-NNNNNN.tar and shards.json")
    p.add_argument("--max-count", type=positive_int, default=1000, help="photos per shard at most (default 1000)")
    p.add_argument("--max-mb", type=positive_float, default=1024, help="megabytes of photos per shard at most (default 1024)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the shards and print a summary."""
    from ..data.index import IndexReadError, load_records
    from ..data.shards import ShardError, write_shards

    try:
        records = load_records(args.index)
        manifest = write_shards(records, args.out, args.max_count, int(args.max_mb * 2**20), not args.quiet)
    except (IndexReadError, FileNotFoundError, ShardError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{manifest['n_samples']} photos in {len(manifest['shards'])} shard(s) under {args.out}")
    return 0
