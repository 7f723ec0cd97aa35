"""The `detect()` API: image -> patch embeddings -> consistency map -> heatmap, mask and score."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..ranges import MAX_BATCH_SIZE, MAX_ITERS, MAX_PER_SIDE, range_problem
from .consistency import mode_consistency_map
from .cells import CellMap, PatchGrid
from .grid import (DEFAULT_PER_SIDE, ForensicsError, check_precision, embed_patches,
                   is_grid_aligned, model_grid, per_side_note)
from .heatmap import apply_polarity, cell_areas, consistency_gap, normalised_inconsistency
from .ncut import normalized_cut
from .scores import IMAGE_SCORE, candidate_scores


@dataclass
class DetectionResult:
    """Everything one detection produced; maps are in the image's stored (not EXIF-rotated) coordinates.

    The maps are held per cell of the patch grid (``cell_heatmap``, ``cell_mask``): that is their real
    resolution, and a 95 MP photo's pixel maps would need 0.5 GB. `heatmap` and `mask` expand them to the
    image's pixels on demand (each call computes them anew); `heatmap_map`/`mask_map` give them as
    `CellMap` (full resolution, smaller views, pixel means, without expanding).
    """

    score: float  # image score `scores.IMAGE_SCORE`, higher = more likely manipulated (see scores.py)
    embeddings: np.ndarray  # float32 [N, D], L2-normalised, row-major over the patch grid
    grid: PatchGrid
    cell_heatmap: np.ndarray  # float32 [rows, cols] in [0, 1], high = inconsistent with the dominant region
    cell_mask: np.ndarray  # bool [rows, cols], the normalised-cut side with the higher mean heat
    consistency: np.ndarray  # float64 [rows, cols], mean similarity of each cell to the dominant mode
    flipped: bool  # polarity rule flipped the map
    radius: float  # mean-shift radius used
    seconds: float = 0.0
    model_id: str = ""
    timings: dict = field(default_factory=dict)
    source: str | None = None  # path of the analysed file, when there was one
    orientation: int = 1  # the file's EXIF Orientation (maps are NOT rotated by it)
    gap: float | None = None  # the consistency gap (heatmap.consistency_gap), the score shipped before
    # Calibrated probability of manipulation and its verdict band (forensics.calibration), when the model
    # ships a calibration.json; None otherwise.
    probability: float | None = None
    verdict: str | None = None  # one of calibration.VERDICTS, or calibration.CANNOT_JUDGE
    verdict_reason: str | None = None  # why "cannot judge", or why "inconclusive" and not "likely authentic"
    # how this image differs from what the probability was calibrated on (None: it is like the fit set)
    verdict_caveat: str | None = None
    notes: list[str] = field(default_factory=list)  # what the analysis changed from its settings (a capped stride)
    reliability: Any = None  # forensics.reliability.Reliability of the analysed pixels (None: not measured)

    @property
    def heatmap_map(self) -> CellMap:
        """The heatmap as a `CellMap` (float32, in [0, 1], high = likely spliced)."""
        return CellMap(self.cell_heatmap, self.grid)

    @property
    def mask_map(self) -> CellMap:
        """The normalised-cut mask as a `CellMap` (bool)."""
        return CellMap(self.cell_mask, self.grid)

    @property
    def heatmap(self) -> np.ndarray:
        """float32 [H, W] in [0, 1], high = inconsistent with the dominant region (expanded from the cells)."""
        return self.heatmap_map.full()

    @property
    def mask(self) -> np.ndarray:
        """bool [H, W]: the normalised-cut side with the higher mean heat (expanded from the cells)."""
        return self.mask_map.full()

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the analysed pixel array."""
        return self.grid.height, self.grid.width

    @property
    def flagged_fraction(self) -> float:
        """Fraction of pixels with heatmap >= 0.5."""
        return self.heatmap_map.pixel_mean(self.cell_heatmap >= 0.5)

    @property
    def mask_fraction(self) -> float:
        """Fraction of pixels inside the mask."""
        return self.mask_map.pixel_mean()


