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
            ".overlay.png, .mask.png; no PCA view without embeddings). With --out, an image whose report is "
            "already complete there for the same file content and the same settings is not analysed again "
            "(an interrupted run picks up where it stopped); --redo analyses everything."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (folders are searched recursively)")
    from .argtypes import add_device_argument, batch_size_int, out_dir, per_side_int, seed_int
    from exiflang.eval.methods import DEFAULT_METHOD, FUSION_PER_SIDE, LEARNED_PER_SIDE

    from .bench import METHOD_HELP, METHOD_NAMES

    p.add_argument("--method", choices=METHOD_NAMES, default=DEFAULT_METHOD, help=METHOD_HELP + (
        ". The default, fusion, reads the file's own condition (lossless or JPEG and its last quality, size) and "
        "uses the rule and the verdict calibration measured for files like it; on the desk-regime composites it "
        "localises better than the learned map alone on lossless, re-saved and small-paste files, and detects "
        "less well on resized and small images (docs/RESULTS.md)"))
    p.add_argument("--model", default="default", help="model name ('default' = built-in weights) or a weights folder (default: %(default)s)")
    p.add_argument("--seed", type=seed_int, default=0, help=f"initialisation seed of --method random, {seed_int.limits} (default: %(default)s)")
    p.add_argument("--out", type=out_dir, default=None, metavar="DIR",
                   help="write <stem>.json, <stem>.heatmap.npy, PNGs (overlay, mask, PCA) and index.html (one offline page "
                        "with every result) here; without it only the summary is printed")
    p.add_argument("--redo", action="store_true",
                   help="with --out: analyse every image again, even those whose report there is complete for the "
                        "same file content and settings (by default those are skipped and counted)")
    p.add_argument("--exif-check", action=argparse.BooleanOptionalAction, default=True,
                   help="in the HTML report (--out), also run `check-exif` on files with EXIF: do the pixels match "
                        "the file's own camera description? (a few seconds per file; default: on)")
    p.add_argument("--per-side", type=per_side_int, default=None, help=f"patches along the longer side, {per_side_int.limits}; sets the stride, which is never below 1 px (default: the density the method's verdict was calibrated at: {FUSION_PER_SIDE} for fusion, {LEARNED_PER_SIDE} for exiflang as in the paper)")
    p.add_argument("--batch-size", type=batch_size_int, default=64, help=f"patches per forward pass, {batch_size_int.limits} (default: %(default)s)")
    add_device_argument(p)
    p.set_defaults(func=run)


def collect_images(paths: list[str]) -> list[Path]:
    """Expand files and folders into a list of image files, each path once (a file named twice, or given
    beside its folder, is analysed once); missing paths are kept so they get reported."""
    import os

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            from exiflang.imageio import is_image_file

            found.extend(sorted(p for p in path.rglob("*") if is_image_file(p)))
        else:
            found.append(path)
    seen: set[str] = set()
    unique = []
    for path in found:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def unique_stems(paths: list[Path]) -> list[str]:
    """Output stems, one per input and distinct whatever the inputs: a file keeps its stem unless an earlier input
    has it; a repeat gets -2, -3, ... after it, the first such name that no input has as its own stem and no
    other input was given. Compared without case (a case-insensitive disk would make A.json and a.json one file).
    `d1/a.jpg d2/a.jpg a-2.jpg` give a, a-3, a-2."""
    key = str.casefold
    taken = {key(path.stem) for path in paths}  # every input's own stem is reserved for it
    given: set[str] = set()
    stems = []
    for path in paths:
        stem = path.stem
        if key(stem) in given:
            n = 2
            while key(f"{path.stem}-{n}") in taken:
                n += 1
            stem = f"{path.stem}-{n}"
            taken.add(key(stem))
        given.add(key(stem))
        stems.append(stem)
    return stems


def format_table(rows: list[dict]) -> str:
    """Plain-text summary table: one line per image."""
    header = (f"{'image':<40} {'size':>11} {'score':>7} {'prob.':>6} {'verdict':<18} {'flagged':>8} {'seconds':>8}"
              "  status")
    lines = [header, "-" * len(header)]
    for r in rows:
        name = r["name"] if len(r["name"]) <= 40 else "..." + r["name"][-37:]
        if r["error"]:
            lines.append(f"{name:<40} {'':>11} {'':>7} {'':>6} {'':<18} {'':>8} {'':>8}  FAILED: {r['error']}")
            continue
        status = "ok (done before, skipped)" if r.get("kept") else "ok"
        if r.get("verdict_reason") and r.get("verdict") == "cannot judge":
            status += f"; cannot judge: {r['verdict_reason']}"
        elif r.get("verdict_reason"):  # a verdict held back from "likely authentic", and why
            status += f"; {r['verdict_reason']}"
        elif r.get("verdict_caveat"):
            status += f"; probability not measured on images like this: {r['verdict_caveat']}"
        prob = "" if r.get("probability") is None else f"{r['probability']:.0%}"
        verdict = r.get("verdict") or "(no calibration)"
        score = f"{r['score']:.3f}" if abs(r["score"]) < 1000 else f"{r['score']:.1e}"  # the grid's scores run to 1e6
        lines.append(f"{name:<40} {r['size']:>11} {score:>7} {prob:>6} {verdict:<18} {r['flagged']:>7.1%} "
                     f"{r['seconds']:>8.2f}  {status}")
    return "\n".join(lines)


