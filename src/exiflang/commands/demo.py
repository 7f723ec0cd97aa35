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
    """Make the composite, analyse it as `exiflang detect` would (same default method, same report), print the score,
    probability, verdict and p-AP against the known mask."""
    import numpy as np

    from exiflang.device import resolve_device
    from exiflang.eval.file_analysis import analyse_and_report
    from exiflang.eval.methods import DEFAULT_METHOD, build_method, default_per_side
    from exiflang.forensics.synthetic import make_composite
    from exiflang.imageio import atomic_save_image
    from exiflang.report.html import write_html_report

    width, height = args.size
    args.device = resolve_device(args.device)
    # `exiflang detect`'s default method at its calibrated density; a bad model is a one-line error before any work
    method = build_method(DEFAULT_METHOD, args.model, None, args.device, default_per_side(DEFAULT_METHOD))
    print(f"generating a {width}x{height} composite (seed {args.seed}) ...")
    composite, truth = make_composite(height, width, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / "demo_composite.png"
    atomic_save_image(source, composite, "PNG")
    atomic_save_image(args.out / "demo_truth_mask.png", (truth * 255).astype(np.uint8), "PNG")
    row = analyse_and_report(method, DEFAULT_METHOD, source, args.out, "demo_composite")
    page = write_html_report(args.out, [(str(source), "demo_composite", None)], model=args.model,
                             device=args.device, exif_check=False, title="exiflang demo: a composite made here")
    _print_summary(args.out, method, row, truth, page)
    return 0


def _print_summary(out, method, row: dict, truth, page) -> None:
    """What the demo found, beside the known mask: score, probability, verdict, p-AP, mask IoU, files."""
    import numpy as np
    from PIL import Image
    from sklearn.metrics import average_precision_score

    heat = np.load(out / "demo_composite.heatmap.npy")
    mask = np.asarray(Image.open(out / "demo_composite.mask.png").convert("L")) > 127
    p_ap = float(average_precision_score(truth.ravel(), heat.ravel()))
    iou = float((mask & truth).sum() / max((mask | truth).sum(), 1))
    probability = "–" if row.get("probability") is None else f"{row['probability']:.0%}"
    reason = f" ({row['verdict_reason']})" if row.get("verdict_reason") else ""
    print(f"method          {method.method_id}")
    print(f"verdict         {row.get('verdict') or '–'}{reason}, probability of manipulation {probability}")
    print(f"score           {row['score']:.3f}   (image score; higher = more likely manipulated)")
    print(f"p-AP            {p_ap:.3f}   (pixel average precision of the heatmap; chance = {truth.mean():.3f})")
    print(f"mask IoU        {iou:.3f}   (the mask vs the pasted region)")
    print(f"seconds         {row['seconds']:.2f}")
    print(f"look at         {out / 'demo_composite.overlay.png'}  (heatmap over the photo; bright = likely spliced)")
    print(f"                {out / 'demo_composite.mask.png'}, {out / 'demo_truth_mask.png'}")
    print(f"HTML report     {page}")
    print("your own photos: exiflang detect PHOTO.jpg --out report/")
