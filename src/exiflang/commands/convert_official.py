"""`exiflang convert-official CHECKPOINT --out MODEL_DIR`: the authors' released weights -> an exiflang model folder."""
from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Convert the official EXIF-as-language checkpoint (wrapper_75_new.pth, from the authors' repository
github.com/hellomuffin/exif-as-language) into an exiflang model folder (model.safetensors + config.json)
with the `paper` architecture. The file is read with torch.load(weights_only=True): a file holding anything
but tensors and plain containers is refused, so a hostile .pth cannot run code. The converted folder works
wherever a model is accepted, e.g. `exiflang detect photo.jpg --model MODEL_DIR`, and from Python with
`exiflang.load_model(MODEL_DIR)`.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `convert-official` sub-command."""
    from .argtypes import out_dir

    parser = subparsers.add_parser(
        "convert-official",
        help="convert the authors' released checkpoint (wrapper_75_new.pth) to an exiflang model folder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=Path,
                        help="the official .pth file (a torch.save of {epoch, model, optimizer, lr_sched})")
    parser.add_argument("--out", required=True, type=out_dir, metavar="MODEL_DIR",
                        help="folder to write model.safetensors and config.json to (created if needed)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a model already in MODEL_DIR (default: refuse)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="write the model even if some of its weights are absent from the checkpoint "
                             "(they stay at random init: for inspection only; default: refuse)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert, print the report, and turn conversion errors into CommandError."""
    from ..errors import CommandError
    from ..models.convert_official import OfficialCheckpointError, convert_official
    from ..models.factory import CONFIG_FILE, WEIGHTS_FILE

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a folder")
    existing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if (out / name).exists()]
    if existing and not args.force:
        raise CommandError(f"{out}: already holds a model ({', '.join(existing)}); pass --force to overwrite it")
    print(f"reading {args.checkpoint} (weights only: no code in the file can run) ...", flush=True)
    try:
        report = convert_official(args.checkpoint, out, allow_missing=args.allow_missing)
    except OfficialCheckpointError as exc:
        raise CommandError(str(exc)) from None
    for line in report.lines():
        print(line)
    print(f"use it with: exiflang detect PHOTO --model {out}   or   exiflang.load_model({str(out)!r})")
    return 0
