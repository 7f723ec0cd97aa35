"""`exiflang train`: contrastive training of patch and EXIF-text encoders (also under torchrun).

The flags are derived from `exiflang.training.options.TrainOptions` (names, defaults, ranges, help): the
options are written once. Only the three history flags are composed here into the `history` recipe.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EPILOG = """examples:
  exiflang train --index runs/index --config small --out runs/default
  exiflang train --index runs/index --config tiny --out runs/t --steps 50 --eval-every 25
  exiflang train --index runs/index --out runs/default --resume          # continue a killed run
  exiflang train --index runs/index --out runs/default --overwrite       # start that run folder afresh
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
    groups["run"].add_argument(
        "--overwrite", action="store_true",
        help="start a new run in a RUN_DIR that already holds a checkpoint or model (they are replaced as the new "
             "run writes its own; metrics.jsonl goes on with the new run's lines); without it such a RUN_DIR is "
             "refused unless --resume continues it")
    p.set_defaults(func=run)


def _add_option(group: Any, f: Any) -> None:
    """One TrainOptions field as a flag; unset flags are left out, so the dataclass default applies."""
    from ..ranges import describe_range

    flag, meta = "--" + f.name.replace("_", "-"), f.metadata
    default_text = "" if f.default is None else f" (default: {f.default})"
    if f.name == "out":
        group.add_argument(flag, required=True, type=_parser_for(f), metavar=meta["metavar"], help=meta["help"])
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
    """An argparse type for a field: the shared range-checked number types (exit 2 on a bad value)."""
    from .argtypes import device_name, out_dir, ranged

    if f.name == "device":
        return device_name
    if f.name == "out":
        return lambda text: str(out_dir(text))  # TrainOptions.out is a str
    kind = str(f.type)
    if not (kind.startswith("int") or kind.startswith("float")):
        return str
    meta = f.metadata
    return ranged(int if kind.startswith("int") else float, meta["low"], meta["high"],
                  open_low=meta["open_low"], open_high=meta["open_high"])


def _add_history_flags(h: Any) -> None:
    """The CLI's history flags (composed into TrainOptions.history by `history_recipe`)."""
    from .argtypes import unit_interval

    h.add_argument("--history-prob", type=unit_interval, default=0.0, metavar="P",
                   help="share of photo visits processed on the fly (gamma, blur/sharpen, resampling, noise, JPEG "
                        "re-compression single/double) with what was applied appended to the EXIF text as tags; "
                        "also turns on block-phase tags (default 0: the plain recipe, crops at any offset)")
    h.add_argument("--no-history-op", action="append", default=[], metavar="OP", choices=HISTORY_OPS,
                   help=f"switch one processing op off (repeatable): {', '.join(HISTORY_OPS)}")
    h.add_argument("--no-phase-tags", dest="phase_tags", action="store_false",
                   help="do not tag crops with their 8x8 JPEG block offset (crops still land at chosen offsets)")
    h.add_argument("--phase-tags", dest="phase_tags", action="store_true", default=None,
                   help="block-phase tags even with --history-prob 0")
    h.add_argument("--original-grid-tags", action="store_true",
                   help="tag a re-compressed visit with the camera grid's offset from the re-compression's grid "
                        "(aligned vs misaligned double compression: a re-saved splice)")
    h.add_argument("--aligned-windows", type=unit_interval, default=0.0, metavar="P",
                   help="share of processed windows cut on the camera's 8x8 grid, as when a whole photo is re-saved "
                        "(default 0: any offset)")
    h.add_argument("--shared-history", type=unit_interval, default=0.0, metavar="P",
                   help="share of batches whose photos all get one and the same processing, as every patch of a "
                        "re-saved or resized composite does, so that only the cameras tell the batch's texts apart "
                        "(default 0: each photo draws its own)")
    h.add_argument("--warp", type=unit_interval, default=0.0, metavar="P",
                   help="share of photo visits lens-warped first as a whole frame (radial k1 over lensfun's range), "
                        "the k1 and the processed window's distance from the centre written as tags, for camera "
                        "calibration (default 0)")


def history_recipe(args: argparse.Namespace) -> dict | None:
    """TrainOptions.history from the history flags (None: the plain recipe)."""
    from ..errors import CommandError

    if (args.shared_history > 0 or args.warp > 0) and args.history_prob <= 0:
        flag = "--shared-history" if args.shared_history > 0 else "--warp"
        raise CommandError(f"{flag} is part of the processing history that --history-prob turns on: give "
                           "--history-prob above 0 too")
    if args.history_prob <= 0 and not args.phase_tags:
        return None
    from ..data.history import HistoryConfig

    off = {op: False for op in args.no_history_op}
    return HistoryConfig(prob=args.history_prob, phase_tags=args.phase_tags is not False, **off,
                         original_grid_tags=args.original_grid_tags, aligned_windows=args.aligned_windows,
                         shared_history=args.shared_history, warp=args.warp).to_dict()


def refuse_to_replace_a_run(out: str, resume: bool, overwrite: bool) -> None:
    """CommandError when a new run would silently replace the checkpoint or model already in `out`."""
    from ..errors import CommandError
    from ..training import CHECKPOINT

    if resume and overwrite:
        raise CommandError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    held = [name for name in (CHECKPOINT, "model/") if (Path(out) / name).exists()]
    if held and not (resume or overwrite):
        raise CommandError(f"{out} already holds a training run ({' and '.join(held)}); continue it with --resume, "
                           f"replace it with --overwrite, or give a new --out")


def run(args: argparse.Namespace) -> int:
    """Build TrainOptions from the arguments given and train."""
    from ..training import TrainOptions, train
    from ..training.options import cli_options

    refuse_to_replace_a_run(args.out, bool(getattr(args, "resume", False)), args.overwrite)
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
