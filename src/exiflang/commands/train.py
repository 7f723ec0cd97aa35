"""`exiflang train`: contrastive training of patch and EXIF-text encoders (also under torchrun).

The flags are derived from `exiflang.training.options.TrainOptions` (names, defaults, ranges, help): the
options are written once. Only the three history flags are composed here into the `history` recipe.
"""
from __future__ import annotations

import argparse
from typing import Any

EPILOG = """examples:
  exiflang train --index runs/index --config small --out runs/default
  exiflang train --index runs/index --config tiny --out runs/t --steps 50 --eval-every 25
  exiflang train --index runs/index --out runs/default --resume          # continue a killed run
  torchrun --nproc-per-node 8 -m exiflang train --index IDX --config resnet18 --out runs/r18 --device cuda
"""
HISTORY_OPS = ["gamma", "blur", "resample", "noise", "jpeg", "double_jpeg"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = subparsers.add_parser(
        "train", help="train the patch/EXIF-text model contrastively",
        description="Align full-resolution image patches with their photo's EXIF text (CLIP-style symmetric "
                    "InfoNCE). Writes RUN_DIR/metrics.jsonl, RUN_DIR/checkpoint.safetensors (every "
                    "--ckpt-every steps) and, at the end, RUN_DIR/model/ (load with exiflang.load_model).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from ..training.options import cli_options

    groups: dict[str, Any] = {}
    for f in cli_options():
        group = f.metadata["group"]
        if group not in groups:
            if group == "optimisation":  # right after the model flags
                _add_history_flags(p.add_argument_group("processing history as language"))
            groups[group] = p.add_argument_group(group)
        _add_option(groups[group], f)
    p.set_defaults(func=run)


def _add_option(group: Any, f: Any) -> None:
    """One TrainOptions field as a flag; unset flags are left out, so the dataclass default applies."""
    from ..training.options import describe_range

    flag, meta = "--" + f.name.replace("_", "-"), f.metadata
    default_text = "" if f.default is None else f" (default: {f.default})"
    if f.name == "out":
        group.add_argument(flag, required=True, metavar=meta["metavar"], help=meta["help"])
    elif f.name == "amp":
        group.add_argument("--amp", dest="amp", action="store_true", default=argparse.SUPPRESS, help=meta["help"])
        group.add_argument("--no-amp", dest="amp", action="store_false", default=argparse.SUPPRESS,
                           help="full float32 on GPU")
    elif f.type in ("bool", bool) and f.default is True:
        group.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                           default=argparse.SUPPRESS, help=f"do not {meta['help'][0].lower()}{meta['help'][1:]}")
    elif f.type in ("bool", bool):
        group.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=meta["help"])
    else:
        limits = describe_range(meta)
        group.add_argument(flag, type=_parser_for(f), choices=meta["choices"], metavar=meta["metavar"],
                           default=argparse.SUPPRESS,
                           help=f"{meta['help']}{f'; {limits}' if limits else ''}{default_text}")


def _parser_for(f: Any):
    """An argparse type for a field: int/float/str conversion plus the field's range (exit 2 on a bad value)."""
    from ..training.options import check_range

    kind = str(f.type)
    convert = int if kind.startswith("int") else float if kind.startswith("float") else str

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if convert is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            check_range(f.name, value, {**f.metadata, "choices": None}, ValueError)
        except ValueError as exc:  # argparse already names the flag: keep "must be > 0, got -1"
            raise argparse.ArgumentTypeError(str(exc).split(" ", 1)[1]) from None
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


def _add_history_flags(h: Any) -> None:
    """The CLI's three history flags (composed into TrainOptions.history by `history_recipe`)."""
    h.add_argument("--history-prob", type=float, default=0.0, metavar="P",
                   help="share of photo visits processed on the fly (gamma, blur/sharpen, resampling, noise, JPEG "
                        "re-compression single/double) with what was applied appended to the EXIF text as tags; "
                        "also turns on block-phase tags (default 0: the plain recipe, crops at any offset)")
    h.add_argument("--no-history-op", action="append", default=[], metavar="OP", choices=HISTORY_OPS,
                   help=f"switch one processing op off (repeatable): {', '.join(HISTORY_OPS)}")
    h.add_argument("--no-phase-tags", dest="phase_tags", action="store_false",
                   help="do not tag crops with their 8x8 JPEG block offset (crops still land at chosen offsets)")
    h.add_argument("--phase-tags", dest="phase_tags", action="store_true", default=None,
                   help="block-phase tags even with --history-prob 0")


def history_recipe(args: argparse.Namespace) -> dict | None:
    """TrainOptions.history from the history flags (None: the plain recipe)."""
    if not 0.0 <= args.history_prob <= 1.0:
        from ..errors import CommandError

        raise CommandError(f"--history-prob must be in [0, 1], got {args.history_prob:g}")
    if args.history_prob <= 0 and not args.phase_tags:
        return None
    from ..data.history import HistoryConfig

    off = {op: False for op in args.no_history_op}
    return HistoryConfig(prob=args.history_prob, phase_tags=args.phase_tags is not False, **off).to_dict()


def run(args: argparse.Namespace) -> int:
    """Build TrainOptions from the arguments given and train."""
    from ..training import TrainOptions, train
    from ..training.options import cli_options

    given = {f.name: getattr(args, f.name) for f in cli_options() if hasattr(args, f.name)}
    if not given.get("resume"):
        given["history"] = history_recipe(args)
    summary = train(TrainOptions(**given, given=tuple(sorted(given))))
    if summary.get("rank", 0) != 0:
        return 0  # under torchrun only rank 0 reports
    if summary.get("model_dir"):
        print(f"model saved to {summary['model_dir']} ({summary['wall_time_s']:.0f} s)")
    else:
        print(f"stopped at step {summary['steps_done']}; continue with --resume ({summary['checkpoint']})")
    return 0
