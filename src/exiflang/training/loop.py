"""Contrastive training of patch and EXIF-text encoders: one process, or many under `torchrun` (DDP).

Recipe: AdamW (no weight decay on norms, biases and the temperature), linear warm-up then cosine decay,
gradient-norm clipping, bfloat16 autocast on GPU. Each step holds `photos_per_batch` distinct photos (global,
over all ranks) with `crops_per_photo` random full-resolution crops each; embeddings are gathered across
ranks so every crop is contrasted with the whole global batch.

A run folder holds `metrics.jsonl`, `checkpoint.safetensors` (written atomically: temp file + rename) and,
at the end, `model/` (safetensors + config.json, loadable with `exiflang.models.load_model`).
`resume=True` restores model, optimiser, scheduler, RNG and data position (= the step; batches are a pure
function of seed and step), so a killed run continues to the same numbers.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ..data.history import HistoryConfig, phase_tags
from ..data.patches import (PatchBatches, PatchDataError, PhotoStore, TrainingPhoto, data_hash, photos_from_records,
                           resolve_cache, split_by_camera, split_by_photo, to_float)
from ..imageio import atomic_write_text
from ..models import ExifModel, ModelConfig, ModelError, clip_loss, create_model, image_only_loss, save_model
from ..models.factory import load_saved_state, saved_state
from ..models.loss import gather_with_grad
from .checkpoint import unflatten_optimizer, read_checkpoint, save_checkpoint, set_rng_state
from .distributed import Dist, all_gather_ints, gather_rng_states, init_distributed, pick_device
from .errors import TrainError
from .options import CHECKPOINT, METRICS, RECIPE_KEYS, TEXT_FEATURES, TrainOptions
from .evaluate import evaluate_image_only, evaluate_retrieval, format_eval
from .text_cache import cached_text_features

# ----------------------------------------------------------------------------------------------- setup

def load_photos(index: str | None, shards: str | None, patch_size: int,
                text_format: dict[str, Any] | None = None) -> tuple[list[TrainingPhoto], int]:
    """Photos usable at this patch size from the index or shards (texts in the model's format), plus the count
    skipped as too small."""
    if shards is not None:
        from ..data.shards import ShardError, photos_from_shards

        try:
            return photos_from_shards(shards, patch_size, text_format)
        except ShardError as exc:
            raise TrainError(str(exc)) from exc
    from ..data.index import IndexReadError, load_records

    try:
        records = load_records(index)
    except (IndexReadError, FileNotFoundError, OSError) as exc:
        raise TrainError(f"{index}: cannot read the index ({exc})") from exc
    return photos_from_records(records, patch_size, text_format)


# ------------------------------------------------------------------------------------------- the model

class TrainTowers(nn.Module):
    """What one training forward runs (wrapped by DDP): image embeddings, text embeddings, logit scale.

    With a frozen text backbone the pooled text features are precomputed once per unique text
    (`text_features`), so only the projection runs per step.
    """

    def __init__(self, model: ExifModel, objective: str, text_features: torch.Tensor | None,
                 bn_group: int | None) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.text_features = text_features  # a plain attribute: DDP must not broadcast it every step
        self.bn_group = bn_group

    def forward(self, pixels: torch.Tensor, segments: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """(image [N,D], text [U,D] or None, logit scale); `segments` [U, S]: text-segment ids of U texts."""
        # BatchNorm statistics per group of `bn_group` crops ("ghost" batches): a run then computes the same
        # thing on 1 or N processes, since under DDP each rank's local batch is such a group.
        chunks = pixels.split(self.bn_group) if self.bn_group else [pixels]
        image = torch.cat([self.model.encode_image(c) for c in chunks])
        if self.objective == "image-only":
            return image, None, None
        if self.text_features is not None:
            # A frozen encoder reads a text segment by segment (the EXIF text, then each tag), and the pooled
            # features of the segments are summed: every tag string's features are computed once per run.
            valid = (segments >= 0).unsqueeze(-1).to(self.text_features.dtype)
            pooled = (self.text_features[segments.clamp(min=0)] * valid).sum(1)
            text = self.model.text.proj(pooled)
        else:
            text = self.model.text(input_ids, attention_mask)
        return image, text, self.model.logit_scale


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices/kernels only (not norms, biases, the temperature)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine down to `min_ratio` at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# -------------------------------------------------------------------------------------------- the loop

@dataclass(frozen=True)
class LossSettings:
    """What one step's loss and update read from the options."""

    objective: str
    patch_patch_weight: float
    image_only_scale: float
    crops_per_photo: int
    grad_clip: float

    @classmethod
    def of(cls, opt: TrainOptions) -> "LossSettings":
        """The loss settings of a run's options."""
        return cls(opt.objective, opt.patch_patch_weight, opt.image_only_scale, opt.crops_per_photo, opt.grad_clip)


class Stepper:
    """One optimisation step on a batch from `PatchBatches` (shared by `train` and the throughput benchmark)."""

    def __init__(self, towers: nn.Module, model: ExifModel, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, opt: LossSettings, ddp: Dist,
                 device: torch.device, crop_text: Callable[[list[int]], str], cached_text: bool, amp: bool) -> None:
        self.towers, self.model, self.optimizer, self.scheduler = towers, model, optimizer, scheduler
        self.opt, self.ddp, self.device, self.crop_text = opt, ddp, device, crop_text
        self.cached_text, self.amp = cached_text, amp

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor | None, float]:
        """Forward, global-batch loss, backward, clip, AdamW and scheduler step: (loss, logit scale, grad norm)."""
        opt, ddp, device = self.opt, self.ddp, self.device
        pixels = to_float(batch["pixels"].to(device, non_blocking=True))
        # Each distinct crop text once: its segments, and its group id (equal ids = equal texts = positives).
        crop_group = batch["crop_group"]
        text_group, first = _unique_first(crop_group)
        segments = batch["segments"][first].to(device)
        tokens: dict[str, torch.Tensor] = {}
        if opt.objective == "exif" and not self.cached_text:
            tokens = self.model.tokenize([self.crop_text(row) for row in batch["segments"][first].tolist()])
        autocast = torch.autocast("cuda", torch.bfloat16) if self.amp else contextlib.nullcontext()
        with autocast:
            image, text, scale = self.towers(pixels, segments, tokens.get("input_ids"), tokens.get("attention_mask"))
        image_all = gather_with_grad(image)
        image_groups = all_gather_ints(crop_group.to(device), ddp)
        if opt.objective == "exif":
            text_groups = all_gather_ints(text_group.to(device), ddp)
            loss = clip_loss(image_all, gather_with_grad(text), scale, image_groups, text_groups)
            if opt.patch_patch_weight > 0:
                loss = loss + opt.patch_patch_weight * image_only_loss(image_all, image_groups, opt.image_only_scale)
        else:
            photo_ids = all_gather_ints(batch["photo"].to(device), ddp).repeat_interleave(opt.crops_per_photo)
            loss = image_only_loss(image_all, photo_ids, opt.image_only_scale)
        self.optimizer.zero_grad(set_to_none=True)
        # Each rank back-propagates through its own slice only; DDP averages, so scale by the world size.
        (loss * ddp.world).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), scale, float(grad_norm)