def consistency_from_embeddings(
    embeddings: np.ndarray,
    grid: PatchGrid,
    *,
    iters: int = 5,
    percentile: float = 10.0,
    model_id: str = "",
) -> DetectionResult:
    """Patch embeddings [N, D] on ``grid`` -> DetectionResult (heatmap, normalised-cut mask, score)."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != grid.n_patches:
        raise ForensicsError(f"expected {grid.n_patches} embeddings for a {grid.gy}x{grid.gx} grid, got shape {emb.shape}")
    t0 = time.perf_counter()
    rows, cols = grid.cell_shape
    mode, vote, radius = mode_consistency_map(emb, grid.gy, grid.gx, grid.spread, iters, percentile)
    mode = mode.reshape(rows, cols)
    areas = cell_areas(grid)
    cell_heat, flipped = apply_polarity(normalised_inconsistency(mode), areas)
    score = consistency_gap(mode, cell_heat, areas)
    cell_heat = cell_heat.astype(np.float32)  # the precision of the pixel maps shipped before
    t1 = time.perf_counter()
    # One polarity rule for both maps: the mask is the side of the cut the heatmap calls hotter.
    cell_mask = normalized_cut(vote, areas, heat=cell_heat).reshape(rows, cols)
    t2 = time.perf_counter()
    result = DetectionResult(
        score=float(score),
        embeddings=emb.astype(np.float32, copy=False),
        grid=grid,
        cell_heatmap=cell_heat,
        cell_mask=cell_mask,
        consistency=mode,
        flipped=flipped,
        radius=radius,
        model_id=model_id,
        timings={"consistency_s": t1 - t0, "ncut_s": t2 - t1},
        gap=float(score),
    )
    if IMAGE_SCORE != "gap":
        result.score = float(candidate_scores(result)[IMAGE_SCORE])
    return result


@lru_cache(maxsize=4)
def _load_named_model(name: str, device: str):
    """Load a model by name or folder once per process (the CLI analyses many images with one model)."""
    from exiflang.models import ModelError, load_model

    try:
        return load_model(name, image_only=True, device=device)
    except ModelError as exc:
        raise ForensicsError(f"cannot load model {name!r}: {exc}") from exc


def resolve_model(model: Any, device: str = "cpu") -> Any:
    """Accept a model object, a name ("default") or a weights folder; return a model in eval mode."""
    if isinstance(model, (str, Path)):
        return _load_named_model(str(model), device)
    if not hasattr(model, "encode_image") or not hasattr(model, "patch_size"):
        raise ForensicsError(f"model must be a name, a weights folder or an ExifModel, got {type(model).__name__}")
    return model


def model_identifier(model) -> str:
    """The model's id for reports (``model_id`` attribute, else its class name)."""
    return str(getattr(model, "model_id", "") or type(model).__name__)


