"""`exiflang index PHOTO_DIR --out INDEX`: index a photo collection (incremental), with reasons for rejects."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the `index` sub-command."""
    from .argtypes import non_negative_int, out_dir, positive_int, timeout_seconds, worker_count

    p = subparsers.add_parser(
        "index",
        help="index a folder of photos for training (incremental)",
        description=(
            "Walk PHOTO_DIR recursively, read every file's EXIF on several cores, and write INDEX/records.jsonl "
            "(one accepted photo per line: path, decoded width/height, sha256, tags, text), INDEX/rejects.jsonl "
            "(every other file with its reason: not_an_image, undecodable, too_large, too_small, exif_unreadable, "
            "no_exif, too_few_tags, edited, duplicate, error), INDEX/tag_counts.json and INDEX/meta.json. Running it again on a "
            "grown folder only reads new or changed files."
        ),
    )
    p.add_argument("photo_dir", metavar="PHOTO_DIR", help="folder of photos (searched recursively; hidden files skipped)")
    p.add_argument("--out", required=True, type=out_dir, metavar="INDEX", help="index folder to create or update")
    p.add_argument("--workers", type=worker_count, default=None,
                   help=f"parallel readers, each with its own ExifTool, {worker_count.limits} (default: 2, or 1 on a one-core machine)")
    p.add_argument("--min-tags", type=non_negative_int, default=11,
                   help="reject photos with fewer usable tags than this (default: %(default)s, the paper's 'more than 10')")
    p.add_argument("--min-size", type=positive_int, default=128, help="reject photos whose shorter side is below this many pixels, one patch (default: %(default)s)")
    p.add_argument("--keep-edited", action="store_true", help="accept photos whose Software/XMP names an editor (Photoshop, Lightroom, GIMP ...)")
    p.add_argument("--keep-duplicates", action="store_true", help="accept files with the same bytes as an already accepted photo")
    p.add_argument("--header-only", action="store_true", help="only read the image header instead of decoding the pixels (faster; misses truncated files)")
    p.add_argument("--makernotes", action="store_true", help="also store maker-specific tags (MakerNotes)")
    p.add_argument("--keep-private", action="store_true", help="keep GPS, serial-number and owner tags in the records (default: dropped)")
    p.add_argument("--backend", choices=["auto", "exiftool", "pyexiv2"], default="auto", help="EXIF reader (default: %(default)s = ExifTool if installed)")
    p.add_argument("--timeout", type=timeout_seconds, default=10.0,
                   help=f"seconds allowed per file before it is rejected, {timeout_seconds.limits} (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build or update the index and print a summary."""
    from ..errors import CommandError
    from ..data.index import IndexOptions, build_index
    from ..exif import ExifReadError

    try:
        options = IndexOptions(
            min_tags=args.min_tags, min_size=args.min_size, reject_edited=not args.keep_edited,
            reject_duplicates=not args.keep_duplicates, decode="header" if args.header_only else "full",
            makernotes=args.makernotes, keep_private=args.keep_private,
        )
        if args.workers is not None and args.workers < 1:
            raise ValueError("--workers must be at least 1")
        summary = build_index(args.photo_dir, args.out, options, workers=args.workers, backend=args.backend,
                              timeout=args.timeout, progress=not args.quiet)
    except (ValueError, FileNotFoundError, ExifReadError) as exc:
        raise CommandError(str(exc)) from exc
    print(summary.format())
    print(f"index written to {args.out} (records.jsonl, rejects.jsonl, tag_counts.json, meta.json)")
    return 0