def _unique_first(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of a 1-D tensor (sorted) and the index of each one's first occurrence."""
    values, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    first = torch.full((len(values),), len(ids), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids)), reduce="amin")
    return values, first


class MetricsLog:
    """Append-only JSON Lines log (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (a killed run logged past its last checkpoint; resume redoes them)."""
        if not (self.enabled and self.path.is_file()):
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


@dataclass
class Run:
    """Everything a training loop needs, built by `prepare` (also used by the throughput benchmark)."""

    opt: TrainOptions
    ddp: Dist
    device: torch.device
    amp: bool
    config: dict[str, Any]
    store: PhotoStore
    val_store: PhotoStore
    batches: PatchBatches
    model: ExifModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stepper: Stepper
    feature_by_text: dict[str, torch.Tensor] | None
    info: dict[str, Any]
    start: int = 0
    prior_wall: float = 0.0


def _build_model(config: ModelConfig, train_texts: list[str], seed: int, features_from_file: bool,
                 resume: tuple[dict[str, torch.Tensor], dict[str, Any]] | None, ckpt_path: Path) -> ExifModel:
    """A fresh model, or the checkpoint's (same config and tokenizer)."""
    from ..models.text import TextModelError, build_tokenizer, minilm_dir

    # A frozen MiniLM whose features all come from a cache file needs no weights (e.g. on a machine without
    # the package): build it without them when they are absent.
    pretrained = True
    if features_from_file and config.text.kind == "minilm" and not config.text.train_backbone:
        try:
            minilm_dir(require_weights=True)
        except TextModelError:
            pretrained = False
    if resume is None:
        return create_model(config, texts=train_texts, seed=seed, pretrained_text=pretrained)
    from ..models.joint import ExifModel as Model

    tensors, info = resume
    model = Model(config, build_tokenizer(config.text.as_dict(), info.get("tokenizer_json")), pretrained_text=pretrained)
    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        load_saved_state(model, state, ckpt_path)
    except ModelError as exc:
        raise TrainError(str(exc)) from exc
    return model


