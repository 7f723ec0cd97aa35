"""`exiflang check-exif IMAGE`: do the pixels match this file's own EXIF?"""
from __future__ import annotations

import argparse
import json
import sys

from exiflang.errors import CommandError

DESCRIPTION = """\
Compare the similarity of the image's patches to its own EXIF text with their similarity to reference
texts of other cameras (the shipped set: one typical EXIF description per camera of the shared photo
collection; or --reference INDEX|FILE). Reports:
  percentile   fraction of other cameras' texts that score below the own text (1 = best match of all)
  z            (own - reference mean) / reference std
  probability  softmax probability of the own text among own + references (model's logit scale)
  verdict      consistent (percentile >= 0.75), inconsistent (< 0.25), else uncertain
and the tags that agree least: leaving such a tag out of the text raises the similarity.
Swapped or edited metadata shows as a low percentile. Scores are evidence, not proof: a model that never
saw a camera like this one can score its true EXIF low too.
"""


def register(subparsers) -> None:
    """Add the `check-exif` sub-command."""
    from .argtypes import add_device_argument, non_negative_int, patch_count

    p = subparsers.add_parser("check-exif", help="do the pixels match this file's own EXIF? (calibrated score)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image file whose EXIF is checked")
    p.add_argument("--reference", metavar="INDEX|FILE",
                   help="reference texts of other cameras: an index folder (one text per camera), a .json list or "
                        "a text file; default: the shipped reference set")
    p.add_argument("--model", default="default", help="model name or folder (default: the built-in model)")
    p.add_argument("--patches", type=patch_count, default=16, metavar="K",
                   help=f"patches on an even grid, {patch_count.limits} (default 16)")
    p.add_argument("--tags", type=non_negative_int, default=5, metavar="N", help="how many least-agreeing tags to show (default 5)")
    p.add_argument("--no-explain", action="store_true", help="skip the leave-one-tag-out explanation (faster)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_device_argument(p)
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the reference texts' embedding cache ($EXIFLANG_CACHE/text_embeddings, "
                        "default ~/.cache/exiflang/text_embeddings)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (also off when stderr is not a terminal)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Check the image's EXIF against its pixels and print the calibrated result."""
    from exiflang.device import resolve_device
    from exiflang.exif import ExifReadError, TextConfig, read_exif
    from exiflang.imageio import ImageTooSmallError
    from exiflang.models import ModelError, load_model
    from exiflang.probes.check import CheckError, check_exif, load_reference_set, too_little_exif
    from exiflang.probes.features import FeatureError, image_patch_embeddings
    from exiflang.probes.ranking import AUTO_CACHE

    from .argtypes import ProgressLine

    args.device = resolve_device(args.device)
    try:
        tags = read_exif(args.image)
    except ExifReadError as exc:
        raise CommandError(str(exc)) from exc
    problem = too_little_exif(tags)
    if problem:  # this file failed (exit 1), before the model is loaded; no verdict without a camera to check
        print(f"exiflang check-exif: {args.image}: {problem}", file=sys.stderr)
        return 1
    say = ProgressLine("check-exif", args.quiet)
    try:
        say(f"loading model {args.model} ...")
        model = load_model(args.model, device=args.device)
    except ModelError as exc:
        raise CommandError(str(exc)) from exc
    text_config = TextConfig.from_dict(model.config.text_format)
    try:
        references = load_reference_set(args.reference, text_config)
        say(f"embedding {args.patches} patches of {args.image} ...")
        patches = image_patch_embeddings(args.image, model, args.patches, "grid", device=args.device)
        say(f"comparing with {len(references)} reference texts" + ("" if args.no_explain else
                                                                   ", then leaving out one tag at a time") + " ...")
        result = check_exif(patches, tags, references, model, text_config, explain=not args.no_explain,
                            device=args.device, cache_dir=None if args.no_cache else AUTO_CACHE,
                            progress=say.enabled)
    except ImageTooSmallError as exc:  # this file failed (exit 1): no verdict from a padded copy of a few pixels
        print(f"exiflang check-exif: {args.image}: {exc}", file=sys.stderr)
        return 1
    except (CheckError, FeatureError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps({"image": args.image, "model_id": model.model_id, **result.to_dict(args.tags)}, indent=2))
        return 0
    d = result.to_dict(args.tags)
    print(f"{args.image}: {d['verdict']}")
    camera = " ".join(str(tags[k]).strip() for k in ("Make", "Model") if str(tags.get(k, "")).strip())
    print(f"  own EXIF ({camera}) beats {d['percentile']:.0%} of "
          f"{d['n_references']} other cameras' texts; z = {d['z']:+.2f}; probability {d['probability']:.3f}")
    if d["best_reference"]:
        b = d["best_reference"]
        print(f"  best-matching other camera: {b['make']} {b['model']} ({b['score']:+.4f} vs own {d['own_score']:+.4f})")
    if d["least_agreeing_tags"]:
        print("  tags agreeing least (score change if the tag is kept; negative = pixels disagree):")
        for t in d["least_agreeing_tags"]:
            print(f"    {t['effect']:+.4f}  {t['tag']}: {t['value']}")
    return 0
