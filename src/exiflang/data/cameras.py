"""The camera-disjoint protocol: which cameras a model may train on and which are held out for evaluation.

A camera is its EXIF (Make, Model). Makers spell their name differently across models and firmware
("NIKON" / "NIKON CORPORATION"), so the key keeps only the first word of Make, lower-cased, and the whole
Model, lower-cased with whitespace collapsed.

The split is a pure function of the key (a salted SHA-256), not of the collection: a camera is held out
whatever other photos exist, so adding photos never moves a camera across the split, and anyone can check
from a model's config.json (the list and its hash) which cameras it never saw.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

SPLIT_NAME = "camera-split-v1"
HELDOUT_FRACTION = 0.25


def camera_key(make: str, model: str) -> str:
    """Normalised camera key 'make|model' (first word of Make, whole Model; lower case, whitespace collapsed)."""
    words = (make or "").lower().split()
    return f"{words[0] if words else ''}|{' '.join((model or '').lower().split())}"


def is_heldout(key: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """Whether a camera key falls in the held-out share of the deterministic split."""
    digest = hashlib.sha256(f"exiflang-{SPLIT_NAME}:{key}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction


def heldout_cameras(keys: Iterable[str], fraction: float = HELDOUT_FRACTION) -> list[str]:
    """The held-out cameras among `keys`, sorted."""
    return sorted({k for k in keys if is_heldout(k, fraction)})


def cameras_hash(keys: Iterable[str]) -> str:
    """Short order-independent hash of a camera list (what config.json records beside the list)."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:16]


__all__ = ["SPLIT_NAME", "HELDOUT_FRACTION", "camera_key", "is_heldout", "heldout_cameras", "cameras_hash"]
