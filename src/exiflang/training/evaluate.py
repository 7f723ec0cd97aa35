"""Held-out evaluation: patch -> EXIF-text retrieval (or crop -> same-photo for the image-only objective)."""
from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from ..data.patches import PhotoStore, eval_crops, to_float
from ..models import ExifModel


@torch.no_grad()
def evaluate_retrieval(model: ExifModel, store: PhotoStore, n_crops: int, seed: int, device: torch.device,
                       text_features: dict[str, torch.Tensor] | None = None, batch: int = 128,
                       amp: bool = False, suffix: list[str] | None = None) -> dict[str, Any]:
    """Held-out patch -> EXIF retrieval among the held-out photos' distinct texts (top-1/top-5, with chance).

    `patch_*`: each crop ranks all texts; `photo_*`: the mean of a photo's crop embeddings does;
    `camera_top1`: the best text names the photo's Make and Model. With `suffix` (the block-phase tags of a
    phase-aware recipe) crops are cut on the photo's 8x8 grid and every candidate text gets the same tags.
    """
    was_training = model.training
    model.eval()
    crops, owner = eval_crops(store, model.patch_size, n_crops, seed, aligned=bool(suffix))
    ctx = torch.autocast("cuda", torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        image = torch.cat([model.encode_image(to_float(c.to(device))).float() for c in crops.split(batch)])
        texts = sorted({p.text for p in store.photos})
        if text_features is not None:  # segment-summed features, as in training
            feats = torch.stack([text_features[t] + sum((text_features[s] for s in suffix or []),
                                                        torch.zeros_like(text_features[t])) for t in texts]).to(device)
            text = model.text.proj(feats).float()
        else:
            full = [", ".join([t, *(suffix or [])]) for t in texts]
            text = torch.cat([model.encode_text(full[i:i + 32]).float() for i in range(0, len(full), 32)])
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


def format_eval(result: dict[str, Any]) -> str:
    """One line for the console: retrieval with chance beside it."""
    if "patch_top1" in result:
        return (f"held-out patch->EXIF top-1 {result['patch_top1']:.3f} (chance {result['chance_top1']:.3f}), "
                f"top-5 {result['patch_top5']:.3f} (chance {result['chance_top5']:.3f}); per photo top-1 "
                f"{result['photo_top1']:.3f} top-5 {result['photo_top5']:.3f}; camera top-1 "
                f"{result['camera_top1']:.3f} (chance {result['chance_camera_top1']:.3f}) "
                f"[{result['n_photos']} photos, {result['n_texts']} texts]")
    return (f"held-out crop->same-photo top-1 {result['same_photo_top1']:.3f} "
            f"(chance {result['chance_same_photo_top1']:.3f}) [{result['n_photos']} photos]")