def _run_config(opt: TrainOptions, resume) -> tuple[ModelConfig, ExifModel | None]:
    """The architecture this run trains (the checkpoint's, --init's or --config's) and the --init model, if any."""
    from ..models.factory import resolve_config

    if resume is not None:
        return resolve_config(resume[1]["model_config"]), None
    if not opt.init:
        return resolve_config(opt.config), None
    init = _init_model(opt.init)
    opt.config = init.config.name  # the recipe records the architecture actually trained
    return init.config, init


def _init_model(name_or_path: str) -> ExifModel:
    """The saved model a fine-tuning run starts from (its config, id cleared, is the run's)."""
    from dataclasses import replace

    from ..models import load_model

    try:
        model = load_model(name_or_path)
    except ModelError as exc:
        raise TrainError(f"--init: {exc}") from exc
    if model.config.text.tokenizer == "trained":
        raise TrainError(f"--init {name_or_path}: fine-tuning a model with a trained vocabulary is not supported")
    model.config = replace(model.config, model_id=None)
    return model


def _restore_recipe(opt: TrainOptions) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the run's checkpoint and put its recipe into `opt`; refuse explicit options that contradict it."""
    ckpt_path = Path(opt.out) / CHECKPOINT
    if not ckpt_path.is_file():
        raise TrainError(f"{ckpt_path}: no checkpoint to resume from")
    resume = read_checkpoint(ckpt_path)
    saved, defaults = resume[1]["options"], TrainOptions()
    for key in RECIPE_KEYS:  # keys newer than the checkpoint keep their defaults (what the old run did)
        value = saved.get(key, getattr(defaults, key))
        if key in opt.given and getattr(opt, key) != value:
            # The cosine schedule and the data stream are fixed by the recipe: a silent change would break both.
            flag = "--" + key.replace("_", "-")
            if key == "steps":  # the one a user most often wants to change: say exactly what to do instead
                raise TrainError(
                    f"{ckpt_path}: this run's schedule ends at step {value} (the cosine learning-rate decay is "
                    f"fitted to --steps {value}, and --resume keeps it exact); to train {getattr(opt, key)} "
                    f"steps, start a new run folder with --steps {getattr(opt, key)}, or drop --steps to finish "
                    f"this run as planned")
            raise TrainError(f"{ckpt_path}: this run was started with {flag} {value}; --resume continues that "
                             f"recipe. Drop {flag}, or start a new run folder to train with {getattr(opt, key)}")
        setattr(opt, key, value)
    opt.validate()
    return resume


def _split_photos(photos: list[TrainingPhoto], camera_split: str,
                  val_fraction: float) -> tuple[list[TrainingPhoto], list[TrainingPhoto], dict | None]:
    """Training and held-out photos: by camera (`camera_split` heldout) or by photo content hash."""
    # Canonical order (by content hash): a run does not depend on the index's or the shards' order.
    photos.sort(key=lambda p: (p.sha256, p.path))
    cameras = None
    if camera_split == "heldout":
        # Camera-disjoint: every photo of the non-held-out cameras trains; the held-out cameras' photos are the
        # held-out evaluation set, never trained on.
        train_photos, val_photos, cameras = split_by_camera(photos)
    else:
        train_photos, val_photos = split_by_photo(photos, val_fraction)
    if not train_photos:
        raise TrainError("no training photos left after the held-out split")
    return train_photos, val_photos, cameras


