"""`exiflang make-splices`: Columbia-style composites (region of photo A pasted into photo B, other camera)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the make-splices sub-command."""
    from .argtypes import jpeg_quality, non_negative_int, out_dir, positive_int

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
            "resized+JPEG copies of the same set. Deterministic for a given --seed."
        ),
    )
    p.add_argument("photo_dir", help="folder of camera photos with EXIF Make/Model (searched recursively; "
                   "a MANIFEST.csv with path,make,model columns is used as a fast path)")
    p.add_argument("--out", required=True, type=out_dir, help="output folder (created)")
    p.add_argument("--n", type=positive_int, default=60, help="number of composites (default 60)")
    p.add_argument("--n-authentic", type=non_negative_int, default=None, help="number of authentic controls (default: same as --n)")
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
    p.add_argument("--twins", action="store_true",
                   help="also write the same composites and controls as jpeg90/, jpeg75/ and resized75_jpeg90/ (0.75x "
                        "bicubic, then JPEG q90), all JPEG 4:2:0, each with its own manifest.csv (a generic: dataset)")
    p.add_argument("--rebuild", action="store_true",
                   help="re-create the images of an existing --out folder from its manifest.csv, masks/ and PHOTO_DIR "
                        "(share composites as recipes without the photos); pixels are checked against the manifest")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the composites and print where the manifest is."""
    from pathlib import Path

    from ..errors import CommandError
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
            n_authentic=args.n_authentic, placement=args.placement, cameras=args.cameras, phase=args.phase,
            twins=args.twins,
        )
    except SpliceError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {manifest} (benchmark it with: exiflang bench --dataset generic:{manifest.parent})")
    if args.twins:
        from ..eval.splices import TWINS

        for twin in TWINS:
            print(f"wrote {manifest.parent / twin / 'manifest.csv'} (generic:{manifest.parent / twin})")
    return 0