def format_provenance(rows: list[dict]) -> str:
    """One line per provenance check that is not ok, under its image's name ('' when every check is ok)."""
    from exiflang.exif.provenance import not_ok

    lines = []
    for r in rows:
        flagged = not_ok(r.get("provenance"))
        if flagged:
            lines.append(f"{r['name']}:")
            lines.extend(f"  {c['status']:<13} {c['id']:<11} {c['text']}" for c in flagged)
    return "\n".join(["", "metadata checks: warnings, and checks that could not be made:", *lines]) if lines else ""


def _build_method(args: argparse.Namespace):
    """The detector named by --method (the same registry as `exiflang bench`; the default is fusion)."""
    from exiflang.eval.bench import build_method

    from exiflang.eval.methods import default_per_side

    args.per_side = args.per_side or default_per_side(args.method)
    return build_method(args.method, args.model, None, args.device, args.per_side, args.batch_size,
                                seed=args.seed)


def _kept_row(out: Path, stem: str, expect: dict) -> dict | None:
    """The table row of an image whose report in out is complete for the same content and settings, else None."""
    from exiflang.eval.analysis import VERDICT_FIELDS
    from exiflang.forensics.report import finished_report

    meta = finished_report(out, stem, expect)
    if meta is None:
        return None
    try:
        size = meta["image_size"]
        return {"size": f"{int(size['width'])}x{int(size['height'])}", "score": float(meta["score"]),
                "flagged": float(meta["flagged_fraction"]), "seconds": float(meta.get("seconds") or 0.0),
                **{k: meta.get(k) for k in VERDICT_FIELDS}, "provenance": meta.get("provenance"), "kept": True}
    except (TypeError, KeyError, ValueError):
        return None  # a report without the numbers: analyse again


def _write_html(args: argparse.Namespace, rows: list[dict], stems: list[str]) -> tuple[Path | None, int]:
    """The batch's offline HTML page, DIR/index.html, from the per-image files (exiflang.report): its path (None
    when it could not be written) and how many of its files failed (each said in one line)."""
    from exiflang.report.html import ReportError, build_report, save_page

    log = lambda message: print(f"exiflang detect: {message}", file=sys.stderr)  # noqa: E731
    try:
        report = build_report(args.out, [(r["name"], stem, r["error"]) for r, stem in zip(rows, stems)],
                              model=args.model, device=args.device, exif_check=args.exif_check, log=log)
        return save_page(report, args.out), len(report.problems)
    except ReportError as exc:
        log(f"HTML report not written: {exc}")
        return None, 1


def run(args: argparse.Namespace) -> int:
    """Analyse every image (skipping those finished by an earlier run); report bad files; exit 1 if any failed."""
    from tqdm import tqdm

    from exiflang.device import resolve_device
    from exiflang.errors import CommandError, ExiflangError
    from exiflang.eval.analysis import input_sha256
    from exiflang.eval.file_analysis import analyse_and_report
    from exiflang.eval.methods import settings_digest

    from .argtypes import ensure_writable_dir

    args.device = resolve_device(args.device)  # a missing device is one line before any image is read
    images = collect_images(args.paths)
    if not images:
        raise CommandError(f"no images found in {' '.join(args.paths)}")
    if args.out is not None:
        ensure_writable_dir(args.out)  # an unwritable --out is one line now, not a traceback after the analysis
    method = _build_method(args)  # the model is resolved once, here
    digest = settings_digest(args.method, method)  # with the content hash, what a later run checks before skipping
    stems = unique_stems(images)
    rows = []
    bar = tqdm(list(zip(images, stems)), desc="detect", unit="img", disable=len(images) < 2, file=sys.stderr)
    for path, stem in bar:
        row = {"name": str(path), "error": None}
        # what the report records and a later run checks: the file's content hash and the settings' digest
        expect = None if args.out is None else {"input_sha256": input_sha256(path), "settings_digest": digest}
        kept = _kept_row(args.out, stem, expect) if expect and expect["input_sha256"] and not args.redo else None
        try:
            row.update(kept or analyse_and_report(method, args.method, path, args.out, stem, expect))
        except ExiflangError as exc:  # any project error of one file (unreadable, too small, ...): the batch goes on
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            row["error"] = message
            bar.write(f"exiflang detect: skipped {message}", file=sys.stderr)
        rows.append(row)
    print(format_table(rows))
    provenance = format_provenance(rows)
    if provenance:
        print(provenance)
    failed = sum(1 for r in rows if r["error"])
    page_failures = 0
    if args.out is not None:
        n_kept = sum(1 for r in rows if r.get("kept"))
        if n_kept:
            print(f"\n{n_kept} of {len(rows)} images skipped: already analysed, their reports in {args.out}/ are "
                  f"complete for the same file content and settings (--redo analyses them again)")
        pca = ", .pca.png" if args.method in ("exiflang", "random") else ""
        print(f"\nreports in {args.out}/ (<stem>.overlay.png, .mask.png{pca}, .json, .heatmap.npy)")
        page, page_failures = _write_html(args, rows, stems)  # each failure already said in one line
        if page is not None:
            print(f"HTML report: {page}")
    if failed:
        print(f"{failed} of {len(rows)} images failed", file=sys.stderr)
    return 1 if failed or page_failures else 0
