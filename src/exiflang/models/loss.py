"""Contrastive losses: CLIP's symmetric InfoNCE (with grouped positives) and an image-only crop loss.

Same-text pairs are positives, never negatives. Several crops of one photo share its EXIF text, and two photos
can have byte-identical texts; identical texts give identical text embeddings, so treating them as negatives
would ask the model to tell apart things that are equal (an irreducible loss term and noisy gradients). Each
row's loss is therefore -log of the softmax mass on all its positives together (multi-positive InfoNCE). Same-photo
crops are also genuine positives for one another: they carry the same camera signature.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_positive_ce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(softmax mass on the row's positive columns); 0 when all mass is on positives."""
    positives = positives.bool()
    if bool((~positives.any(1)).any()):
        raise ValueError("every row of a contrastive loss needs at least one positive")
    logits = logits.float()
    # Duplicated positive columns act as one: log-sum-exp over positives minus over all columns.
    pos = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - pos).mean()


def clip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    image_groups: torch.Tensor | None = None,
    text_groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between N image and M text embeddings; pairs with equal group ids are positives.

    Without groups, N == M and row i matches column i (plain CLIP).
    """
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(text_emb.float(), dim=-1)
    logits = logit_scale * img @ txt.t()
    if image_groups is None or text_groups is None:
        if img.shape[0] != txt.shape[0]:
            raise ValueError(f"plain CLIP loss needs as many images as texts, got {img.shape[0]} and {txt.shape[0]}")
        positives = torch.eye(img.shape[0], device=img.device, dtype=torch.bool)
    else:
        positives = image_groups[:, None] == text_groups[None, :]
    return 0.5 * (multi_positive_ce(logits, positives) + multi_positive_ce(logits.t(), positives.t()))


def image_only_loss(emb: torch.Tensor, groups: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Crop-contrastive loss (CropCLR-style): crops of the same photo are positives, all other crops negatives."""
    z = F.normalize(emb.float(), dim=-1)
    logits = logit_scale * z @ z.t()
    self_mask = torch.eye(z.shape[0], device=z.device, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a crop is not its own positive
    positives = (groups[:, None] == groups[None, :]) & ~self_mask
    return multi_positive_ce(logits, positives)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from all ranks (rank order); gradients flow through this rank's own part only.

    Under DDP each rank back-propagates its own slice, and DDP's gradient averaging then needs the loss
    multiplied by the world size to equal the single-process gradient of the global-batch loss.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, 0)
