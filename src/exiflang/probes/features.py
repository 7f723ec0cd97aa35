"""Frozen patch features: K full-resolution patches per photo, embedded by an `ExifModel`.

Patches are cut from the stored pixel array at native resolution (no resizing), the same way the
model saw them in training. An optional `transform` (e.g. synthetic lens distortion) is applied to
the whole image before cropping.

An image with a side shorter than the model's patch (128 px for the built-in model) is refused with
`exiflang.imageio.ImageTooSmallError` (`image_patch_embeddings`: predict-exif, check-exif) or skipped and listed
(`extract_features_multi`): it is never mirror-padded up to a patch, since every padded patch would repeat the
same few real pixels and any camera or EXIF verdict read from it would be confident and meaningless.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from exiflang.imageio import ImageLoadError, as_rgb_array, check_min_side

from ..errors import ExiflangError

SAMPLING_MODES = ("random", "grid")


class FeatureError(ExiflangError):
    """Features could not be extracted; the message names the input and the cause."""


@dataclass
class PatchFeatures:
    """Patch embeddings of a set of photos; row i of `features` comes from photo `photo_index[i]`."""

    features: np.ndarray  # [N, D] float32, L2-normalised
    photo_index: np.ndarray  # [N] int64, index into `sources`
    boxes: np.ndarray  # [N, 2] int64, (top, left) of each patch in the (transformed) image
    sources: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def photo_means(self) -> np.ndarray:
        """Mean (re-normalised) embedding of each photo, [len(sources), D]; NaN rows for skipped photos."""
        out = np.full((len(self.sources), self.features.shape[1]), np.nan, dtype=np.float32)
        for i in np.unique(self.photo_index):
            out[i] = l2_normalise(self.features[self.photo_index == i].mean(axis=0))
        return out

    def save(self, path: str | Path) -> None:
        """Write to an .npz file (for benchmark caches)."""
        from ..imageio import atomic_write_stream

        atomic_write_stream(path, lambda fh: np.savez_compressed(
            fh, features=self.features, photo_index=self.photo_index, boxes=self.boxes,
            sources=np.array(self.sources), skipped=np.array(self.skipped, dtype=str).reshape(-1, 2),
        ))

    @classmethod
    def load(cls, path: str | Path) -> "PatchFeatures":
        """Read an .npz written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            skipped = [tuple(row) for row in z["skipped"].tolist()]
            return cls(z["features"], z["photo_index"], z["boxes"], z["sources"].tolist(), skipped)


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Scale vectors to unit length (zero vectors stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def require_patch(image: np.ndarray, patch: int) -> np.ndarray:
    """The image itself when one patch x patch patch of real pixels fits in it; ImageTooSmallError otherwise."""
    check_min_side(image.shape[0], image.shape[1], patch, f"one {patch}x{patch} model patch of real pixels")
    return image


def pad_to_patch(image: np.ndarray, patch: int) -> np.ndarray:
    """Mirror-pad an image that is smaller than one patch (bottom/right), so that at least one patch fits.

    Only for the CASIA probe's "center-cropped" protocol, which defines its single view that way; analyses of
    a photo's own pixels use `require_patch` instead."""
    h, w = image.shape[:2]
    if h >= patch and w >= patch:
        return image
    # 'symmetric' repeats the mirror as often as needed, so even a 1-pixel image can be padded.
    return np.pad(image, ((0, max(0, patch - h)), (0, max(0, patch - w)), (0, 0)), mode="symmetric")


def patch_positions(height: int, width: int, patch: int, k: int, mode: str = "random",
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Top-left corners [k', 2] of patches: `k` uniform random ones, or an even grid of about `k`."""
    if height < patch or width < patch:
        raise FeatureError(f"image {height}x{width} is smaller than the patch size {patch}")
    if k < 1:
        raise FeatureError(f"need at least one patch per photo, got k={k}")
    if mode == "random":
        rng = rng or np.random.default_rng(0)
        tops = rng.integers(0, height - patch + 1, size=k)
        lefts = rng.integers(0, width - patch + 1, size=k)
        return np.stack([tops, lefts], axis=1).astype(np.int64)
    if mode == "grid":
        # Rows and columns in proportion to the image's aspect ratio, about k patches in all.
        rows = max(1, int(round(np.sqrt(k * height / width))))
        cols = max(1, int(round(k / rows)))
        tops = np.linspace(0, height - patch, rows).round().astype(np.int64)
        lefts = np.linspace(0, width - patch, cols).round().astype(np.int64)
        return np.array([(t, l) for t in tops for l in lefts], dtype=np.int64)
    raise FeatureError(f"unknown patch sampling mode {mode!r}; choose one of {SAMPLING_MODES}")


def crop_patches(image: np.ndarray, positions: np.ndarray, patch: int) -> np.ndarray:
    """Cut patches [k, 3, patch, patch] float32 in [0, 1] from an HxWx3 uint8 image."""
    crops = np.stack([image[t:t + patch, l:l + patch] for t, l in positions])
    return crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def embed_patch_array(model, patches: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Run the frozen image encoder on patches [N,3,p,p] in [0,1]; return L2-normalised [N, D] float32."""
    import torch

    outs = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[start:start + batch_size])).to(device)
            outs.append(model.encode_image(x).float().cpu().numpy())
    return l2_normalise(np.concatenate(outs, axis=0))


def image_patch_embeddings(image, model, k: int = 16, mode: str = "grid", seed: int = 0,
                           batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Embeddings [k', D] of about `k` patches of one image (path, PIL image or array)."""
    try:
        arr = as_rgb_array(image)
    except ImageLoadError as exc:
        raise FeatureError(str(exc)) from exc
    patch = int(model.patch_size)
    arr = require_patch(arr, patch)  # no padding: a 1x1 image gets no EXIF verdict
    pos = patch_positions(arr.shape[0], arr.shape[1], patch, k, mode, np.random.default_rng(seed))
    return embed_patch_array(model, crop_patches(arr, pos, patch), batch_size, device)


def extract_features(images: Sequence, model, k: int = 16, mode: str = "random", seed: int = 0,
                     transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
                     batch_size: int = 64, device: str = "cpu", progress: bool = True,
                     desc: str = "patch features") -> PatchFeatures:
    """Embed about `k` patches of every image with one model (see `extract_features_multi`)."""
    return extract_features_multi(images, {"model": model}, k, mode, seed, transform, batch_size, device,
                                  progress, desc)["model"]


def extract_features_multi(images: Sequence, models: dict, k: int = 16, mode: str = "random", seed: int = 0,
                           transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
                           batch_size: int = 64, device: str = "cpu", progress: bool = True,
                           desc: str = "patch features") -> dict[str, PatchFeatures]:
    """Embed about `k` patches of every image with each of `models` ({name: model}); decode once for all.

    Unreadable images are skipped and listed, not fatal. `transform(image, i)` (optional) modifies image
    number `i` before cropping (e.g. distortion); it runs once per image, whatever the number of models.
    Each image's patch positions come from a generator seeded with (`seed`, i), so they do not depend on
    processing order or on other images' failures, and models with the same patch size see the same patches.
    """
    from tqdm import tqdm

    if not models:
        raise FeatureError("no model to extract features with")
    sources = [str(x) if isinstance(x, (str, Path)) else f"<array {i}>" for i, x in enumerate(images)]
    state = {name: {"feats": [], "owners": [], "boxes": [], "pending": [], "owner": []} for name in models}
    skipped: list[tuple[str, str]] = []

    def flush(name: str) -> None:
        st = state[name]
        if st["pending"]:
            st["feats"].append(embed_patch_array(models[name], np.concatenate(st["pending"]), batch_size, device))
            st["owners"].extend(st["owner"])
            st["pending"], st["owner"] = [], []

    for i, item in enumerate(tqdm(images, desc=desc, disable=not progress, unit="photo")):
        try:
            arr = as_rgb_array(item)
            if transform is not None:
                arr = transform(arr, i)
            for model in models.values():
                require_patch(arr, int(model.patch_size))
        except ImageLoadError as exc:  # unreadable, or too small for a patch (ImageTooSmallError)
            skipped.append((sources[i], str(exc)))
            continue
        for name, model in models.items():
            patch = int(model.patch_size)
            pos = patch_positions(arr.shape[0], arr.shape[1], patch, k, mode, np.random.default_rng([seed, i]))
            st = state[name]
            st["pending"].append(crop_patches(arr, pos, patch))
            st["owner"].extend([i] * len(pos))
            st["boxes"].append(pos)
            if len(st["owner"]) >= batch_size:
                flush(name)
    out = {}
    for name in models:
        flush(name)
        st = state[name]
        if not st["feats"]:
            raise FeatureError(f"no readable image among {len(sources)} inputs"
                               + (f" (first failure: {skipped[0][1]})" if skipped else ""))
        out[name] = PatchFeatures(features=np.concatenate(st["feats"]),
                                  photo_index=np.asarray(st["owners"], dtype=np.int64),
                                  boxes=np.concatenate(st["boxes"]), sources=sources, skipped=list(skipped))
    return out


__all__ = [
    "FeatureError", "PatchFeatures", "l2_normalise", "pad_to_patch", "require_patch", "patch_positions", "crop_patches",
    "embed_patch_array", "image_patch_embeddings", "extract_features", "extract_features_multi",
    "SAMPLING_MODES",
]
