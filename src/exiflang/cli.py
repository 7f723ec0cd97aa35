"""The `exiflang` command line: one sub-command per module in `exiflang.commands`.

Each command module defines `register(subparsers) -> None`, which adds its parser and sets
`func=run` on it. Modules import heavy libraries (torch, transformers) inside `run`, so that
`exiflang --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ExiflangError

# Order here is the order of `exiflang --help`: the data flow, from photos to numbers.
COMMAND_MODULES = [
    "exif",            # print a photo's EXIF text
    "index",           # index a photo collection
    "shard",           # webdataset shards of an index
    "train",           # contrastive training
    "detect",          # splice detection and localisation
    "batch",           # detection over an archive on Ray, into a Parquet table
    "demo",            # self-contained splice demo with the built-in model
    "serve",           # local web page: upload photos, read their reports
    "make_splices",    # composite generator
    "bench",           # forensic benchmarks
    "predict_exif",    # image -> EXIF ranking
    "check_exif",      # do the pixels match this file's EXIF?
    "probe",           # linear probes
    "calibrate",       # radial distortion k1 from pixels
    "convert_official",  # official checkpoint -> exiflang format
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="exiflang",
        description="EXIF as language: camera signatures from pixels, and splice detection with no metadata needed.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"exiflang {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"exiflang.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `exiflang` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except ExiflangError as exc:
        if args.debug:
            raise
        print(f"exiflang {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"exiflang {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy (one module object for the whole run).
    from exiflang.cli import main as package_main

    sys.exit(package_main())
