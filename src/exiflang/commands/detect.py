"""`exiflang detect PATH... [--model NAME] [--out DIR]`: splice heatmap, mask and score for each image."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the `detect` sub-command."""
    p = subparsers.add_parser(
        "detect",
        help="find spliced regions in photos (no metadata needed)",
        description=(
            "Zero-shot splice detection and localisation: embeds a dense grid of full-resolution patches, "
            "measures how consistent every region is with the rest of the image, and reports a heatmap "
            "(high = inconsistent, likely spliced), a normalised-cut mask and an image-level score "
            "(higher = more likely manipulated). Maps are in the file's stored pixel coordinates; the PNGs "
            "are rotated upright for viewing. --method picks another detector (the same ones as `exiflang bench`): "
            "their reports have the same file names (<stem>.json with score and model_id, .heatmap.npy, "
            ".overlay.png, .mask.png; no PCA view without embeddings)."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (folders are searched recursively)")
    from .argtypes import add_device_argument, batch_size_int, out_dir, per_side_int, seed_int
    from .bench import METHOD_HELP, METHOD_NAMES

    p.add_argument("--method", choices=METHOD_NAMES, default="exiflang", help=METHOD_HELP)
    p.add_argument("--model", default="default", help="model name ('default' = built-in weights) or a weights folder (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help=f"initialisation seed of --method random, {seed_int.limits} (default: %(default)s)")
    p.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write <stem>.json, <stem>.heatmap.npy, PNGs (overlay, mask, PCA) and index.html (one offline page "
                        "with every result) here; without it only the summary is printed")
    p.add_argument("--exif-check", action=argparse.BooleanOptionalAction, default=True,
                   help="in the HTML report (--out), also run `check-exif` on files with EXIF: do the pixels match "
                        "the file's own camera description? (a few seconds per file; default: on)")
    p.add_argument("--per-side", type=per_side_int, default=30, help=f"patches along the longer side, {per_side_int.limits}; sets the stride, which is never below 1 px (default: %(default)s, as in the paper)")
    p.add_argument("--batch-size", type=batch_size_int, default=64, help=f"patches per forward pass, {batch_size_int.limits} (default: %(default)s)")
    add_device_argument(p)
    p.set_defaults(func=run)


def collect_images(paths: list[str]) -> list[Path]:
    """Expand files and folders into a sorted list of image files; missing paths are kept so they get reported."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            from exiflang.imageio import is_image_file

            found.extend(sorted(p for p in path.rglob("*") if is_image_file(p)))
        else:
            found.append(path)
    return found


def unique_stems(paths: list[Path]) -> list[str]:
    """Output stems, with -2, -3, ... appended when two inputs share a file stem."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        n = seen.get(path.stem, 0) + 1
        seen[path.stem] = n
        stems.append(path.stem if n == 1 else f"{path.stem}-{n}")
    return stems


def format_table(rows: list[dict]) -> str:
    """Plain-text summary table: one line per image."""
    header = f"{'image':<40} {'size':>11} {'score':>7} {'flagged':>8} {'seconds':>8}  status"
    lines = [header, "-" * len(header)]
    for r in rows:
        name = r["name"] if len(r["name"]) <= 40 else "..." + r["name"][-37:]
        if r["error"]:
            lines.append(f"{name:<40} {'':>11} {'':>7} {'':>8} {'':>8}  FAILED: {r['error']}")
        else:
            lines.append(
                f"{name:<40} {r['size']:>11} {r['score']:>7.3f} {r['flagged']:>7.1%} {r['seconds']:>8.2f}  ok"
            )
    return "\n".join(lines)


def _build_method(args: argparse.Namespace):
    """The detector named by --method (the same registry as `exiflang bench`; the default is the learned one)."""
    from exiflang.eval.bench import build_method

    return build_method(args.method, args.model, None, args.device, args.per_side, args.batch_size,
                                seed=args.seed)


def _run_method(method, method_name: str, path: Path, out: Path | None, stem: str) -> dict:
    """One image through a bench method; write its report (write_report, or the light report); return a table row."""
    import time

    from exiflang.eval.bench import MethodError, _write_light_report, call_analyse
    from exiflang.forensics import write_report
    from exiflang.imageio import load_rgb

    pixels, info = load_rgb(path)
    t0 = time.perf_counter()
    analysis = call_analyse(method, pixels, path)
    seconds = time.perf_counter() - t0
    if analysis.shape != pixels.shape[:2]:  # a learned map stays per cell: nothing is expanded to pixels here
        raise MethodError(f"{path}: method {method_name} returned a {analysis.shape} map for a {pixels.shape[:2]} image")
    if out is not None:
        if analysis.result is not None:
            analysis.result.source, analysis.result.orientation = str(path), info.orientation
            analysis.result.seconds = seconds
            write_report(analysis.result, pixels, out, stem)
        else:
            _write_light_report(analysis, pixels, out, stem, method.method_id,
                                info={"method": method_name, "image": str(path), "seconds": round(seconds, 4),
                                      "orientation": info.orientation,
                                      "coordinates": "stored pixel array (EXIF Orientation not applied); PNGs are "
                                                     "rotated upright for display"},
                                orientation=info.orientation)
    h, w = analysis.shape
    return {"size": f"{w}x{h}", "score": float(analysis.score), "flagged": analysis.flagged_fraction,
            "seconds": seconds}


def _write_html(args: argparse.Namespace, rows: list[dict], stems: list[str]) -> Path:
    """The batch's offline HTML page, DIR/index.html, from the per-image files just written (exiflang.report)."""
    from exiflang.report.html import write_html_report

    log = lambda message: print(f"exiflang detect: {message}", file=sys.stderr)  # noqa: E731
    return write_html_report(args.out, [(r["name"], stem, r["error"]) for r, stem in zip(rows, stems)],
                             model=args.model, device=args.device, exif_check=args.exif_check, log=log)


def run(args: argparse.Namespace) -> int:
    """Analyse every image; report and skip bad files; exit 1 if any failed."""
    from tqdm import tqdm

    from exiflang.device import resolve_device
    from exiflang.errors import CommandError, ExiflangError

    args.device = resolve_device(args.device)  # a missing device is one line before any image is read
    images = collect_images(args.paths)
    if not images:
        raise CommandError(f"no images found in {' '.join(args.paths)}")
    method = _build_method(args)  # the model is resolved once, here
    rows = []
    bar = tqdm(list(zip(images, unique_stems(images))), desc="detect", unit="img", disable=len(images) < 2, file=sys.stderr)
    for path, stem in bar:
        row = {"name": str(path), "error": None}
        try:
            row.update(_run_method(method, args.method, path, args.out, stem))
        except ExiflangError as exc:  # any project error of one file (unreadable, too small, ...): the batch goes on
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            row["error"] = message
            bar.write(f"exiflang detect: skipped {message}", file=sys.stderr)
        rows.append(row)
    print(format_table(rows))
    failed = sum(1 for r in rows if r["error"])
    if args.out is not None:
        pca = ", .pca.png" if args.method in ("exiflang", "random") else ""
        print(f"\nreports in {args.out}/ (<stem>.overlay.png, .mask.png{pca}, .json, .heatmap.npy)")
        page = _write_html(args, rows, unique_stems(images))
        print(f"HTML report: {page}")
    if failed:
        print(f"{failed} of {len(rows)} images failed", file=sys.stderr)
    return 1 if failed else 0
