"""`exiflang predict-exif IMAGE`: zero-shot ranking of candidate EXIF texts by similarity to the image's patches."""
from __future__ import annotations

import argparse
import json
import sys

from exiflang.errors import CommandError

DESCRIPTION = """\
Rank candidate EXIF descriptions by how well they match an image's pixels: the score of a candidate is
the mean cosine similarity between the image's patch embeddings and the candidate's text embedding.

Candidates are, by default, the cameras of the shipped reference set (one typical EXIF text per camera of
the shared photo collection). --candidates INDEX uses the distinct cameras of an `exiflang index` folder;
--candidates FILE reads texts from a .json list or a text file (one EXIF text per line). With --tag, the
candidates are the image's own EXIF with that one tag replaced by each of --values (or by every value the
tag takes in --candidates INDEX), e.g. --tag ExposureTime --values 1/30 1/125 1/500.
"""


def register(subparsers) -> None:
    """Add the `predict-exif` sub-command."""
    from .argtypes import add_device_argument, patch_count, positive_int

    p = subparsers.add_parser("predict-exif", help="rank candidate EXIF texts (cameras, tag values) for an image",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image file to describe")
    p.add_argument("--candidates", metavar="INDEX|FILE",
                   help="an `exiflang index` folder (its distinct cameras), a .json list or a text file of EXIF "
                        "texts; default: the shipped reference set of cameras")
    p.add_argument("--tag", help="rank values of this one tag (ExifTool name, e.g. Model, ExposureTime, FNumber) "
                                 "substituted into the image's own EXIF")
    p.add_argument("--values", nargs="+", metavar="VALUE",
                   help="values of --tag to rank (default: every value of the tag in --candidates INDEX)")
    p.add_argument("--top", type=positive_int, default=5, metavar="K", help="how many candidates to print (default 5)")
    p.add_argument("--json", action="store_true", help="print the full ranking as JSON (make, model, text, score)")
    p.add_argument("--model", default="default", help="model name or folder (default: the built-in model)")
    p.add_argument("--patches", type=patch_count, default=16, metavar="K",
                   help=f"number of patches averaged over, {patch_count.limits} (default 16, on an even grid)")
    p.add_argument("--sampling", choices=("grid", "random"), default="grid",
                   help="patch placement: even grid (default) or uniform random (seeded)")
    add_device_argument(p)
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the reference texts' embedding cache ($EXIFLANG_CACHE/text_embeddings, "
                        "default ~/.cache/exiflang/text_embeddings)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (also off when stderr is not a terminal)")
    p.set_defaults(func=run)


def _tag_values_from_index(index: str, tag: str) -> list[str]:
    """Distinct values of `tag` in an index, most frequent first."""
    from collections import Counter
    from pathlib import Path

    from exiflang.data.index import load_records

    if not (Path(index) / "records.jsonl").is_file():
        raise CommandError(f"--tag without --values needs --candidates INDEX (an index folder), got {index}")
    counts = Counter(str(r["tags"][tag]) for r in load_records(index) if (r.get("tags") or {}).get(tag))
    if not counts:
        raise CommandError(f"{index}: no photo has the tag {tag!r}")
    return [value for value, _ in counts.most_common()]


def build_candidates(args, text_config) -> list:
    """The candidate list asked for on the command line."""
    from exiflang.exif import ExifReadError, read_exif
    from exiflang.probes.check import load_reference_set
    from exiflang.probes.ranking import CandidateError, load_candidates, tag_candidates

    try:
        if args.tag:
            if args.values:
                values = args.values
            elif args.candidates:
                values = _tag_values_from_index(args.candidates, args.tag)
            else:
                raise CommandError("--tag needs --values, or --candidates INDEX to take the values from")
            try:
                own = read_exif(args.image)
            except ExifReadError:
                own = {}  # no context: the text is then the substituted tag alone
            return tag_candidates(own, args.tag, values, text_config)
        if args.values:
            raise CommandError("--values needs --tag")
        if args.candidates:
            return load_candidates(args.candidates, text_config)
        return load_reference_set(None, text_config)
    except CandidateError as exc:
        raise CommandError(str(exc)) from exc


def run(args) -> int:
    """Rank the candidates for the image and print the top K (or JSON)."""
    from exiflang.device import resolve_device
    from exiflang.exif import TextConfig
    from exiflang.imageio import ImageTooSmallError
    from exiflang.models import ModelError, load_model
    from exiflang.probes.check import CheckError
    from exiflang.probes.features import FeatureError, image_patch_embeddings
    from exiflang.probes.ranking import AUTO_CACHE, rank_candidates

    from .argtypes import ProgressLine

    args.device = resolve_device(args.device)
    say = ProgressLine("predict-exif", args.quiet)
    try:
        say(f"loading model {args.model} ...")
        model = load_model(args.model, device=args.device)
    except ModelError as exc:
        raise CommandError(str(exc)) from exc
    text_config = TextConfig.from_dict(model.config.text_format)
    try:
        candidates = build_candidates(args, text_config)
        say(f"embedding {args.patches} patches of {args.image} ...")
        patches = image_patch_embeddings(args.image, model, args.patches, args.sampling, device=args.device)
    except ImageTooSmallError as exc:  # this file failed (exit 1): no ranking from a padded copy of a few pixels
        print(f"exiflang predict-exif: {args.image}: {exc}", file=sys.stderr)
        return 1
    except (FeatureError, CheckError) as exc:
        raise CommandError(str(exc)) from exc
    say(f"scoring {len(candidates)} candidate texts ...")
    ranking = rank_candidates(patches, candidates, model, device=args.device,
                              cache_dir=None if args.no_cache else AUTO_CACHE, progress=say.enabled)
    if args.json:
        print(json.dumps({"image": args.image, "model_id": getattr(model, "model_id", ""),
                          "n_patches": int(len(patches)), "ranking": [r.to_dict() for r in ranking]}, indent=2))
        return 0
    print(f"{args.image}: {len(candidates)} candidates, {len(patches)} patches, model {model.model_id}")
    for r in ranking[:args.top]:
        c = r.candidate
        label = c.source if args.tag else f"{c.make} {c.model}".strip() or c.text[:60]
        print(f"{r.rank:4d}  {r.score:+.4f}  {label}")
    return 0
