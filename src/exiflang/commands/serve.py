"""`exiflang serve [--host 127.0.0.1] [--port 8000]`: a local web page to upload photos and read their reports."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Start a small web app on this computer: upload one or several photos in a browser and read, for each one, the
same report as `exiflang detect --out` writes, with the same default method (heatmap with its colour bar, mask,
calibrated probability of manipulation and verdict for files of its kind, the EXIF check, a plain-language
explanation). A progress bar follows the upload and the analysis. Bound to 127.0.0.1 by default: only this
computer can reach it. Nothing leaves the machine; uploads live in a temporary folder deleted when the server
stops.

Only the app's own page may upload: a browser request from any other web page (its Origin is not the address
the server was reached at), or one naming a host other than this computer's loopback address, is refused with
403. Limits, each refused with a one-line JSON message: --max-queued uploads waiting for the analysis (429
beyond, with Retry-After), --max-files images and --max-upload-mb per upload (413 beyond), --max-megapixels
per image (that image fails, the others are analysed). --port 0 picks a free port and prints it.
"""


def register(subparsers) -> None:
    """Add the `serve` sub-command."""
    from .argtypes import (add_device_argument, batch_size_int, megapixels, per_side_int, queued_uploads, tcp_port,
                           upload_files, upload_mb)
    from .bench import METHOD_NAMES

    from exiflang.eval.methods import DEFAULT_METHOD, FUSION_PER_SIDE, LEARNED_PER_SIDE
    from exiflang.report.web import (DEFAULT_HOST, DEFAULT_MAX_FILES, DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_QUEUED,
                                     DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT)

    p = subparsers.add_parser("serve", help="local web page: upload photos, get the splice report",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default: %(default)s, this computer only; 0.0.0.0 exposes the app "
                        "to the network)")
    p.add_argument("--port", type=tcp_port, default=DEFAULT_PORT,
                   help="TCP port (default: %(default)s; 0: a free one, printed at start)")
    p.add_argument("--model", default="default", help="model name or weights folder (default: the built-in model)")
    p.add_argument("--method", choices=METHOD_NAMES, default=DEFAULT_METHOD,
                   help="the detector, as in `exiflang detect` (default: %(default)s, the same as detect's, so a file "
                        "gets the same verdict from the page and from the command line)")
    p.add_argument("--per-side", type=per_side_int, default=None,
                   help=f"patches along the longer side, {per_side_int.limits} (default: the density the method's "
                        f"verdict was calibrated at: {FUSION_PER_SIDE} for fusion, {LEARNED_PER_SIDE} for exiflang)")
    p.add_argument("--batch-size", type=batch_size_int, default=64,
                   help=f"patches per forward pass, {batch_size_int.limits} (default: %(default)s)")
    add_device_argument(p)
    p.add_argument("--exif-check", action=argparse.BooleanOptionalAction, default=True,
                   help="also check each file's EXIF against its pixels (default: on)")
    p.add_argument("--max-upload-mb", type=upload_mb, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload (all files together) in MB, {upload_mb.limits}; larger: 413 (default: %(default)g)")
    p.add_argument("--max-files", type=upload_files, default=DEFAULT_MAX_FILES,
                   help=f"most images per upload, {upload_files.limits}; more: 413 (default: %(default)s)")
    p.add_argument("--max-queued", type=queued_uploads, default=DEFAULT_MAX_QUEUED,
                   help=f"most uploads waiting for the analysis (one is analysed at a time), {queued_uploads.limits}; "
                        f"more: 429 (default: %(default)s)")
    p.add_argument("--max-megapixels", type=megapixels, default=DEFAULT_MAX_MEGAPIXELS,
                   help=f"largest image in megapixels, {megapixels.limits} (default: %(default)g)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C."""
    from exiflang.device import resolve_device
    from exiflang.report.web import ServeConfig, serve

    args.device = resolve_device(args.device)
    config = ServeConfig(model=args.model, device=args.device, method=args.method, per_side=args.per_side,
                         batch_size=args.batch_size,
                         exif_check=args.exif_check, max_upload_bytes=int(args.max_upload_mb * 1_000_000),
                         max_files=args.max_files, max_pixels=int(args.max_megapixels * 1_000_000),
                         max_queued=args.max_queued)
    serve(args.host, args.port, config)
    return 0
