"""`exiflang probe TASK ...`: linear probes on frozen features, beside chance and the baselines."""
from __future__ import annotations

import argparse
import json

from exiflang.errors import CommandError

TASK_HELP = {
    "make": "camera Make (split by photo)",
    "model": "camera Model",
    "exposure": "ExposureTime, 4 log-quantile bins",
    "iso": "ISO, 4 log-quantile bins",
    "fnumber": "FNumber, 4 log-quantile bins",
    "focal": "FocalLength, 4 log-quantile bins",
    "distortion": "synthetic radial distortion, k1 bins from lensfun calibrations",
    "casia": "CASIA v1.0 real vs manipulated, resized and centre-cropped protocols",
}
DESCRIPTION = "Fit logistic-regression probes on frozen patch features. Tasks:\n" + "\n".join(
    f"  {k:<11}{v}" for k, v in TASK_HELP.items()) + """
  all        every task above

Each task is run for the model under test (--model), a random-weights model of the same configuration
(fixed --seed; --no-random-baseline skips it) and, with --baseline-model, an image-only contrastive model.
Photo probes never put patches of one photo in both training and test; when the model's config records
held-out photos they form the test set (--split random overrides). Accuracy is per photo (patch
log-probabilities summed) and per patch; chance is the training-majority class and 1/classes.
"""


def register(subparsers) -> None:
    """Add the `probe` sub-command."""
    from .argtypes import (add_device_argument, batch_size_int, bin_count, open_fraction, out_dir, patch_count,
                           positive_int, repeat_count, seed_int)

    p = subparsers.add_parser("probe", help="linear probes: camera properties, distortion, CASIA real/fake",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", nargs="+", metavar="TASK", choices=list(TASK_HELP) + ["all"],
                   help="one or more of: " + ", ".join(TASK_HELP) + ", all")
    p.add_argument("--model", default="default", help="model under test: name or folder (default: built-in)")
    p.add_argument("--baseline-model", metavar="PATH", help="image-only contrastive model folder to compare with")
    p.add_argument("--no-random-baseline", action="store_true", help="skip the random-weights baseline")
    p.add_argument("--index", metavar="INDEX", help="photos of an `exiflang index` folder (default: --photos)")
    p.add_argument("--photos", metavar="DIR",
                   help="folder of camera photos with EXIF (default: the shared photos, ../shared/data/photos)")
    p.add_argument("--casia", metavar="DIR", help="CASIA folder with MANIFEST.csv (default: ../shared/data/casia1)")
    p.add_argument("--patches", type=patch_count, default=16, metavar="K",
                   help=f"patches per photo, {patch_count.limits} (default 16)")
    p.add_argument("--distortion-patches", type=patch_count, default=8, metavar="K",
                   help=f"patches per distorted version, {patch_count.limits} (default 8; every photo is distorted once "
                        "per bin)")
    p.add_argument("--sampling", choices=("random", "grid"), default="random", help="patch placement (default random)")
    p.add_argument("--bins", type=bin_count, default=5,
                   help=f"distortion bins, {bin_count.limits} (default 5, equal-frequency in k1)")
    p.add_argument("--max-photos", type=positive_int, metavar="N", help="use only the first N photos (quick runs)")
    p.add_argument("--seeds", type=repeat_count, default=3, metavar="N",
                   help=f"random photo splits averaged, {repeat_count.limits} (default 3)")
    p.add_argument("--test-fraction", type=open_fraction, default=0.3, help="test share of photos per class (default 0.3)")
    p.add_argument("--split", choices=("auto", "random"), default="auto",
                   help="auto: the model's held-out photos as test when its config lists them; random: always random")
    p.add_argument("--seed", type=seed_int, default=0, help=f"seed of the random-weights baseline, {seed_int.limits} (default 0)")
    p.add_argument("--cache", type=out_dir, metavar="DIR", help="cache patch features here (reused by later runs)")
    p.add_argument("--json", metavar="OUT", help="also write all results to this JSON file")
    p.add_argument("--batch-size", type=batch_size_int, default=64,
                   help=f"patches per forward pass, {batch_size_int.limits} (default 64)")
    add_device_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _photos(args):
    """The photo set from --index, --photos or the shared photos."""
    from exiflang.paths import shared_data_dir
    from exiflang.probes.tasks import photos_from_folder, photos_from_index

    if args.index:
        photos = photos_from_index(args.index)
    else:
        folder = args.photos
        if folder is None:
            root = shared_data_dir()
            if root is None or not (root / "photos").is_dir():
                raise CommandError("no photos: pass --photos DIR or --index INDEX (shared data not found)")
            folder = root / "photos"
        photos = photos_from_folder(folder, progress=not args.quiet)
    return photos[:args.max_photos] if args.max_photos else photos


