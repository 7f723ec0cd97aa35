"""What defines a training run: `TrainOptions`, its one set of defaults, ranges and help texts.

`exiflang train` derives its flags from these fields (`cli_options`), so a default or a range is written
once, here. Range checks run both at parse time (the CLI) and in `TrainOptions.validate` (the Python API).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..ranges import (MAX_CROPS_PER_PHOTO, MAX_PHOTOS_PER_BATCH, MAX_SEED, MAX_STEPS, MAX_THREADS, MAX_WORKERS,
                      range_problem)
from .errors import TrainError

CHECKPOINT = "checkpoint.safetensors"
TEXT_FEATURES = "text_features.safetensors"
METRICS = "metrics.jsonl"
OBJECTIVES = ("exif", "image-only")
CAMERA_SPLITS = ("none", "heldout")
CACHE_MODES = ("auto", "yes", "no")
# Options that define what is computed; a resumed run takes them from its checkpoint, not the command line.
RECIPE_KEYS = ("config", "init", "steps", "photos_per_batch", "crops_per_photo", "lr", "weight_decay", "warmup",
               "min_lr_ratio", "grad_clip", "objective", "image_only_scale", "val_fraction", "eval_crops", "seed",
               "bn_group", "amp", "history", "patch_patch_weight", "camera_split")
# Options that say how this process runs, not what it computes: never part of the saved recipe.
RUNTIME_KEYS = ("progress", "resume", "stop_at", "out", "extra", "text_features", "given")


def _opt(default: Any, group: str, help: str, *, low: float | None = None, high: float | None = None,
         open_low: bool = False, open_high: bool = False, choices: tuple[str, ...] | None = None,
         metavar: str | None = None, cli: bool = True) -> Any:
    """A dataclass field carrying its CLI group, help text and allowed range."""
    meta = {"group": group, "help": help, "low": low, "high": high, "open_low": open_low, "open_high": open_high,
            "choices": choices, "metavar": metavar, "cli": cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainOptions:
    """Everything that defines a training run (saved into the model's config as the recipe)."""

    index: str | None = _opt(None, "data", "index folder made by `exiflang index`", metavar="INDEX")
    shards: str | None = _opt(None, "data", "webdataset shard folder made by `exiflang shard` (instead of --index)",
                              metavar="DIR")
    val_fraction: float = _opt(0.15, "data", "fraction of photos held out (split by photo content hash) for "
                               "retrieval scores", low=0.0, high=1.0, open_high=True)
    camera_split: str = _opt("none", "data", "heldout: train on every photo of the cameras outside the project's "
                             "held-out camera split (exiflang.data.cameras) and evaluate on the held-out cameras; the "
                             "camera lists go into the model's config.json (none: photo-level split by --val-fraction)",
                             choices=CAMERA_SPLITS)
    cache: str = _opt("auto", "data", "keep decoded photos in memory (auto: when they fit in 4 GiB)",
                      choices=CACHE_MODES)
    workers: int | None = _opt(None, "data", "data-loading processes (default: 0 when cached, else 2)", low=0,
                               high=MAX_WORKERS)
    config: str = _opt("small", "model and objective", "model config name (tiny, small, grid, resnet18, paper, ...) "
                       "or a JSON file")
    init: str | None = _opt(None, "model and objective", "start from a saved model's weights (built-in name such as "
                            "'default', or a model folder) instead of a random start; its config replaces --config "
                            "(fine-tuning)", metavar="MODEL")
    objective: str = _opt("exif", "model and objective", "exif: patches vs EXIF text (the method); image-only: crops "
                          "of one photo as positives (CropCLR-style baseline, no EXIF)", choices=OBJECTIVES)
    image_only_scale: float = _opt(10.0, "model and objective", "logit scale (1/temperature) of the image-only loss "
                                   "and of the patch-patch term", low=0.0, open_low=True)
    patch_patch_weight: float = _opt(0.0, "model and objective", "add W x an image-image term beside patch-text: "
                                     "crops with the same text (same photo, history and block phase) are positives "
                                     "(0: off)", low=0.0, metavar="W")
    steps: int = _opt(2000, "optimisation", "optimiser steps", low=1, high=MAX_STEPS)
    photos_per_batch: int = _opt(16, "optimisation", "distinct photos per step over all processes", low=1,
                                 high=MAX_PHOTOS_PER_BATCH)
    crops_per_photo: int = _opt(4, "optimisation", "random full-resolution crops per photo", low=1,
                                high=MAX_CROPS_PER_PHOTO)
    lr: float = _opt(1e-3, "optimisation", "peak AdamW learning rate", low=0.0, open_low=True)
    weight_decay: float = _opt(0.05, "optimisation", "AdamW weight decay on weights", low=0.0)
    warmup: int = _opt(100, "optimisation", "linear warm-up steps before the cosine decay", low=0, high=MAX_STEPS)
    min_lr_ratio: float = _opt(0.02, "optimisation", "learning rate at the end, as a fraction of --lr",
                               low=0.0, high=1.0)
    grad_clip: float = _opt(1.0, "optimisation", "gradient-norm clipping threshold", low=0.0, open_low=True)
    bn_group: int | None = _opt(None, "optimisation", "crops per BatchNorm statistics group (default: the whole "
                                "per-process batch)", low=1)
    seed: int = _opt(0, "optimisation", "seed of initialisation, split and crops", low=0, high=MAX_SEED)
    out: str = _opt("runs/train", "run", "run folder (metrics, checkpoint, final model)", metavar="RUN_DIR")
    resume: bool = _opt(False, "run", "continue from RUN_DIR/checkpoint.safetensors with the checkpoint's recipe")
    device: str = _opt("auto", "run", "auto, cpu, cuda or cuda:N")
    amp: bool | None = _opt(None, "run", "bfloat16 autocast (default: on for CUDA)")
    threads: int | None = _opt(None, "run", "CPU threads for torch (default: torch's choice)", low=1,
                               high=MAX_THREADS)
    eval_every: int = _opt(200, "run", "held-out retrieval every N steps", low=1)
    eval_crops: int = _opt(8, "run", "crops per held-out photo", low=1, high=MAX_CROPS_PER_PHOTO)
    ckpt_every: int = _opt(200, "run", "checkpoint every N steps", low=1)
    log_every: int = _opt(10, "run", "metrics line every N steps", low=1)
    text_features: str | None = _opt(None, "run", "cache of frozen text-tower features (default "
                                     "RUN_DIR/text_features.safetensors); reuse one from another run to skip "
                                     "recomputing them", metavar="FILE")
    stop_at: int | None = _opt(None, "run", "stop after this step as if killed, keeping the schedule of --steps "
                               "(for time-sliced runs)", low=1, high=MAX_STEPS)
    progress: bool = _opt(True, "run", "show a progress bar")
    # Processing-history recipe (`exiflang.data.history.HistoryConfig.to_dict()`); None: plain crops and texts.
    history: dict[str, Any] | None = _opt(None, "history", "", cli=False)
    extra: dict[str, Any] = _opt({}, "run", "", cli=False)  # merged into the saved config's `train` record
    given: tuple[str, ...] = _opt((), "run", "", cli=False)  # options set explicitly (checked against a resume)

    def validate(self) -> None:
        """Raise TrainError on a value out of range or inconsistent settings."""
        for f in fields(self):
            check_range(f.name, getattr(self, f.name), f.metadata, TrainError)
        if (self.index is None) == (self.shards is None):
            raise TrainError("give exactly one of an index folder or a shard folder")
        if self.objective == "image-only" and self.crops_per_photo < 2:
            raise TrainError("the image-only objective needs at least 2 crops per photo (its positives)")
        if self.patch_patch_weight > 0 and self.crops_per_photo < 2:
            raise TrainError("the patch-patch term needs at least 2 crops per photo (its positives)")
        if self.history is not None:
            from ..data.history import HistoryConfig

            try:
                cfg = HistoryConfig.from_dict(self.history)
            except (TypeError, ValueError) as exc:
                raise TrainError(f"history: {exc}") from exc
            if not 0.0 <= cfg.prob <= 1.0:
                raise TrainError("history-prob must be in [0, 1]")

    def recipe(self) -> dict[str, Any]:
        """The options that define what is computed (saved in checkpoints and the model's config)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in RUNTIME_KEYS}


def cli_options() -> list[Any]:
    """The dataclass fields `exiflang train` turns into flags, in declaration order."""
    return [f for f in fields(TrainOptions) if f.metadata.get("cli")]


def check_range(name: str, value: Any, meta: dict[str, Any], error: type[Exception]) -> None:
    """Raise `error` naming the option when `value` is outside the field's range or choices (None passes)."""
    flag = "--" + name.replace("_", "-")
    if value is None or isinstance(value, bool):
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise error(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    problem = range_problem(value, meta)
    if problem:
        raise error(f"{flag} {problem}")