def _frozen_text_features(model: ExifModel, texts: list[str], extra_texts: set[str], device: torch.device,
                          cache_file: Path, write: bool, progress: bool) -> tuple[torch.Tensor | None, dict | None]:
    """Pooled features of every text segment once (frozen text backbone only), from or into the cache file."""
    if model.text.train_backbone:
        return None, None
    feature_by_text = cached_text_features(model, sorted(set(texts) | extra_texts), device, cache_file,
                                           write=write, progress=progress)
    return torch.stack([feature_by_text[t] for t in texts]), feature_by_text


def _optimisation(model: ExifModel, lr: float, weight_decay: float, warmup: int, steps: int, min_lr_ratio: float):
    """AdamW (no decay on norms, biases, the temperature) and its warm-up + cosine schedule."""
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, steps, min_lr_ratio))
    return optimizer, scheduler


def _continue_from(run: Run, resume: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
    """Optimiser, scheduler, step, wall time and RNG from the checkpoint (same photos and texts only)."""
    tensors, meta = resume
    if meta.get("data_hash") != run.info["data_hash"]:
        raise TrainError(f"{Path(run.opt.out) / CHECKPOINT}: the checkpoint was trained on other photos or texts "
                         f"(data hash {meta.get('data_hash')}, this index gives {run.info['data_hash']}); "
                         "resume with the same index, or start a new run folder")
    run.optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    run.scheduler.load_state_dict(meta["scheduler"])
    run.start, run.prior_wall = int(meta["step"]), float(meta.get("wall_time_s", 0.0))
    if f"rng/{run.ddp.rank}" in tensors:
        set_rng_state(tensors[f"rng/{run.ddp.rank}"], run.device)


def prepare(opt: TrainOptions) -> Run:
    """Process group, device, data, model, optimiser, scheduler; restored from the checkpoint with `resume`."""
    opt.validate()
    ddp = init_distributed(opt.device)
    device = pick_device(opt.device, ddp)
    if opt.threads:
        torch.set_num_threads(opt.threads)
    amp = device.type == "cuda" if opt.amp is None else bool(opt.amp and device.type == "cuda")
    resume = _restore_recipe(opt) if opt.resume else None
    config, init = _run_config(opt, resume)
    photos, n_small = load_photos(opt.index, opt.shards, config.patch_size, config.text_format)
    train_photos, val_photos, cameras = _split_photos(photos, opt.camera_split, opt.val_fraction)
    history = HistoryConfig.from_dict(opt.history) if opt.history is not None else None
    cache = resolve_cache(photos, opt.cache)
    store, val_store = PhotoStore(train_photos, cache=cache), PhotoStore(val_photos, cache=cache)
    try:
        batches = PatchBatches(store, config.patch_size, opt.photos_per_batch, opt.crops_per_photo,
                               seed=opt.seed, rank=ddp.rank, world=ddp.world, history=history)
    except PatchDataError as exc:
        raise TrainError(str(exc)) from exc
    eval_suffix = phase_tags(0, 0) if history is not None and history.phase_tags else []
    model = _build_model(config, [p.text for p in train_photos], opt.seed, bool(opt.text_features), resume,
                         Path(opt.out) / CHECKPOINT)
    if init is not None:  # fine-tuning: the saved weights replace the random start (the tokenizer is the config's)
        load_saved_state(model, saved_state(init), opt.init)
    model = model.to(device).train()
    if opt.objective == "image-only":  # the text side takes no part: keep it out of the optimiser and DDP
        model.text.requires_grad_(False)
        if isinstance(model.log_logit_scale, nn.Parameter):
            model.log_logit_scale.requires_grad_(False)
    # batches.segments: the EXIF texts, then every history / phase tag
    text_features, feature_by_text = None, None
    if opt.objective == "exif":
        cache_file = Path(opt.text_features) if opt.text_features else Path(opt.out) / TEXT_FEATURES
        text_features, feature_by_text = _frozen_text_features(
            model, batches.segments, {p.text for p in val_photos} | set(eval_suffix), device, cache_file,
            write=ddp.main, progress=opt.progress and ddp.main)
    if cache:
        store.preload(progress=opt.progress and ddp.main)
        val_store.preload(progress=opt.progress and ddp.main)
    towers: nn.Module = TrainTowers(model, opt.objective, text_features, opt.bn_group)
    if ddp.world > 1:
        towers = nn.parallel.DistributedDataParallel(towers, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer, scheduler = _optimisation(model, opt.lr, opt.weight_decay, opt.warmup, opt.steps, opt.min_lr_ratio)
    torch.manual_seed(opt.seed + 1000 * ddp.rank)  # dropout etc.; the data use their own seeded streams
    info = {"model_config": config.to_dict(), "options": opt.recipe(), "n_train_photos": len(train_photos),
            "n_val_photos": len(val_photos), "n_skipped_small": n_small, "data_hash": data_hash(train_photos),
            "val_data_hash": data_hash(val_photos) if val_photos else None,
            "tokenizer_json": model.text.tokenizer.to_json() if config.text.tokenizer == "trained" else None,
            "cameras": cameras, "eval_suffix": eval_suffix}
    stepper = Stepper(towers, model, optimizer, scheduler, LossSettings.of(opt), ddp, device, batches.crop_text,
                      text_features is not None, amp)
    run = Run(opt, ddp, device, amp, config, store, val_store, batches, model, optimizer, scheduler, stepper,
              feature_by_text, info)
    if resume is not None:
        _continue_from(run, resume)
    return run


def make_loader(run: Run, start: int, end: int) -> torch.utils.data.DataLoader:
    """Batches of steps start..end-1, built by worker processes that prefetch while the model steps.

    Default workers: none for a cached collection on CPU (cutting crops from memory costs next to nothing
    and the cores are busy with the model), else 2 (decoding, or keeping a fast GPU fed).
    """
    workers = run.opt.workers
    if workers is None:
        workers = 0 if (run.store.cache and run.device.type == "cpu") else 2
    return torch.utils.data.DataLoader(run.batches, batch_size=None, sampler=range(start, end), num_workers=workers,
                                       pin_memory=run.device.type == "cuda", prefetch_factor=4 if workers else None)


def run_eval(run: Run, step: int, metrics: "MetricsLog") -> dict[str, Any] | None:
    """Held-out evaluation on rank 0, logged and printed."""
    from tqdm import tqdm

    opt = run.opt
    if not run.val_store.photos or not run.ddp.main:
        return None
    if opt.objective == "exif":
        result = evaluate_retrieval(run.model, run.val_store, opt.eval_crops, opt.seed, run.device,
                                    run.feature_by_text, amp=run.amp, suffix=run.info["eval_suffix"])
    else:
        result = evaluate_image_only(run.model, run.val_store, opt.eval_crops, opt.seed, run.device)
    metrics.write({"event": "eval", "step": step, **result})
    tqdm.write(f"step {step}: {format_eval(result)}")
    return result


def train(opt: TrainOptions) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (final evaluation, paths, timings, the live `model`)."""
    from tqdm import tqdm

    out = Path(opt.out)
    created = _make_run_dir(out)
    try:
        run = prepare(opt)
    except BaseException:
        _remove_empty_dirs(created)  # a run that could not start leaves no empty folder behind
        raise
    ddp = run.ddp
    metrics = MetricsLog(out / METRICS, ddp.main)
    end = min(opt.steps, opt.stop_at) if opt.stop_at else opt.steps
    _announce(run, metrics, end)
    bar = tqdm(total=opt.steps, initial=run.start, desc="train", unit="step",
               disable=not (opt.progress and ddp.main), dynamic_ncols=True)
    clock = StepClock(run.prior_wall)
    last_eval, done = None, run.start
    for batch in make_loader(run, run.start, end):
        loss_value, scale, grad_norm = run.stepper.step(batch)
        done = int(batch["step"]) + 1
        if not math.isfinite(loss_value):
            raise TrainError(f"loss became {loss_value} at step {done}; lower --lr")
        clock.add(loss_value)
        bar.update(1)
        if done % opt.log_every == 0 or done == end:
            record = clock.window_record(done, run, grad_norm, scale)
            metrics.write(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", patches_s=f"{record['patches_per_s']:.0f}",
                            lr=f"{record['lr']:.2e}")
        if done % opt.eval_every == 0 or done == opt.steps:
            last_eval = run_eval(run, done, metrics)
        if done % opt.ckpt_every == 0 or done == end:
            _checkpoint(run, done, clock.wall())
        if ddp.world > 1:
            dist.barrier()
    bar.close()
    return _finish(run, done, clock.wall(), last_eval, metrics)


def _make_run_dir(out: Path) -> list[Path]:
    """Create the run folder (and missing parents) on rank 0; the folders this call created, deepest first."""
    if int(os.environ.get("RANK", "0")) != 0 or out.is_dir():
        return []
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return created


def _remove_empty_dirs(created: list[Path]) -> None:
    """Remove the folders `_make_run_dir` created, deepest first, while they are empty."""
    for folder in created:
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()


def _announce(run: Run, metrics: MetricsLog, end: int) -> None:
    """Print what the run trains on, and start (or truncate, on resume) the metrics log."""
    opt, info, ddp = run.opt, run.info, run.ddp
    if ddp.main:
        print(f"exiflang train: {info['n_train_photos']} training photos, {info['n_val_photos']} held out, "
              f"{info['n_skipped_small']} skipped (smaller than {run.config.patch_size} px); {ddp.world} "
              f"process(es) on {run.device}; {opt.photos_per_batch * opt.crops_per_photo} crops per step; "
              f"steps {run.start}->{end} of {opt.steps}", flush=True)
    if run.start > 0:
        metrics.truncate_after(run.start)
    else:
        metrics.write({"event": "start", "time": time.time(),
                       **{k: v for k, v in info.items() if k not in ("model_config", "tokenizer_json")}})


class StepClock:
    """Wall time of the run (including before a resume) and the loss/throughput of the current log window."""

    def __init__(self, prior_wall: float) -> None:
        self.prior_wall = prior_wall
        self.t_run = self.t_window = time.perf_counter()
        self.steps, self.loss_sum = 0, 0.0

    def add(self, loss: float) -> None:
        """Count one step of the window."""
        self.steps, self.loss_sum = self.steps + 1, self.loss_sum + loss

    def wall(self) -> float:
        """Seconds of training so far, over every resume."""
        return self.prior_wall + time.perf_counter() - self.t_run

    def window_record(self, step: int, run: Run, grad_norm: float, scale: torch.Tensor | None) -> dict[str, Any]:
        """The metrics line of the window that ends at `step`; starts the next window."""
        crops = run.opt.photos_per_batch * run.opt.crops_per_photo
        elapsed = time.perf_counter() - self.t_window
        record = {"event": "train", "step": step, "loss": self.loss_sum / max(self.steps, 1),
                  "lr": run.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                  "patches_per_s": self.steps * crops / max(elapsed, 1e-9),
                  "logit_scale": float(scale.detach()) if scale is not None else None, "elapsed_s": self.wall()}
        self.t_window, self.steps, self.loss_sum = time.perf_counter(), 0, 0.0
        return record


def _checkpoint(run: Run, done: int, wall: float) -> None:
    """Write the checkpoint (rank 0) with every rank's RNG state."""
    states = gather_rng_states(run.device, run.ddp)
    if run.ddp.main:
        run.info["wall_time_s"] = wall
        save_checkpoint(Path(run.opt.out) / CHECKPOINT, run.model, run.optimizer, run.scheduler, done, states,
                        run.info)


def _finish(run: Run, done: int, wall: float, last_eval: dict | None, metrics: MetricsLog) -> dict[str, Any]:
    """The run's summary; at the last step, the model saved with its recipe and training record."""
    opt, info, ddp = run.opt, run.info, run.ddp
    out = Path(opt.out)
    summary: dict[str, Any] = {"steps_done": done, "wall_time_s": wall, "final_eval": last_eval,
                               "checkpoint": str(out / CHECKPOINT), "data_hash": info["data_hash"],
                               "model": run.model, "rank": ddp.rank}
    if done == opt.steps and ddp.main:
        record = {"recipe": info["options"], "data_hash": info["data_hash"], "n_train_photos": info["n_train_photos"],
                  "n_val_photos": info["n_val_photos"], "val_data_hash": info["val_data_hash"], "wall_time_s": wall,
                  "device": str(run.device), "world_size": ddp.world, "final_eval": last_eval, **opt.extra}
        if info.get("cameras"):
            record["cameras"] = info["cameras"]
        summary["model_dir"] = str(save_model(run.model, out / "model", extra_config={"train": record}))
        metrics.write({"event": "end", "step": opt.steps, "wall_time_s": wall, "model_dir": summary["model_dir"]})
    return summary
