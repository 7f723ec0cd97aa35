"""`exiflang make-splices`: Columbia-style composites (region of photo A pasted into photo B, other camera)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the make-splices sub-command."""
    p = subparsers.add_parser(
        "make-splices",
        aliases=["make_splices"],
        help="make spliced composites + masks + authentic controls from a photo collection",
        description=(
            "Cut a smooth random region (5-30%% of the frame) from photo A and paste it, pixel for pixel at full "
            "resolution, into photo B taken by a different camera (EXIF Make/Model). Writes spliced/, masks/ "
            "(PNG 0/255), authentic/ controls and manifest.csv (the `generic:` benchmark layout, with columns "
            "recording both photos and cameras). Deterministic for a given --seed."
        ),
    )
    p.add_argument("photo_dir", help="folder of camera photos with EXIF Make/Model (searched recursively; "
                   "a MANIFEST.csv with path,make,model columns is used as a fast path)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=60, help="number of composites (default 60)")
    p.add_argument("--n-authentic", type=int, default=None, help="number of authentic controls (default: same as --n)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default 0)")
    p.add_argument("--jpeg-quality", type=int, default=None, metavar="Q",
                   help="also re-save every image as JPEG at quality Q and benchmark those (default: lossless PNG only)")
    p.add_argument("--placement", choices=["random", "same"], default="random",
                   help="paste at a random position of B, or at the region's position in A when it fits (default random)")
    p.add_argument("--rebuild", action="store_true",
                   help="re-create the images of an existing --out folder from its manifest.csv, masks/ and PHOTO_DIR "
                        "(share composites as recipes without the photos); pixels are checked against the manifest")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the composites and print where the manifest is."""
    from pathlib import Path

    from ..cli import CommandError
    from ..eval.splices import SpliceError, make_splices, rebuild_splices

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
            n_authentic=args.n_authentic, placement=args.placement,
        )
    except SpliceError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {manifest} (benchmark it with: exiflang bench --dataset generic:{manifest.parent})")
    return 0