@dataclass
class Detector:
    """A resolved model + patch-grid + consistency settings: image -> DetectionResult (the one detector).

    `detect()`, `exiflang detect` and the benchmark's learned method all run through this class, so the patch
    grid (`grid`), the embedding (`embed`) and the consistency pipeline (`analyse_embeddings`) exist once.
    """

    model: Any
    per_side: int = DEFAULT_PER_SIDE
    batch_size: int = 64
    iters: int = 5
    percentile: float = 10.0
    model_id: str = ""
    calibration: Any = None  # forensics.calibration.Calibration shipped with the model (None: no probability)
    precision: str = "float32"  # the encoder's arithmetic (`grid.PRECISIONS`): bfloat16 is faster, maps not identical
    # progress(done, total) after each batch of patches embedded: a long image's progress (the web page's bar)
    progress: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from .calibration import for_model

        for name, high in (("per_side", MAX_PER_SIDE), ("batch_size", MAX_BATCH_SIZE), ("iters", MAX_ITERS)):
            problem = range_problem(getattr(self, name), {"low": 1, "high": high})
            if problem:
                raise ForensicsError(f"{name} {problem}")
        check_precision(self.precision)  # before the model loads: a bad option is a one-line error, no work done
        self.model = resolve_model(self.model)
        self.model_id = self.model_id or model_identifier(self.model)
        if self.calibration is None:
            self.calibration = for_model(self.model)

    @classmethod
    def load(cls, model: Any = "default", device: str = "cpu", **settings: Any) -> "Detector":
        """A detector for a model object, a built-in name or a weights folder (loaded once per process)."""
        return cls(resolve_model(model, device), **settings)

    def grid(self, image: np.ndarray, votes: np.ndarray | None = None) -> PatchGrid:
        """The patch grid this detector lays on an image (JPEG-aligned for phase-aware models; ``votes``: the
        image's JPEG-grid votes, when counted already)."""
        return model_grid(image, self.model, self.per_side, votes)

    def embed(self, image: np.ndarray, grid: PatchGrid | None = None) -> tuple[np.ndarray, PatchGrid]:
        """L2-normalised patch embeddings [N, D] on ``grid`` (default: `self.grid(image)`)."""
        grid = grid or self.grid(image)
        return embed_patches(image, self.model, batch_size=self.batch_size, grid=grid, progress=self.progress,
                             precision=self.precision)

    def analyse_embeddings(self, embeddings: np.ndarray, grid: PatchGrid, lossy: bool | None = None,
                           image: np.ndarray | None = None) -> DetectionResult:
        """The consistency pipeline on given embeddings (e.g. from a cache), with the calibrated probability;
        `lossy`: the file was a JPEG (None: unknown, e.g. an array); `image`: its pixels, whose reliability
        (flat, clipped regions) is measured and can withhold the verdict."""
        from .reliability import measure_reliability

        result = consistency_from_embeddings(embeddings, grid, iters=self.iters, percentile=self.percentile,
                                             model_id=self.model_id)
        if image is not None:
            result.reliability = measure_reliability(image, self.model.patch_size)
        result = self.calibrate(result, lossy)
        note = per_side_note(grid, self.per_side, is_grid_aligned(self.model))
        result.notes += [note] if note else []
        return result

    def detect(self, image_or_path: Any) -> DetectionResult:
        """Detect and localise a splice in an image (path, PIL image or HxWx3 array) with no metadata."""
        from exiflang.imageio import as_rgb_array, load_rgb, starts_as_jpeg

        t0 = time.perf_counter()
        source, orientation = None, 1
        if isinstance(image_or_path, (str, Path)):
            image, info = load_rgb(image_or_path)
            source, orientation = str(image_or_path), info.orientation
        else:
            image = as_rgb_array(image_or_path)
        t1 = time.perf_counter()
        embeddings, grid = self.embed(image)
        t2 = time.perf_counter()
        result = self.analyse_embeddings(embeddings, grid, lossy=starts_as_jpeg(source), image=image)
        result.seconds = time.perf_counter() - t0
        result.timings.update(load_s=t1 - t0, embed_s=t2 - t1)
        result.source, result.orientation = source, orientation
        return result

    def calibrate(self, result: DetectionResult, lossy: bool | None = None) -> DetectionResult:
        """Fill ``result.probability`` and ``result.verdict`` from the model's calibration (if it ships one), and
        say where the image is unlike the images the calibration was measured on (``verdict_caveat``)."""
        from .calibration import CANNOT_JUDGE, unmeasured_conditions
        from .reliability import too_little_evidence

        if self.calibration is not None:
            result.probability = self.calibration.probability(result.score)
            result.verdict = self.calibration.verdict(result.probability)
            # The probability stays for those who study it; the reader gets no verdict the analysis cannot support.
            result.verdict_reason = too_little_evidence(*result.image_size, self.model.patch_size, result.reliability)
            if result.verdict_reason:
                result.verdict = CANNOT_JUDGE
            result.verdict_caveat = unmeasured_conditions(self.calibration, *result.image_size, self.per_side, lossy)
        return result


def detect(
    image_or_path,
    model="default",
    *,
    per_side: int = DEFAULT_PER_SIDE,
    batch_size: int = 64,
    device: str = "cpu",
    iters: int = 5,
    percentile: float = 10.0,
) -> DetectionResult:
    """Detect and localise a splice in an image (path, PIL image or HxWx3 array) with no metadata."""
    detector = Detector.load(model, device, per_side=per_side, batch_size=batch_size, iters=iters,
                             percentile=percentile)
    return detector.detect(image_or_path)
