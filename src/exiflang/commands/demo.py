"""`exiflang demo --out DIR`: splice analysis of a composite the project generates itself, with the built-in model."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the `demo` sub-command."""
    from .argtypes import add_device_argument, out_dir, seed_int

    p = subparsers.add_parser(
        "demo",
        help="run splice detection on a generated composite (no data needed)",
        description=(
            "Generates two synthetic scenes, processes them differently (host: sensor-like mosaic + noise + "
            "JPEG q=95; donor: resampled + JPEG q=70), pastes a region of the donor into the host with a known "
            "mask, runs `detect` on the composite with the built-in model and writes the report. Nothing is "
            "downloaded and no photo is needed."
        ),
    )
    p.add_argument("--out", type=out_dir, required=True, metavar="DIR", help="folder for the composite, its true mask and the report")
    p.add_argument("--model", default="default", help="model name or weights folder (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help=f"random seed of the generated scenes, {seed_int.limits} (default: %(default)s)")
    p.add_argument("--size", type=parse_size, default="1024x768", metavar="WxH",
                   help=f"composite size, each side in [{MIN_SIDE}, {MAX_SIDE}] (default: %(default)s)")
    add_device_argument(p)
    p.set_defaults(func=run)


MIN_SIDE, MAX_SIDE = 128, 4096  # one patch of the built-in model; 16 MP, a few seconds of scene rendering


def parse_size(text: str) -> tuple[int, int]:
    """'1024x768' -> (1024, 768); an argparse type (a bad size is refused at parse time, exit 2)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 1024x768, got {text!r}") from None
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"each side must be in [{MIN_SIDE}, {MAX_SIDE}], got {text!r}")
    return w, h


def run(args: argparse.Namespace) -> int:
    """Make the composite, detect, write the report, print the score and p-AP against the known mask."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    from exiflang.device import resolve_device
    from exiflang.forensics import Detector, write_report
    from exiflang.forensics.synthetic import make_composite
    from exiflang.imageio import atomic_save_image

    width, height = args.size
    args.device = resolve_device(args.device)
    detector = Detector.load(args.model, args.device)  # a bad model is a one-line error before any work
    print(f"generating a {width}x{height} composite (seed {args.seed}) ...")
    composite, truth = make_composite(height, width, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_save_image(args.out / "demo_composite.png", composite, "PNG")
    atomic_save_image(args.out / "demo_truth_mask.png", (truth * 255).astype(np.uint8), "PNG")
    result = detector.detect(composite)
    from exiflang.exif.provenance import provenance_checks
    from exiflang.report.html import write_html_report

    source = args.out / "demo_composite.png"
    paths = write_report(result, composite, args.out, "demo_composite",
                         {"provenance": provenance_checks(source, composite)})
    page = write_html_report(args.out, [(str(source), "demo_composite", None)], model=args.model,
                             device=args.device, exif_check=False, title="exiflang demo: a composite made here")
    p_ap = float(average_precision_score(truth.ravel(), result.heatmap.ravel()))
    iou = float((result.mask & truth).sum() / max((result.mask | truth).sum(), 1))
    print(f"model           {result.model_id}")
    print(f"score           {result.score:.3f}   (image score; higher = more likely manipulated)")
    print(f"p-AP            {p_ap:.3f}   (pixel average precision of the heatmap; chance = {truth.mean():.3f})")
    print(f"mask IoU        {iou:.3f}   (normalised-cut mask vs the pasted region)")
    print(f"seconds         {result.seconds:.2f}")
    print(f"look at         {paths['overlay.png']}  (heatmap over the photo; bright = likely spliced)")
    print(f"                {paths['mask.png']}, {paths['pca.png']}, {args.out / 'demo_truth_mask.png'}")
    print(f"HTML report     {page}")
    print("your own photos: exiflang detect PHOTO.jpg --out report/")
    return 0
