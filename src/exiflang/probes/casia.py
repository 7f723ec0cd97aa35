"""Real-vs-manipulated probe on CASIA v1.0: one embedding per image, linear classifier, k-fold by image.

Two protocols, as in the paper's CASIA probe:
* `resized`: the whole image resized (bilinear) to the model's patch size, so the encoder sees the global
  content and any splice, at the cost of destroying the camera's pixel-level traces;
* `center-cropped`: the central patch at native resolution (traces kept, most of the image unseen).
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from exiflang.imageio import ImageLoadError, load_rgb
from exiflang.probes.features import embed_patch_array, pad_to_patch

from ..errors import ExiflangError

PROTOCOLS = ("resized", "center-cropped")


class CasiaError(ExiflangError):
    """The CASIA folder or an image in it is unusable; the message names the file and the cause."""


def read_manifest(root: str | Path) -> list[tuple[Path, int]]:
    """(image path, label) pairs from `root/MANIFEST.csv` (label 1 = tampered, 0 = authentic)."""
    root = Path(root)
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        raise CasiaError(f"{manifest}: no such file (expected columns image,mask,label)")
    items = []
    with manifest.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                items.append((root / row["image"], int(row["label"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise CasiaError(f"{manifest}: line {i}: bad row ({exc})") from exc
    if not items:
        raise CasiaError(f"{manifest}: no images listed")
    return items


def protocol_input(image: np.ndarray, patch: int, protocol: str) -> np.ndarray:
    """The single patch-sized view the encoder sees under `protocol` (HxWx3 uint8, patch x patch)."""
    if protocol == "resized":
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((patch, patch), Image.BILINEAR))
    if protocol == "center-cropped":
        image = pad_to_patch(image, patch)
        h, w = image.shape[:2]
        top, left = (h - patch) // 2, (w - patch) // 2
        return image[top:top + patch, left:left + patch]
    raise CasiaError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def casia_embeddings(items: list[tuple[Path, int]], model, protocol: str, batch_size: int = 64,
                     device: str = "cpu", progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings [N, D], labels [N] and skipped files (path: reason) under one protocol."""
    from tqdm import tqdm

    patch = int(model.patch_size)
    views, labels, skipped = [], [], []
    for path, label in tqdm(items, desc=f"casia {protocol}", disable=not progress, unit="img"):
        try:
            arr, _ = load_rgb(path)
        except ImageLoadError as exc:
            skipped.append(str(exc))
            continue
        views.append(protocol_input(arr, patch, protocol))
        labels.append(label)
    if not views:
        raise CasiaError(f"no readable image among {len(items)}")
    x = np.stack(views).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return embed_patch_array(model, x, batch_size, device), np.asarray(labels), skipped


@dataclass
class CasiaResult:
    """k-fold accuracy of the real-vs-manipulated probe."""

    protocol: str
    accuracy: float
    accuracy_std: float
    majority_chance: float
    n_images: int
    n_tampered: int
    folds: int

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def casia_probe(features: np.ndarray, labels: np.ndarray, protocol: str, folds: int = 5, seed: int = 0,
                c: float = 1.0) -> CasiaResult:
    """Stratified k-fold logistic regression; each image is in exactly one test fold."""
    from sklearn.model_selection import StratifiedKFold

    from exiflang.probes.linear import fit_logistic

    if len(np.unique(labels)) < 2:
        raise CasiaError("need both tampered and authentic images")
    accs, chance = [], []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        clf = fit_logistic(features[tr], labels[tr], c=c)
        accs.append(float(np.mean(clf.predict(features[te]) == labels[te])))
        majority = np.bincount(labels[tr]).argmax()
        chance.append(float(np.mean(labels[te] == majority)))
    return CasiaResult(protocol=protocol, accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                       majority_chance=float(np.mean(chance)), n_images=len(labels),
                       n_tampered=int(labels.sum()), folds=folds)


__all__ = ["CasiaError", "PROTOCOLS", "read_manifest", "protocol_input", "casia_embeddings", "CasiaResult",
           "casia_probe"]
