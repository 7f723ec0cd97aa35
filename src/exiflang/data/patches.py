"""Random full-resolution patches from an index, in deterministic, resumable batches.

Camera traces (demosaicing, sensor noise, JPEG grid) are destroyed by resampling, flips and colour jitter, so
crops are taken from the stored pixel array as-is. Each batch visits a set of photos once: every photo is
decoded once per visit (or once per run when the collection is cached in memory) and `crops_per_photo`
random crops are cut from it.

Everything random is a pure function of (seed, step), so batch `s` is the same whichever process, worker or
resumed run builds it: the data position of a run is just its step number.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ExiflangError
from ..imageio import ImageLoadError, as_rgb_array, decode_bytes, load_rgb
from .history import (History, HistoryConfig, apply_history, original_grid_tags, phase_tags, sample_history,
                      radius_tag, shared_batch_history, source_window, tag_vocabulary)
from .warp import distort, frame_radius

EVAL_STREAM = 1_000_003  # RNG stream id for held-out crops, apart from every training epoch


class PatchDataError(ExiflangError):
    """Training data cannot be built (empty split, unreadable photo, bad setting); names the file or setting."""


@dataclass(frozen=True)
class TrainingPhoto:
    """One usable photo: where it is, its size and its EXIF text."""

    path: str
    sha256: str
    width: int
    height: int
    text: str
    make: str
    model: str
    blob: bytes | None = field(default=None, repr=False, compare=False)  # file bytes (from shards), else read path


def photos_from_records(records: Sequence[dict[str, Any]], patch_size: int,
                        text_format: dict[str, Any] | None = None) -> tuple[list[TrainingPhoto], int]:
    """Photos usable at this patch size, and how many were skipped for being smaller than a patch.

    With `text_format` (a model config's TextConfig dict) each text is re-rendered from the record's tags,
    so the model reads its own format; without it, the index's default-format `text` is used.
    """
    render = _text_renderer(text_format)
    photos, skipped = [], 0
    for rec in records:
        if int(rec["width"]) < patch_size or int(rec["height"]) < patch_size:
            skipped += 1
            continue
        photos.append(TrainingPhoto(rec["path"], rec.get("sha256", ""), int(rec["width"]), int(rec["height"]),
                            render(rec), rec.get("make") or "", rec.get("model") or ""))
    return photos, skipped


def _text_renderer(text_format: dict[str, Any] | None) -> Callable[[dict[str, Any]], str]:
    """A function record -> EXIF text in the given format (the index's stored text when None)."""
    if text_format is None:
        return lambda rec: rec["text"]
    from ..exif import TextConfig, exif_to_text

    cfg = TextConfig.from_dict(text_format)
    return lambda rec: exif_to_text(rec.get("tags") or {}, cfg)


def split_by_photo(photos: Sequence[TrainingPhoto], val_fraction: float) -> tuple[list[TrainingPhoto], list[TrainingPhoto]]:
    """Deterministic train/held-out split by photo content hash (never splits one photo's patches)."""
    train, val = [], []
    for photo in photos:
        key = photo.sha256 or hashlib.sha256(photo.path.encode()).hexdigest()
        (val if int(key[:8], 16) / 0xFFFFFFFF < val_fraction else train).append(photo)
    return train, val


def split_by_camera(photos: Sequence[TrainingPhoto]) -> tuple[list[TrainingPhoto], list[TrainingPhoto], dict[str, Any]]:
    """Camera-disjoint split (`exiflang.data.cameras`): (photos of training cameras, of held-out cameras, record).

    The record (for the model's config.json) lists both camera sets and their hashes.
    """
    from .cameras import SPLIT_NAME, cameras_hash, camera_key, is_heldout

    train = [p for p in photos if not is_heldout(camera_key(p.make, p.model))]
    val = [p for p in photos if is_heldout(camera_key(p.make, p.model))]
    train_keys = sorted({camera_key(p.make, p.model) for p in train})
    val_keys = sorted({camera_key(p.make, p.model) for p in val})
    record = {"split": SPLIT_NAME, "train_cameras": train_keys, "heldout_cameras": val_keys,
              "train_cameras_hash": cameras_hash(train_keys), "heldout_cameras_hash": cameras_hash(val_keys),
              "n_train_photos": len(train), "n_heldout_photos": len(val)}
    return train, val, record


def data_hash(photos: Sequence[TrainingPhoto]) -> str:
    """Hash of a photo set and its texts (order-independent): identifies the data a model was trained on."""
    h = hashlib.sha256()
    for sha, text in sorted((p.sha256, p.text) for p in photos):
        h.update(sha.encode())
        h.update(text.encode())
    return h.hexdigest()[:16]


def crop_positions(height: int, width: int, patch: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniformly random top-left corners [n, 2] (y, x) of patch x patch windows inside the image."""
    ys = rng.integers(0, height - patch + 1, size=n)
    xs = rng.integers(0, width - patch + 1, size=n)
    return np.stack([ys, xs], 1)


def cut_crops(image: np.ndarray, positions: np.ndarray, patch: int) -> np.ndarray:
    """Crops [n, 3, patch, patch] uint8 (channels first), copied from an HxWx3 array."""
    out = np.empty((len(positions), 3, patch, patch), dtype=np.uint8)
    for i, (y, x) in enumerate(positions):
        out[i] = image[y:y + patch, x:x + patch].transpose(2, 0, 1)
    return out


class PhotoStore:
    """Decoded pixels of a photo list, optionally cached in memory (decode once per run)."""

    def __init__(self, photos: Sequence[TrainingPhoto], cache: bool = False) -> None:
        self.photos = list(photos)
        self.cache = cache
        self._arrays: dict[int, np.ndarray] = {}

    @staticmethod
    def cache_bytes(photos: Sequence[TrainingPhoto]) -> int:
        """Memory the decoded collection would take."""
        return sum(p.width * p.height * 3 for p in photos)

    def preload(self, progress: bool = False) -> None:
        """Decode every photo now (before worker processes fork, so they share the cache)."""
        from tqdm import tqdm

        for i in tqdm(range(len(self.photos)), desc="decoding photos", unit="photo", disable=not progress):
            self.image(i)

    def image(self, i: int) -> np.ndarray:
        """HxWx3 uint8 stored pixels of photo i."""
        if i in self._arrays:
            return self._arrays[i]
        photo = self.photos[i]
        try:
            arr = load_rgb(photo.path)[0] if photo.blob is None else decode_bytes(photo.blob, photo.path)
        except ImageLoadError as exc:
            raise PatchDataError(f"{photo.path}: {exc}") from exc
        if arr.shape[0] < photo.height or arr.shape[1] < photo.width:
            raise PatchDataError(f"{photo.path}: decoded size {arr.shape[1]}x{arr.shape[0]} differs from the index "
                                 f"({photo.width}x{photo.height}); rebuild the index")
        if self.cache:
            self._arrays[i] = arr
        return arr


class PatchBatches(torch.utils.data.Dataset):
    """Map-style dataset over training steps: item `step` is this rank's share of the global batch of that step.

    A global batch holds `photos_per_batch` distinct photos (an epoch is a seeded permutation of the photos,
    cut into batches, remainder dropped) and `crops_per_photo` crops of each. Rank r of `world` takes the r-th
    contiguous slice of the batch's photos, so the ranks' slices concatenated are the single-process batch.
    """

    def __init__(self, store: PhotoStore, patch_size: int, photos_per_batch: int, crops_per_photo: int,
                 seed: int = 0, rank: int = 0, world: int = 1, history: HistoryConfig | None = None) -> None:
        n = len(store.photos)
        if photos_per_batch < 1 or crops_per_photo < 1:
            raise PatchDataError("photos per batch and crops per photo must be at least 1")
        if photos_per_batch % world:
            raise PatchDataError(f"photos per batch ({photos_per_batch}) must be a multiple of the number of "
                                 f"processes ({world})")
        if n < photos_per_batch:
            raise PatchDataError(f"only {n} training photos, fewer than one batch of {photos_per_batch}; "
                                 "lower --photos-per-batch")
        self.store, self.patch = store, patch_size
        self.photos_per_batch, self.crops = photos_per_batch, crops_per_photo
        self.seed, self.rank, self.world = seed, rank, world
        self.local_photos = photos_per_batch // world
        self.steps_per_epoch = n // photos_per_batch
        texts = sorted({p.text for p in store.photos})
        self.text_ids = {t: i for i, t in enumerate(texts)}  # group id: equal texts are positives
        # None: the plain recipe (crops at any offset, the photo's EXIF text for every crop).
        self.history = history
        # Text segments: the photos' EXIF texts, then every history / block-phase tag; a crop's text is a list of
        # segment ids (its photo's text, then its tags).
        self.segments = texts + (tag_vocabulary(history.warp > 0) if history is not None else [])
        self.segment_ids = {t: i for i, t in enumerate(self.segments)}

    def __len__(self) -> int:
        return 1 << 62  # indexed by step; the trainer decides how many steps to take

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The photo permutation of an epoch."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.store.photos))

    def batch_photos(self, step: int) -> np.ndarray:
        """Indices of this rank's photos at a step."""
        epoch, b = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        start = b * self.photos_per_batch + self.rank * self.local_photos
        return order[start:start + self.local_photos]

    def photo_crops(self, index: int, epoch: int,
                    shared: History | None = None) -> tuple[np.ndarray, list[list[str]]]:
        """The crops of one photo on one visit [crops, 3, P, P] uint8, and each crop's tags (history, phase);
        `shared`: the batch's one history, in place of the photo's own draw."""
        photo = self.store.photos[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.history is None:
            positions = crop_positions(photo.height, photo.width, self.patch, self.crops, rng)
            return cut_crops(self.store.image(index), positions, self.patch), [[] for _ in range(self.crops)]
        return visit_crops(self.store.image(index), self.patch, self.crops, self.history, rng, shared)

    def crop_text(self, segments: Sequence[int]) -> str:
        """The full text of a crop from its segment ids: the EXIF text, then its tags, in the same form."""
        return ", ".join(self.segments[s] for s in segments if s >= 0)

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        """{'pixels': uint8 [L*K,3,P,P] photo-major, 'photo': [L] photo ids, 'group': [L] EXIF-text ids,
        'segments': [L*K, S] text-segment ids per crop (-1 = padding), 'crop_group': [L*K] text ids per crop
        (equal iff the full texts are equal), 'step'}."""
        epoch = step // self.steps_per_epoch
        idx = self.batch_photos(step)
        shared = shared_batch_history(self.history, self.seed, step) if self.history is not None else None
        pixels, rows = [], []
        for i in idx:
            crops, tags = self.photo_crops(int(i), epoch, shared)
            pixels.append(crops)
            base = self.text_ids[self.store.photos[int(i)].text]
            rows += [[base] + [self.segment_ids[t] for t in crop_tags] for crop_tags in tags]
        width = max(len(r) for r in rows)
        segments = np.full((len(rows), width), -1, dtype=np.int64)
        for r, row in enumerate(rows):
            segments[r, :len(row)] = row
        groups = [self.text_ids[self.store.photos[int(i)].text] for i in idx]
        return {"pixels": torch.from_numpy(np.concatenate(pixels)), "photo": torch.as_tensor(idx, dtype=torch.long),
                "group": torch.tensor(groups, dtype=torch.long), "segments": torch.from_numpy(segments),
                "crop_group": torch.from_numpy(segment_groups(segments)), "step": torch.tensor(step)}


def segment_groups(segments: np.ndarray) -> np.ndarray:
    """One int64 id per row of segment ids, equal iff the rows are (a polynomial hash modulo 2^61 - 1)."""
    mod, base = (1 << 61) - 1, 1_000_003
    out = np.zeros(len(segments), dtype=object)
    for col in range(segments.shape[1]):
        out = (out * base + (segments[:, col].astype(object) + 2)) % mod
    return out.astype(np.int64)


def _phase_position(limit: int, phase: int, rng: np.random.Generator) -> int:
    """A random position in 0..limit whose offset from the grid (at 0) is `phase` mod 8 (or the nearest possible)."""
    if limit < phase:
        return limit  # too little room: the best we can do; its true phase is recorded by the caller
    return phase + 8 * int(rng.integers(0, (limit - phase) // 8 + 1))


def crop_phases(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Block phases of a visit's crops: pairs of crops share one, every other pair is grid-aligned (0, 0).

    Pairs give the patch-patch term same-text positives; aligned pairs match the test-time grid, which is
    aligned to the image's own JPEG grid.
    """
    pairs = [(0, 0) if k % 2 == 0 else (int(rng.integers(8)), int(rng.integers(8))) for k in range((n + 1) // 2)]
    return [pairs[min(i // 2, len(pairs) - 1)] for i in range(n)]


def window_corner(max_y: int, max_x: int, aligned_share: float, rng: np.random.Generator) -> tuple[int, int]:
    """A processed window's top-left corner in 0..max: on the camera grid (multiples of 8) for a share of visits.

    With `aligned_share` 0 (recipes saved before it existed) exactly the old draws are made.
    """
    aligned = aligned_share > 0 and rng.random() < aligned_share
    if aligned:
        return 8 * int(rng.integers(max_y // 8 + 1)), 8 * int(rng.integers(max_x // 8 + 1))
    return int(rng.integers(max_y + 1)), int(rng.integers(max_x + 1))


def visit_crops(image: np.ndarray, patch: int, n: int, cfg: HistoryConfig, rng: np.random.Generator,
                shared: History | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """One visit of a photo under the history recipe: maybe processed, crops at chosen block phases, their tags.

    The camera's JPEG grid is taken to start at the stored array's origin (true for camera files and for
    MCU-aligned lossless crops, as in ../shared/data/photos). A processed visit works on a window that starts on
    the camera grid for a share `cfg.aligned_windows` of visits (a whole photo re-saved) and anywhere otherwise (a
    pasted region re-saved with its host); its re-compression grid starts at the window's corner, and the camera
    grid's offset from it is tagged when the camera grid reached that re-compression (`cfg.original_grid_tags`).
    `shared` (a batch's one history) replaces the visit's own draw, which is still made so that every later
    draw of the visit stays where it was.
    """
    height, width = image.shape[:2]
    history = sample_history(cfg, rng)
    if shared is not None:
        history = shared
    phases = crop_phases(n, rng)
    out = cfg.window
    while history.steps and source_window(history, out) > min(height, width):
        out -= 32
    if history.steps and out < patch + 8:
        history = History()  # the photo is too small for this processing: an unprocessed visit
    if history.warp_k1 is not None:  # a lens warps the whole frame: where a window sits decides what it gets
        image = distort(image, history.warp_k1)
    visit_tags: list[str] = []
    if history.steps:
        src = source_window(history, out)
        wy, wx = window_corner(height - src, width - src, cfg.aligned_windows, rng)
        pixels = apply_history(image[wy:wy + src, wx:wx + src], history, out, rng)
        # Where the last JPEG grid starts in window coordinates (None: resampled after it, no grid).
        grid = (0, 0) if history.recompressed else ((-wy) % 8, (-wx) % 8) if history.has_grid else None
        if cfg.original_grid_tags and history.keeps_original_grid:
            visit_tags = original_grid_tags(-wy, -wx)  # where the camera grid sits, seen from the last one
        if history.warp_k1 is not None:  # a visit-level tag, so that the crop pairs sharing a text still do
            visit_tags = visit_tags + [radius_tag(frame_radius(height, width, wy + src / 2 - 0.5, wx + src / 2 - 0.5))]
    else:
        pixels, grid = image, (0, 0)
    h, w = pixels.shape[:2]
    crops = np.empty((n, 3, patch, patch), dtype=np.uint8)
    tags: list[list[str]] = []
    for i, (py, px) in enumerate(phases):
        if grid is None:
            y, x = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        else:
            y = grid[0] + _phase_position(h - patch - grid[0], py, rng) if h - patch >= grid[0] else 0
            x = grid[1] + _phase_position(w - patch - grid[1], px, rng) if w - patch >= grid[1] else 0
        crops[i] = pixels[y:y + patch, x:x + patch].transpose(2, 0, 1)
        crop_tags = history.tags() + visit_tags
        if cfg.phase_tags and grid is not None:
            crop_tags += phase_tags(y - grid[0], x - grid[1])
        tags.append(crop_tags)
    return crops, tags


def eval_crops(store: PhotoStore, patch_size: int, n: int, seed: int = 0,
               aligned: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random crops of every photo of a held-out store: (uint8 [N*n,3,P,P], photo index per crop).

    `aligned`: corners on multiples of 8 (the camera's JPEG grid), as a phase-aware model sees at test time.
    """
    crops, owner = [], []
    for i, photo in enumerate(store.photos):
        rng = np.random.default_rng([seed, EVAL_STREAM, i])
        positions = crop_positions(photo.height, photo.width, patch_size, n, rng)
        if aligned:
            positions = positions - positions % 8
        crops.append(cut_crops(store.image(i), positions, patch_size))
        owner += [i] * n
    return torch.from_numpy(np.concatenate(crops)), torch.tensor(owner, dtype=torch.long)


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 crops -> float RGB in [0,1] (the model normalises them itself)."""
    return pixels.float().div_(255.0)


def resolve_cache(photos: Sequence[TrainingPhoto], cache: str, limit_mb: float = 4096) -> bool:
    """Whether to cache decoded photos: 'yes', 'no', or 'auto' (when they fit in `limit_mb`)."""
    if cache not in ("auto", "yes", "no"):
        raise PatchDataError(f"cache must be auto, yes or no, not {cache!r}")
    if cache == "auto":
        return PhotoStore.cache_bytes(photos) <= limit_mb * 2**20
    return cache == "yes"


__all__ = ["TrainingPhoto", "PhotoStore", "PatchBatches", "visit_crops", "crop_phases", "segment_groups", "PatchDataError", "photos_from_records", "split_by_photo", "split_by_camera",
           "data_hash", "crop_positions", "cut_crops", "eval_crops", "to_float", "resolve_cache"]
