"""`exiflang exif PHOTO...`: print the EXIF text the model reads (or the raw tags) for each photo."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..exif import TextConfig


def register(subparsers) -> None:
    """Add the `exif` sub-command."""
    from .argtypes import positive_int, timeout_seconds, unit_interval

    p = subparsers.add_parser(
        "exif",
        help="print a photo's EXIF as the text the model reads",
        description=(
            "Read each photo's EXIF (ExifTool in batch mode, or pyexiv2 in-process when ExifTool is missing) and "
            "print it exactly as the text encoder of --model sees it (the built-in model by default): "
            "'Tag Name: value' pairs in a fixed order, with private and uninformative tags (GPS, serial numbers, "
            "owner, dates, image size, thumbnails) left out, in the text format stored in that model's config. "
            "Which model's format was used is said on stderr. The text-format options change one setting of it "
            "each (the paper's text ablations)."
        ),
    )
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files (JPEG, MPO, TIFF; PNG/WebP/HEIC where the reader supports them)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--tags", action="store_true", help="print the raw tags, one 'Name: value' per line, instead of the text")
    out.add_argument("--json", action="store_true", help="print JSON objects {path, tags, text} (one line per photo)")
    p.add_argument("--makernotes", action="store_true", help="also read maker-specific tags (MakerNotes); they never replace standard tags")
    p.add_argument("--backend", choices=["auto", "exiftool", "pyexiv2"], default="auto",
                   help="EXIF reader: ExifTool if installed, else pyexiv2 (default: %(default)s)")
    p.add_argument("--timeout", type=timeout_seconds, default=10.0,
                   help=f"seconds allowed per file before giving up on it, {timeout_seconds.limits} (default: %(default)s)")
    p.add_argument("--model", default="default",
                   help="print the text as this model reads it: its config's text format ('default' = the built-in "
                        "model; or a weights folder; only config.json is read) (default: %(default)s)")
    text = p.add_argument_group("text format (the paper's ablations; each changes one setting of --model's format)")
    text.add_argument("--no-names", action="store_true", default=None, help="values only, without 'Tag Name:' prefixes")
    text.add_argument("--shuffle", type=int, default=None, metavar="SEED", help="order tags by a random permutation with this seed instead of the canonical order")
    text.add_argument("--subset", default=None, metavar="NAME|TAG[,TAG...]",
                      help="keep only these tags: 'camera-only' (Make, Model), 'exposure', 'lens', 'processing', one tag name, or a comma-separated list")
    text.add_argument("--no-exclusions", action="store_true", default=None, help="keep private and uninformative tags too (GPS, serials, dates, sizes ...)")
    text.add_argument("--raw-values", action="store_true", default=None, help="print values as read, without the value rules (integers, length limit, character filter)")
    text.add_argument("--max-value-chars", type=positive_int, default=None, metavar="N",
                      help="values longer than this become 'Unknown' (default: the model's; the built-in model reads 40, "
                           "the paper's official rule is 20, which hides long model names such as 'Canon EOS 5D Mark III')")
    text.add_argument("--min-frequency", type=unit_interval, default=0.0, metavar="FRACTION",
                      help="keep only tags present in at least this fraction of an indexed collection (needs --index)")
    text.add_argument("--index", default=None, metavar="INDEX", help="index folder whose tag_counts.json --min-frequency uses")
    p.set_defaults(func=run)


def text_config_from_args(args: argparse.Namespace, base: "TextConfig | None" = None) -> "TextConfig":
    """The TextConfig the options describe: `base` (a model's format; TextConfig() without one) with each option
    that was given replacing its one setting."""
    from dataclasses import replace

    from ..errors import CommandError
    from ..exif import TextConfig

    changes = {}
    if args.subset:
        changes["subset"] = [s.strip() for s in args.subset.split(",") if s.strip()] if "," in args.subset else args.subset
    if args.shuffle is not None:
        changes.update(order="shuffle", seed=args.shuffle)
    for flag, setting in (("no_names", "include_names"), ("no_exclusions", "default_exclusions"),
                          ("raw_values", "normalize_values")):
        if getattr(args, flag):
            changes[setting] = False
    if args.max_value_chars is not None:
        changes["max_value_chars"] = args.max_value_chars
    if args.min_frequency:
        changes["min_frequency"] = args.min_frequency
    try:
        cfg = replace(base or TextConfig(), **changes)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if cfg.min_frequency > 0:
        if not args.index:
            raise CommandError("--min-frequency needs --index INDEX (the collection whose tag frequencies count)")
        from ..data.index import IndexReadError, load_tag_counts

        try:
            cfg = cfg.with_tag_counts(load_tag_counts(args.index))
        except IndexReadError as exc:
            raise CommandError(str(exc)) from exc
    return cfg


def model_text_format(model: str) -> "tuple[str, TextConfig]":
    """(id, text format) of a saved model, from its config.json alone (no weights are read)."""
    from ..exif import TextConfig
    from ..models.factory import read_config

    config = read_config(model)
    return config.model_id or config.name, TextConfig.from_dict(config.text_format)


def run(args: argparse.Namespace) -> int:
    """Print the text (or tags, or JSON) of every photo; exit 1 if some could not be read, 2 if none could."""
    import sys

    from ..errors import CommandError
    from ..exif import ExifReader, ExifReadError, exif_to_text

    model_id, base = model_text_format(args.model)
    cfg = text_config_from_args(args, base)
    if not args.tags:
        changed = " with the options above" if cfg != base else ""
        print(f"exiflang exif: the text as model {model_id} reads it{changed} "
              f"(values up to {cfg.max_value_chars} characters)", file=sys.stderr)
    failed = 0
    try:
        reader = ExifReader(backend=args.backend, makernotes=args.makernotes, timeout=args.timeout)
    except ExifReadError as exc:
        raise CommandError(str(exc)) from exc
    with reader:
        for path in args.photos:
            try:
                tags = reader.read(path)
            except ExifReadError as exc:
                print(f"exiflang exif: {exc}", file=sys.stderr)
                failed += 1
                continue
            text = exif_to_text(tags, cfg)
            if args.json:
                print(json.dumps({"path": path, "tags": tags, "text": text, "model": model_id}, ensure_ascii=False))
                continue
            if len(args.photos) > 1:
                print(f"== {path}")
            if args.tags:
                for name, value in tags.items():
                    print(f"{name}: {value}")
            elif text:
                print(text)
            else:
                print(f"exiflang exif: {path}: no EXIF tags to show ({len(tags)} read, all excluded or filtered)"
                      if tags else f"exiflang exif: {path}: the file has no EXIF tags", file=sys.stderr)
    if failed == len(args.photos):
        raise CommandError(f"could not read EXIF from {'any of the files' if failed > 1 else 'the file'}")
    return 1 if failed else 0  # some files failed (each named above); the others were printed
