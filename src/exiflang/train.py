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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data.patches import (PatchBatches, PatchDataError, Photo, PhotoStore, data_hash, eval_crops,
                           photos_from_records, resolve_cache, split_by_photo, to_float)
from .models import ExifModel, clip_loss, create_model, image_only_loss, save_model
from .models.loss import gather_with_grad

CHECKPOINT = "checkpoint.safetensors"
TEXT_FEATURES = "text_features.safetensors"
METRICS = "metrics.jsonl"
OBJECTIVES = ("exif", "image-only")
# Options that define what is computed; a resumed run takes them from its checkpoint, not the command line.
RECIPE_KEYS = ("config", "steps", "photos_per_batch", "crops_per_photo", "lr", "weight_decay", "warmup",
               "min_lr_ratio", "grad_clip", "objective", "image_only_scale", "val_fraction", "eval_crops", "seed",
               "bn_group", "amp")


class TrainError(Exception):
    """Training cannot start or continue (bad option, missing checkpoint, ...); the message says why."""


@dataclass
class TrainOptions:
    """Everything that defines a training run (saved into the model's config as the recipe)."""

    index: str | None = None  # index folder (exiflang index); or use `shards`
    out: str = "runs/train"
    config: str = "small"
    shards: str | None = None  # webdataset shard folder or brace pattern (exiflang shard)
    steps: int = 2000
    photos_per_batch: int = 16  # global, over all ranks
    crops_per_photo: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    objective: str = "exif"
    image_only_scale: float = 10.0  # logit scale (1/temperature) of the image-only loss
    val_fraction: float = 0.15
    eval_every: int = 200
    eval_crops: int = 8
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None  # None: on for CUDA
    workers: int | None = None  # None: 0 when photos are cached in memory, else 2
    cache: str = "auto"
    bn_group: int | None = None  # crops per BatchNorm group (None: the whole local batch)
    threads: int | None = None
    text_features: str | None = None  # frozen-text feature cache (default RUN_DIR/text_features.safetensors)
    resume: bool = False
    stop_at: int | None = None  # stop after this step as if killed (tests and time-sliced runs)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise TrainError on inconsistent settings."""
        if (self.index is None) == (self.shards is None):
            raise TrainError("give exactly one of an index folder or a shard folder")
        if self.objective not in OBJECTIVES:
            raise TrainError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if self.objective == "image-only" and self.crops_per_photo < 2:
            raise TrainError("the image-only objective needs at least 2 crops per photo (its positives)")
        for name in ("steps", "photos_per_batch", "crops_per_photo", "eval_every", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise TrainError(f"{name.replace('_', '-')} must be at least 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TrainError("val-fraction must be in [0, 1)")


# ----------------------------------------------------------------------------------------------- setup

@dataclass
class Dist:
    """Process-group facts of this process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is the rank that logs and writes files."""
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, ddp: Dist) -> torch.device:
    """Resolve 'auto'/'cpu'/'cuda' (one GPU per local rank)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda asked for, but no CUDA device is available")
        index = ddp.local_rank if name == "cuda" else torch.device(name).index
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(name)


def load_photos(opt: TrainOptions, patch_size: int,
                text_format: dict[str, Any] | None = None) -> tuple[list[Photo], int]:
    """Photos usable at this patch size from the index or shards (texts in the model's format), plus the count
    skipped as too small."""
    if opt.shards is not None:
        from .data.shards import photos_from_shards

        from .data.shards import ShardError

        try:
            return photos_from_shards(opt.shards, patch_size, text_format)
        except ShardError as exc:
            raise TrainError(str(exc)) from exc
    from .data.index import IndexReadError, load_records

    try:
        records = load_records(opt.index)
    except (IndexReadError, FileNotFoundError, OSError) as exc:
        raise TrainError(f"{opt.index}: cannot read the index ({exc})") from exc
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

    def forward(self, pixels: torch.Tensor, groups: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """(image [N,D], text [L,D] or None, logit scale)."""
        # BatchNorm statistics per group of `bn_group` crops ("ghost" batches): a run then computes the same
        # thing on 1 or N processes, since under DDP each rank's local batch is such a group.
        chunks = pixels.split(self.bn_group) if self.bn_group else [pixels]
        image = torch.cat([self.model.encode_image(c) for c in chunks])
        if self.objective == "image-only":
            return image, None, None
        if self.text_features is not None:
            text = self.model.text.proj(self.text_features[groups])
        else:
            text = self.model.text(input_ids, attention_mask)
        return image, text, self.model.logit_scale


@torch.no_grad()
def text_feature_table(model: ExifModel, texts: list[str], device: torch.device, batch: int = 32,
                       progress: bool = False) -> torch.Tensor:
    """Pooled frozen-backbone features [len(texts), hidden] for every text."""
    from tqdm import tqdm

    out = []
    for i in tqdm(range(0, len(texts), batch), desc="text features", unit="batch", disable=not progress):
        tok = model.tokenize(texts[i:i + batch])
        out.append(model.text.features(tok["input_ids"].to(device), tok["attention_mask"].to(device)).float())
    return torch.cat(out) if out else torch.empty(0, model.text.hidden_size, device=device)


def _text_key(text: str) -> str:
    """Cache key of a text."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _backbone_identity(model: ExifModel) -> str:
    """What the cached features depend on: the text tower's kind, tokenizer, length and architecture."""
    cfg = model.text.cfg
    return json.dumps({k: cfg.get(k) for k in ("kind", "tokenizer", "max_length", "backbone_config")}, sort_keys=True)


def cached_text_features(model: ExifModel, texts: list[str], device: torch.device, path: Path | None,
                         write: bool, progress: bool = False) -> dict[str, torch.Tensor]:
    """Frozen-backbone features per text, read from / added to a safetensors cache file (keyed by text hash)."""
    from safetensors.torch import load_file, save_file

    identity = _backbone_identity(model)
    known: dict[str, torch.Tensor] = {}
    if path is not None and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            same = (f.metadata() or {}).get("backbone") == identity
        if same:
            known = load_file(str(path))
    missing = sorted({t for t in texts if _text_key(t) not in known})
    if missing and not model.text.pretrained_loaded:
        raise TrainError(f"{path}: {len(missing)} text(s) lack cached features and the pretrained text weights "
                         "are not available to compute them")
    if missing:
        table = text_feature_table(model, missing, device, progress=progress).cpu()
        known.update({_text_key(t): row.clone() for t, row in zip(missing, table)})
        if write and path is not None:
            tmp = path.with_name(path.name + ".tmp")
            save_file(known, str(tmp), metadata={"backbone": identity})
            os.replace(tmp, path)
    return {t: known[_text_key(t)].to(device) for t in texts}


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


# ------------------------------------------------------------------------------------------ evaluation

@torch.no_grad()
def evaluate_retrieval(model: ExifModel, store: PhotoStore, n_crops: int, seed: int, device: torch.device,
                       text_features: dict[str, torch.Tensor] | None = None, batch: int = 128,
                       amp: bool = False) -> dict[str, Any]:
    """Held-out patch -> EXIF retrieval among the held-out photos' distinct texts (top-1/top-5, with chance).

    `patch_*`: each crop ranks all texts; `photo_*`: the mean of a photo's crop embeddings does;
    `camera_top1`: the best text names the photo's Make and Model.
    """
    was_training = model.training
    model.eval()
    crops, owner = eval_crops(store, model.patch_size, n_crops, seed)
    ctx = torch.autocast("cuda", torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        image = torch.cat([model.encode_image(to_float(c.to(device))).float() for c in crops.split(batch)])
        texts = sorted({p.text for p in store.photos})
        if text_features is not None:
            feats = torch.stack([text_features[t] for t in texts]).to(device)
            text = model.text.proj(feats).float()
        else:
            text = torch.cat([model.encode_text(texts[i:i + 32]).float() for i in range(0, len(texts), 32)])
    model.train(was_training)
    text_id = {t: i for i, t in enumerate(texts)}
    camera_of_text = torch.tensor([hash((p.make, p.model)) for p in
                                   sorted({p.text: p for p in store.photos}.values(), key=lambda p: p.text)])
    target_photo = torch.tensor([text_id[p.text] for p in store.photos])
    image = F.normalize(image, dim=-1)
    text = F.normalize(text, dim=-1)
    photo_emb = F.normalize(torch.stack([image[owner == i].mean(0) for i in range(len(store.photos))]), dim=-1)

    def ranks(emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        sims = emb @ text.t()
        return (sims > sims.gather(1, targets.to(sims.device)[:, None])).sum(1).cpu()

    patch_rank = ranks(image, target_photo[owner])
    photo_rank = ranks(photo_emb, target_photo)
    best = (image @ text.t()).argmax(1).cpu()
    camera_hit = camera_of_text[best] == camera_of_text[target_photo[owner]]
    same_camera = (camera_of_text[None, :] == camera_of_text[target_photo[owner]][:, None]).float().mean(1)
    m = len(texts)
    return {
        "n_photos": len(store.photos), "n_texts": m, "n_crops": int(len(owner)),
        "patch_top1": float((patch_rank < 1).float().mean()), "patch_top5": float((patch_rank < 5).float().mean()),
        "photo_top1": float((photo_rank < 1).float().mean()), "photo_top5": float((photo_rank < 5).float().mean()),
        "camera_top1": float(camera_hit.float().mean()),
        "chance_top1": 1.0 / m, "chance_top5": min(5, m) / m, "chance_camera_top1": float(same_camera.mean()),
    }


@torch.no_grad()
def evaluate_image_only(model: ExifModel, store: PhotoStore, n_crops: int, seed: int,
                        device: torch.device, batch: int = 128) -> dict[str, Any]:
    """Held-out crop -> same-photo retrieval among all other held-out crops (top-1, with chance)."""
    was_training = model.training
    model.eval()
    crops, owner = eval_crops(store, model.patch_size, n_crops, seed)
    emb = F.normalize(torch.cat([model.encode_image(to_float(c.to(device))).float()
                                 for c in crops.split(batch)]), dim=-1).cpu()
    model.train(was_training)
    sims = (emb @ emb.t()).fill_diagonal_(float("-inf"))
    hit = owner[sims.argmax(1)] == owner
    return {"n_photos": len(store.photos), "n_crops": int(len(owner)), "same_photo_top1": float(hit.float().mean()),
            "chance_same_photo_top1": (n_crops - 1) / max(1, len(owner) - 1)}


# ----------------------------------------------------------------------------------------- checkpoints

def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state dict -> (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `_flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, model: ExifModel, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, rng_states: list[torch.Tensor],
                    meta: dict[str, Any]) -> None:
    """Write model, optimiser, scheduler, RNG and step to one safetensors file atomically (temp + rename)."""
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    for rank, state in enumerate(rng_states):
        tensors[f"rng/{rank}"] = state.cpu()
    info = dict(meta, step=step, scheduler=scheduler.state_dict(), optimizer=optim_meta)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"exiflang": json.dumps(info)})
    os.replace(tmp, path)  # atomic: a reader sees the old or the new checkpoint, never half of one


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads(f.metadata()["exiflang"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        raise TrainError(f"{path}: cannot read checkpoint ({exc})") from exc
    return tensors, info


def rng_state(device: torch.device) -> torch.Tensor:
    """This process's torch RNG state (CPU, plus the current GPU's when on CUDA) as one uint8 tensor."""
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    lengths = torch.tensor([len(s) for s in states], dtype=torch.int64).view(torch.uint8)
    return torch.cat([torch.tensor([len(states)], dtype=torch.uint8), lengths, *states])


def set_rng_state(packed: torch.Tensor, device: torch.device) -> None:
    """Restore a state made by `rng_state`."""
    n = int(packed[0])
    lengths = packed[1:1 + 8 * n].clone().view(torch.int64).tolist()
    offset = 1 + 8 * n
    parts = []
    for length in lengths:
        parts.append(packed[offset:offset + length].clone())
        offset += length
    torch.set_rng_state(parts[0])
    if len(parts) > 1 and device.type == "cuda":
        torch.cuda.set_rng_state(parts[1], device)


def gather_rng_states(device: torch.device, ddp: Dist) -> list[torch.Tensor]:
    """Every rank's RNG state (on rank 0; others get their own only)."""
    mine = rng_state(device)
    if ddp.world == 1:
        return [mine]
    states: list[Any] = [None] * ddp.world
    dist.all_gather_object(states, mine)
    return states


# -------------------------------------------------------------------------------------------- the loop

def _all_gather_ints(x: torch.Tensor, ddp: Dist) -> torch.Tensor:
    """Concatenate an integer tensor over ranks (no gradient)."""
    if ddp.world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(ddp.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class Stepper:
    """One optimisation step on a batch from `PatchBatches` (shared by `train` and the throughput benchmark)."""

    def __init__(self, towers: nn.Module, model: ExifModel, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, opt: TrainOptions, ddp: Dist,
                 device: torch.device, texts: list[str], cached_text: bool, amp: bool) -> None:
        self.towers, self.model, self.optimizer, self.scheduler = towers, model, optimizer, scheduler
        self.opt, self.ddp, self.device, self.texts = opt, ddp, device, texts
        self.cached_text, self.amp = cached_text, amp

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, torch.Tensor | None, float]:
        """Forward, global-batch loss, backward, clip, AdamW and scheduler step: (loss, logit scale, grad norm)."""
        opt, ddp, device = self.opt, self.ddp, self.device
        pixels = to_float(batch["pixels"].to(device, non_blocking=True))
        groups = batch["group"].to(device)
        tokens: dict[str, torch.Tensor] = {}
        if opt.objective == "exif" and not self.cached_text:
            tokens = self.model.tokenize([self.texts[int(g)] for g in batch["group"]])
        autocast = torch.autocast("cuda", torch.bfloat16) if self.amp else contextlib.nullcontext()
        with autocast:
            image, text, scale = self.towers(pixels, groups, tokens.get("input_ids"), tokens.get("attention_mask"))
        image_all = gather_with_grad(image)
        if opt.objective == "exif":
            text_groups = _all_gather_ints(groups, ddp)
            image_groups = text_groups.repeat_interleave(opt.crops_per_photo)
            loss = clip_loss(image_all, gather_with_grad(text), scale, image_groups, text_groups)
        else:
            photo_ids = _all_gather_ints(batch["photo"].to(device), ddp).repeat_interleave(opt.crops_per_photo)
            loss = image_only_loss(image_all, photo_ids, opt.image_only_scale)
        self.optimizer.zero_grad(set_to_none=True)
        # Each rank back-propagates through its own slice only; DDP averages, so scale by the world size.
        (loss * ddp.world).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), scale, float(grad_norm)


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
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def _format_eval(result: dict[str, Any]) -> str:
    """One line for the console: retrieval with chance beside it."""
    if "patch_top1" in result:
        return (f"held-out patch->EXIF top-1 {result['patch_top1']:.3f} (chance {result['chance_top1']:.3f}), "
                f"top-5 {result['patch_top5']:.3f} (chance {result['chance_top5']:.3f}); per photo top-1 "
                f"{result['photo_top1']:.3f} top-5 {result['photo_top5']:.3f}; camera top-1 "
                f"{result['camera_top1']:.3f} (chance {result['chance_camera_top1']:.3f}) "
                f"[{result['n_photos']} photos, {result['n_texts']} texts]")
    return (f"held-out crop->same-photo top-1 {result['same_photo_top1']:.3f} "
            f"(chance {result['chance_same_photo_top1']:.3f}) [{result['n_photos']} photos]")


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


def _build_model(opt: TrainOptions, config: dict[str, Any], train_texts: list[str],
                 resume: tuple[dict[str, torch.Tensor], dict[str, Any]] | None) -> ExifModel:
    """A fresh model, or the checkpoint's (same config and tokenizer)."""
    from .models.text import TextModelError, build_tokenizer, minilm_dir

    # A frozen MiniLM whose features all come from a cache file needs no weights (e.g. on a machine without
    # the package): build it without them when they are absent.
    pretrained = True
    if opt.text_features and config["text"].get("kind") == "minilm" and not config["text"].get("train_backbone"):
        try:
            minilm_dir(require_weights=True)
        except TextModelError:
            pretrained = False
    if resume is None:
        return create_model(config, texts=train_texts, seed=opt.seed, pretrained_text=pretrained)
    from .models.joint import ExifModel as Model

    tensors, info = resume
    model = Model(config, build_tokenizer(config["text"], info.get("tokenizer_json")), pretrained_text=pretrained)
    model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
    return model


def prepare(opt: TrainOptions) -> Run:
    """Process group, device, data, model, optimiser, scheduler; restored from the checkpoint with `resume`."""
    from .models.factory import resolve_config

    opt.validate()
    ddp = init_distributed(opt.device)
    device = pick_device(opt.device, ddp)
    if opt.threads:
        torch.set_num_threads(opt.threads)
    amp = device.type == "cuda" if opt.amp is None else bool(opt.amp and device.type == "cuda")
    resume = None
    if opt.resume:
        ckpt_path = Path(opt.out) / CHECKPOINT
        if not ckpt_path.is_file():
            raise TrainError(f"{ckpt_path}: no checkpoint to resume from")
        resume = read_checkpoint(ckpt_path)
        for key in RECIPE_KEYS:
            setattr(opt, key, resume[1]["options"][key])
        opt.validate()
    config = resolve_config(opt.config if resume is None else resume[1]["model_config"])

    photos, n_small = load_photos(opt, int(config["patch_size"]), config.get("text_format"))
    # Canonical order (by content hash): a run does not depend on the index's or the shards' order.
    photos.sort(key=lambda p: (p.sha256, p.path))
    train_photos, val_photos = split_by_photo(photos, opt.val_fraction)
    if not train_photos:
        raise TrainError("no training photos left after the held-out split")
    cache = resolve_cache(photos, opt.cache)
    store, val_store = PhotoStore(train_photos, cache=cache), PhotoStore(val_photos, cache=cache)
    try:
        batches = PatchBatches(store, int(config["patch_size"]), opt.photos_per_batch, opt.crops_per_photo,
                               seed=opt.seed, rank=ddp.rank, world=ddp.world)
    except PatchDataError as exc:
        raise TrainError(str(exc)) from exc
    texts = sorted(batches.text_ids)

    model = _build_model(opt, config, [p.text for p in train_photos], resume).to(device).train()
    if opt.objective == "image-only":  # the text side takes no part: keep it out of the optimiser and DDP
        model.text.requires_grad_(False)
        if isinstance(model.log_logit_scale, nn.Parameter):
            model.log_logit_scale.requires_grad_(False)
    text_features, feature_by_text = None, None
    if opt.objective == "exif" and not model.text.train_backbone:
        all_texts = sorted(set(texts) | {p.text for p in val_photos})
        cache_file = Path(opt.text_features) if opt.text_features else Path(opt.out) / TEXT_FEATURES
        feature_by_text = cached_text_features(model, all_texts, device, cache_file, write=ddp.main,
                                               progress=opt.progress and ddp.main)
        text_features = torch.stack([feature_by_text[t] for t in texts])
    if cache:
        store.preload(progress=opt.progress and ddp.main)
        val_store.preload(progress=opt.progress and ddp.main)
    towers: nn.Module = TrainTowers(model, opt.objective, text_features, opt.bn_group)
    if ddp.world > 1:
        towers = nn.parallel.DistributedDataParallel(
            towers, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(param_groups(model, opt.weight_decay), lr=opt.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(opt.warmup, opt.steps, opt.min_lr_ratio))
    torch.manual_seed(opt.seed + 1000 * ddp.rank)  # dropout etc.; the data use their own seeded streams
    recipe = {k: v for k, v in asdict(opt).items()
              if k not in ("progress", "resume", "stop_at", "out", "extra", "text_features")}
    info = {"model_config": config, "options": recipe, "n_train_photos": len(train_photos),
            "n_val_photos": len(val_photos), "n_skipped_small": n_small, "data_hash": data_hash(train_photos),
            "val_data_hash": data_hash(val_photos) if val_photos else None,
            "tokenizer_json": model.text.tokenizer.to_json() if config["text"].get("tokenizer") == "trained" else None}
    run = Run(opt, ddp, device, amp, config, store, val_store, batches, model, optimizer, scheduler,
              Stepper(towers, model, optimizer, scheduler, opt, ddp, device, texts, text_features is not None, amp),
              feature_by_text, info)
    if resume is not None:
        tensors, meta = resume
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
        run.start, run.prior_wall = int(meta["step"]), float(meta.get("wall_time_s", 0.0))
        if f"rng/{ddp.rank}" in tensors:
            set_rng_state(tensors[f"rng/{ddp.rank}"], device)
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
                                    run.feature_by_text, amp=run.amp)
    else:
        result = evaluate_image_only(run.model, run.val_store, opt.eval_crops, opt.seed, run.device)
    metrics.write({"event": "eval", "step": step, **result})
    tqdm.write(f"step {step}: {_format_eval(result)}")
    return result


def train(opt: TrainOptions) -> dict[str, Any]:
    """Run (or resume) training; returns a summary (final evaluation, paths, timings, the live `model`)."""
    from tqdm import tqdm

    out = Path(opt.out)
    if int(os.environ.get("RANK", "0")) == 0:
        out.mkdir(parents=True, exist_ok=True)
    run = prepare(opt)
    ddp, model, info = run.ddp, run.model, run.info
    ckpt_path = out / CHECKPOINT
    metrics = MetricsLog(out / METRICS, ddp.main)
    end = min(opt.steps, opt.stop_at) if opt.stop_at else opt.steps
    loader = make_loader(run, run.start, end)
    global_crops = opt.photos_per_batch * opt.crops_per_photo
    if ddp.main:
        print(f"exiflang train: {info['n_train_photos']} training photos, {info['n_val_photos']} held out, "
              f"{info['n_skipped_small']} skipped (smaller than {run.config['patch_size']} px); {ddp.world} "
              f"process(es) on {run.device}; {global_crops} crops per step; steps {run.start}->{end} of {opt.steps}",
              flush=True)
    if run.start > 0:
        metrics.truncate_after(run.start)
    else:
        metrics.write({"event": "start", "time": time.time(),
                       **{k: v for k, v in info.items() if k not in ("model_config", "tokenizer_json")}})
    bar = tqdm(total=opt.steps, initial=run.start, desc="train", unit="step",
               disable=not (opt.progress and ddp.main), dynamic_ncols=True)
    t_run = t_window = time.perf_counter()
    window_steps, loss_sum, last_eval, done = 0, 0.0, None, run.start
    for batch in loader:
        loss_value, scale, grad_norm = run.stepper.step(batch)
        done = int(batch["step"]) + 1
        if not math.isfinite(loss_value):
            raise TrainError(f"loss became {loss_value} at step {done}; lower --lr")
        loss_sum, window_steps = loss_sum + loss_value, window_steps + 1
        bar.update(1)
        if done % opt.log_every == 0 or done == end:
            elapsed = time.perf_counter() - t_window
            rate = window_steps * global_crops / max(elapsed, 1e-9)
            record = {"event": "train", "step": done, "loss": loss_sum / window_steps,
                      "lr": run.scheduler.get_last_lr()[0], "grad_norm": grad_norm, "patches_per_s": rate,
                      "logit_scale": float(scale.detach()) if scale is not None else None,
                      "elapsed_s": run.prior_wall + time.perf_counter() - t_run}
            metrics.write(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", patches_s=f"{rate:.0f}", lr=f"{record['lr']:.2e}")
            t_window, window_steps, loss_sum = time.perf_counter(), 0, 0.0
        if done % opt.eval_every == 0 or done == opt.steps:
            last_eval = run_eval(run, done, metrics)
        if done % opt.ckpt_every == 0 or done == end:
            states = gather_rng_states(run.device, ddp)
            if ddp.main:
                info["wall_time_s"] = run.prior_wall + time.perf_counter() - t_run
                save_checkpoint(ckpt_path, model, run.optimizer, run.scheduler, done, states, info)
        if ddp.world > 1:
            dist.barrier()
    bar.close()
    wall = run.prior_wall + time.perf_counter() - t_run
    summary: dict[str, Any] = {"steps_done": done, "wall_time_s": wall, "final_eval": last_eval,
                               "checkpoint": str(ckpt_path), "data_hash": info["data_hash"], "model": model,
                               "rank": ddp.rank}
    if done == opt.steps and ddp.main:
        extra = {"train": {"recipe": info["options"], "data_hash": info["data_hash"],
                           "n_train_photos": info["n_train_photos"], "n_val_photos": info["n_val_photos"],
                           "val_data_hash": info["val_data_hash"], "wall_time_s": wall, "device": str(run.device),
                           "world_size": ddp.world, "final_eval": last_eval, **opt.extra}}
        summary["model_dir"] = str(save_model(model, out / "model", extra_config=extra))
        metrics.write({"event": "end", "step": opt.steps, "wall_time_s": wall, "model_dir": summary["model_dir"]})
    return summary


def main_torchrun(argv: list[str] | None = None) -> int:
    """`python -m exiflang.train ARGS` = `exiflang train ARGS`, without loading the other commands (for torchrun)."""
    import argparse
    import sys

    from .cli import CommandError
    from .commands import train as command

    parser = argparse.ArgumentParser(prog="python -m exiflang.train")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"exiflang train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main_torchrun())