def _casia_root(args):
    """--casia or the shared CASIA folder."""
    from exiflang.paths import shared_data_dir

    if args.casia:
        return args.casia
    root = shared_data_dir()
    if root is None or not (root / "casia1").is_dir():
        raise CommandError("no CASIA data: pass --casia DIR")
    return root / "casia1"


def format_row(name: str, res: dict) -> str:
    """One table line: accuracies (± std over splits, or ± binomial s.e. for one split) and chance."""
    spread = (f"± {res['photo_accuracy_std']:.3f} sd" if res.get("n_runs", 1) > 1
              else f"± {res.get('photo_accuracy_se', 0.0):.3f} se")
    return (f"  {name:<11} photo acc {res['photo_accuracy']:.3f} {spread}   "
            f"patch acc {res['patch_accuracy']:.3f}   chance: majority {res['majority_chance']:.3f}, "
            f"1/{res['n_classes']} = {res['uniform_chance']:.3f}")


def run(args) -> int:
    """Run every requested probe for every compared model and print a table per task."""
    from exiflang.device import resolve_device
    from exiflang.models import ModelError
    from exiflang.probes.casia import CasiaError
    from exiflang.probes.distortion import DistortionError
    from exiflang.probes.features import FeatureError
    from exiflang.probes.linear import ProbeError
    from exiflang.probes.tasks import (EXIF_TASKS, TaskError, casia_task, distortion_features, distortion_probe,
                                       distortion_set, exif_probe, held_out_mask, load_comparison_models,
                                       photo_features)

    args.device = resolve_device(args.device)
    tasks = list(TASK_HELP) if "all" in args.tasks else list(dict.fromkeys(args.tasks))
    seeds = tuple(range(max(1, args.seeds)))
    common = dict(batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    try:
        models = load_comparison_models(args.model, args.baseline_model, not args.no_random_baseline,
                                        args.seed, args.device)
        photos = _photos(args) if any(t in EXIF_TASKS or t == "distortion" for t in tasks) else []
        held_out, split_note = None, "random photo splits (--split random)"
        if args.split == "auto" and photos:
            held_out, split_note = held_out_mask(models["model"], photos)
            print(f"split: {split_note}" + ("" if held_out else "; using random photo splits"))
        results: dict = {"models": {k: getattr(m, "model_id", "") for k, m in models.items()},
                         "split_note": split_note, "tasks": {}}
        feats = None
        for task in tasks:
            if task in EXIF_TASKS:
                feats = feats or photo_features(photos, models, args.patches, args.sampling, args.cache, **common)
                res = {name: exif_probe(task, photos, feats[name], seeds, args.test_fraction, held_out)
                       for name in models}
            elif task == "distortion":
                dset = distortion_set(photos, args.bins)
                dfeats = distortion_features(dset, models, args.distortion_patches, args.sampling, args.cache,
                                             **common)
                res = {name: distortion_probe(dset, dfeats[name], seeds, args.test_fraction) for name in models}
            else:
                res = {name: casia_task(_casia_root(args), model, **common) for name, model in models.items()}
            results["tasks"][task] = res
            _print_task(task, res)
    except (ModelError, TaskError, ProbeError, FeatureError, DistortionError, CasiaError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        from exiflang.imageio import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


def _print_task(task: str, by_model: dict) -> None:
    """Print one task's table."""
    first = next(iter(by_model.values()))
    if task == "casia":
        print(f"casia ({first['protocols'][next(iter(first['protocols']))]['n_images']} images, 5-fold by image)")
        for protocol in first["protocols"]:
            for name, res in by_model.items():
                r = res["protocols"][protocol]
                print(f"  {protocol:<15} {name:<11} acc {r['accuracy']:.3f} ± {r['accuracy_std']:.3f}   "
                      f"chance (majority) {r['majority_chance']:.3f}")
        return
    extra = f", {first.get('split', '')}" if first.get("split") else ""
    print(f"{task} ({first['n_classes']} classes, {first.get('n_test_photos', first.get('n_photos', '?'))} "
          f"test photos{extra})")
    for name, res in by_model.items():
        print(format_row(name, res))
    if first.get("warning"):  # the same split for every model: say it once, where the table is read
        import sys

        print(f"  warning: {task}: {first['warning']}", file=sys.stderr)
