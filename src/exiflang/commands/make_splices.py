"""`exiflang make-splices`: Columbia-style composites (region of photo A pasted into photo B, other camera)."""
from __future__ import annotations

import argparse


def paste_fraction(text: str) -> tuple[float, float]:
    """'LO,HI' (fractions of the frame) -> (lo, hi); refused at parse time when not 0 < LO <= HI <= 0.3."""
    from ..eval.splices import MAX_AREA

    parts = text.split(",")
    try:
        lo, hi = (float(x) for x in parts) if len(parts) == 2 else (float(text),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (fractions of the frame, e.g. 0.005,0.03), got {text!r}") from None
    if not 0 < lo <= hi <= MAX_AREA:
        raise argparse.ArgumentTypeError(f"must be LO,HI with 0 < LO <= HI <= {MAX_AREA:g}, got {text}")
    return lo, hi


def twin_names(text: str) -> list[str]:
    """A --twins value: names and groups, checked at parse time (unknown ones are refused with the choices)."""
    from ..eval.splices import SpliceError, resolve_twins

    try:
        names = resolve_twins(text)
    except SpliceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not names:
        raise argparse.ArgumentTypeError("name at least one twin or group")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the make-splices sub-command."""
    from ..eval.splices import MAX_COMPOSITES
    from .argtypes import jpeg_quality, non_negative_int, out_dir, ranged

    composites = ranged(int, 1, MAX_COMPOSITES)
    controls = ranged(int, 0, MAX_COMPOSITES)

    p = subparsers.add_parser(
        "make-splices",
        aliases=["make_splices"],
        help="make spliced composites + masks + authentic controls from a photo collection",
        description=(
            "Cut a smooth random region (5-30% of the frame) from photo A and paste it, pixel for pixel at full "
            "resolution, into photo B taken by a different camera (EXIF Make/Model). Writes spliced/, masks/ "
            "(PNG 0/255), authentic/ controls and manifest.csv (the `generic:` benchmark layout, with columns "
            "recording both photos and cameras). --cameras restricts the photos to the held-out or training cameras "
            "of the camera-disjoint split; --phase keep pastes at block-aligned offsets; --twins adds JPEG and "
            "resized+JPEG copies of the same set (--twins desk: the desk regime's re-saved, social-media and "
            "small-image copies); --paste-fraction makes other-sized pastes from the same photo pairs. An --out "
            "that already holds a set is refused unless --overwrite or --rebuild. Deterministic for a given --seed."
        ),
    )
    p.add_argument("photo_dir", help="folder of camera photos with EXIF Make/Model (searched recursively; "
                   "a MANIFEST.csv with path,make,model columns is used as a fast path)")
    p.add_argument("--out", required=True, type=out_dir, help="output folder (created)")
    p.add_argument("--n", type=composites, default=60,
                   help=f"number of composites, at most {MAX_COMPOSITES} and the number of distinct (target, source) "
                        f"pairs of different cameras the photos offer (default 60)")
    p.add_argument("--n-authentic", type=controls, default=None,
                   help="number of authentic controls, at most one per photo (default: same as --n)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed; the same seed gives the same files (default 0)")
    p.add_argument("--jpeg-quality", type=jpeg_quality, default=None, metavar="Q",
                   help="also re-save every image as JPEG at quality Q and benchmark those (default: lossless PNG only)")
    p.add_argument("--placement", choices=["random", "same"], default="random",
                   help="paste at a random position of B, or at the region's position in A when it fits (default random)")
    p.add_argument("--cameras", default="all", metavar="heldout|train|all|FILE",
                   help="use only these cameras, for targets, sources and controls alike: 'heldout' / 'train' = the "
                        "held-out / training cameras of the camera-disjoint split (exiflang.data.cameras), 'all', or a "
                        "text file with one camera key 'make|model' per line (default: %(default)s)")
    p.add_argument("--phase", choices=["random", "keep"], default="random",
                   help="random: paste at any offset; keep: paste at dst = src (mod 8) on both axes, so the region keeps "
                        "its source's 8x8 JPEG block phase relative to the target's grid (default: %(default)s)")
    _add_variant_options(p)
    p.set_defaults(func=run)


def _add_variant_options(p: argparse.ArgumentParser) -> None:
    """--twins, --paste-fraction, and what to do with a set already in --out (--overwrite / --rebuild)."""
    from ..eval.splices import TWIN_GROUPS, TWIN_SPECS

    p.add_argument("--twins", nargs="?", type=twin_names, const="classic", default=None, metavar="NAMES",
                   help="also write the same composites and controls re-saved, each twin a sub-folder with its own "
                        "manifest.csv (a generic: dataset); all JPEG 4:2:0. Bare --twins: jpeg90/, jpeg75/ and "
                        "resized75_jpeg90/ (0.75x bicubic, then q90). NAMES: a comma list of twins ("
                        + ", ".join(TWIN_SPECS) + ") or groups (" + ", ".join(f"{g} = {'+'.join(t)}" for g, t in
                        TWIN_GROUPS.items()) + "); social = downscaled by a per-image factor in 0.5-0.8 (from the "
                        "seed), then q85; small_image = longer side 512 px, then q90")
    p.add_argument("--paste-fraction", type=paste_fraction, default=None, metavar="LO,HI",
                   help="paste regions of LO-HI of the frame (e.g. 0.005,0.03 for small pastes) instead of 5-30%%, "
                        "from the same (target, source) pairs and controls as the default set of this seed")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the composite set already in --out: its files (those its manifests list and "
                               "the images of its spliced/, authentic/, masks/ and twin folders) are removed first")
    existing.add_argument("--rebuild", action="store_true",
                          help="re-create the images of an existing --out folder from its manifest.csv, masks/ and "
                               "PHOTO_DIR (share composites as recipes without the photos); pixels are checked against "
                               "the manifest")


def run(args: argparse.Namespace) -> int:
    """Generate the composites and print where the manifest is."""
    from pathlib import Path

    from ..errors import CommandError
    from ..eval.splices import SpliceError, make_splices, rebuild_splices, resolve_twins

    if args.rebuild:
        if not (Path(args.out) / "manifest.csv").is_file():
            raise CommandError(f"{args.out}: no manifest.csv to rebuild from")
        try:
            n = rebuild_splices(Path(args.photo_dir), Path(args.out))
        except (SpliceError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        print(f"rebuilt {n} image(s) in {args.out}")
        return 0
    try:
        manifest = make_splices(
            Path(args.photo_dir), Path(args.out), n=args.n, seed=args.seed, jpeg_quality=args.jpeg_quality,
            n_authentic=args.n_authentic, placement=args.placement, cameras=args.cameras, phase=args.phase,
            twins=args.twins, paste_fraction=args.paste_fraction, overwrite=args.overwrite,
        )
    except (SpliceError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {manifest} (benchmark it with: exiflang bench --dataset generic:{manifest.parent})")
    for twin in resolve_twins(args.twins):
        print(f"wrote {manifest.parent / twin / 'manifest.csv'} (generic:{manifest.parent / twin})")
    return 0
