"""`exiflang train`: contrastive training of patch and EXIF-text encoders (also under torchrun)."""
from __future__ import annotations

import argparse

from ..errors import CommandError

EPILOG = """examples:
  exiflang train --index runs/index --config small --out runs/default
  exiflang train --index runs/index --config tiny --out runs/t --steps 50 --eval-every 25
  exiflang train --index runs/index --out runs/default --resume          # continue a killed run
  torchrun --nproc-per-node 8 -m exiflang.train --index IDX --config resnet18 --out runs/r18 --device cuda
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = subparsers.add_parser(
        "train", help="train the patch/EXIF-text model contrastively",
        description="Align full-resolution image patches with their photo's EXIF text (CLIP-style symmetric "
                    "InfoNCE). Writes RUN_DIR/metrics.jsonl, RUN_DIR/checkpoint.safetensors (every "
                    "--ckpt-every steps) and, at the end, RUN_DIR/model/ (load with exiflang.load_model).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("data")
    src.add_argument("--index", metavar="INDEX", help="index folder made by `exiflang index`")
    src.add_argument("--shards", metavar="DIR", help="webdataset shard folder made by `exiflang shard` (instead of --index)")
    src.add_argument("--val-fraction", type=float, default=0.15,
                     help="fraction of photos held out (split by photo content hash) for retrieval scores (default 0.15)")
    src.add_argument("--camera-split", choices=["none", "heldout"], default="none",
                     help="heldout: train on every photo of the cameras outside the project's held-out camera split "
                          "(exiflang.data.cameras) and evaluate on the held-out cameras; the camera lists go into "
                          "the model's config.json (default none: photo-level split by --val-fraction)")
    src.add_argument("--cache", choices=["auto", "yes", "no"], default="auto",
                     help="keep decoded photos in memory (auto: when they fit in 4 GiB)")
    src.add_argument("--workers", type=int, default=None,
                     help="data-loading processes (default: 0 when cached, else 2)")
    m = p.add_argument_group("model and objective")
    m.add_argument("--config", default="small",
                   help="model config name (tiny, small, resnet18, paper, ...) or a JSON file (default small)")
    m.add_argument("--objective", choices=["exif", "image-only"], default="exif",
                   help="exif: patches vs EXIF text (the method); image-only: crops of one photo as positives "
                        "(CropCLR-style baseline, no EXIF)")
    m.add_argument("--image-only-scale", type=float, default=10.0,
                   help="logit scale (1/temperature) of the image-only loss and of the patch-patch term (default 10)")
    m.add_argument("--patch-patch-weight", type=float, default=0.0, metavar="W",
                   help="add W x an image-image term beside patch-text: crops with the same text (same photo, "
                        "history and block phase) are positives (default 0: off)")
    h = p.add_argument_group("processing history as language")
    h.add_argument("--history-prob", type=float, default=0.0, metavar="P",
                   help="share of photo visits processed on the fly (gamma, blur/sharpen, resampling, noise, JPEG "
                        "re-compression single/double) with what was applied appended to the EXIF text as tags; "
                        "also turns on block-phase tags (default 0: the plain recipe, crops at any offset)")
    h.add_argument("--no-history-op", action="append", default=[], metavar="OP",
                   choices=["gamma", "blur", "resample", "noise", "jpeg", "double_jpeg"],
                   help="switch one processing op off (repeatable): gamma, blur, resample, noise, jpeg, double_jpeg")
    h.add_argument("--no-phase-tags", dest="phase_tags", action="store_false",
                   help="do not tag crops with their 8x8 JPEG block offset (crops still land at chosen offsets)")
    h.add_argument("--phase-tags", dest="phase_tags", action="store_true", default=None,
                   help="block-phase tags even with --history-prob 0")
    o = p.add_argument_group("optimisation")
    o.add_argument("--steps", type=int, default=2000, help="optimiser steps (default 2000)")
    o.add_argument("--photos-per-batch", type=int, default=16,
                   help="distinct photos per step over all processes (default 16)")
    o.add_argument("--crops-per-photo", type=int, default=4, help="random full-resolution crops per photo (default 4)")
    o.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    o.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay on weights (default 0.05)")
    o.add_argument("--warmup", type=int, default=100, help="linear warm-up steps before the cosine decay (default 100)")
    o.add_argument("--grad-clip", type=float, default=1.0, help="gradient-norm clipping threshold (default 1.0)")
    o.add_argument("--bn-group", type=int, default=None,
                   help="crops per BatchNorm statistics group (default: the whole per-process batch)")
    o.add_argument("--seed", type=int, default=0, help="seed of initialisation, split and crops (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (metrics, checkpoint, final model)")
    r.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.safetensors")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    r.add_argument("--amp", dest="amp", action="store_true", default=None, help="bfloat16 autocast (default: on for CUDA)")
    r.add_argument("--no-amp", dest="amp", action="store_false", help="full float32 on GPU")
    r.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    r.add_argument("--eval-every", type=int, default=200, help="held-out retrieval every N steps (default 200)")
    r.add_argument("--eval-crops", type=int, default=8, help="crops per held-out photo (default 8)")
    r.add_argument("--ckpt-every", type=int, default=200, help="checkpoint every N steps (default 200)")
    r.add_argument("--log-every", type=int, default=10, help="metrics line every N steps (default 10)")
    r.add_argument("--text-features", metavar="FILE",
                   help="cache of frozen text-tower features (default RUN_DIR/text_features.safetensors); "
                        "reuse one from another run to skip recomputing them")
    r.add_argument("--stop-at", type=int, default=None,
                   help="stop after this step as if killed, keeping the schedule of --steps (for time-sliced runs)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build TrainOptions from the arguments and train."""
    from ..data.patches import PatchDataError
    from ..models import ModelError
    from ..train import TrainError, TrainOptions, train

    fields = {k: getattr(args, k) for k in TrainOptions.__dataclass_fields__
              if hasattr(args, k) and k not in ("extra", "history")}
    if not args.resume and (args.history_prob > 0 or args.phase_tags):
        from ..data.history import HistoryConfig

        off = {op: False for op in args.no_history_op}
        fields["history"] = HistoryConfig(prob=args.history_prob, phase_tags=args.phase_tags is not False,
                                          **off).to_dict()
    try:
        summary = train(TrainOptions(**fields))
    except (TrainError, PatchDataError, ModelError) as exc:
        raise CommandError(str(exc)) from exc
    if summary.get("rank", 0) != 0:
        return 0  # under torchrun only rank 0 reports
    if summary.get("model_dir"):
        print(f"model saved to {summary['model_dir']} ({summary['wall_time_s']:.0f} s)")
    else:
        print(f"stopped at step {summary['steps_done']}; continue with --resume ({summary['checkpoint']})")
    return 0
