"""The methods built on a model: the one Detector with an embedding cache, random weights, and the fusion.

Learned methods cache their patch embeddings as ``<cache>/<model id>/<pixel hash>_ps<per_side>.npy``, so
re-running with other post-processing (``iters``, ``percentile``, threshold) or into another folder embeds
nothing again. Methods built on a trained model set ``uses_trained_model = True`` and expose ``model_config``
(its config.json), which is what the camera-overlap check (`exiflang.eval.camera_overlap`) reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..imageio import atomic_write_npy, pixel_sha256, read_npy
from .analysis import Analysis, warn
from .classical import DQMethod, GridMethod

if TYPE_CHECKING:
    from ..models import ExifModel


def _load_cached_embeddings(path: Path, n_patches: int, log: Callable[[str], None] = warn) -> np.ndarray | None:
    """The cached embeddings at ``path``, or None (with a warning naming the file) when the entry is damaged."""
    emb, problem = read_npy(path)
    if emb is None:
        log(f"damaged embedding cache entry {path} ({problem}); recomputing it")
        return None
    if emb.ndim != 2 or emb.shape[0] != n_patches or not np.isfinite(emb).all():
        log(f"damaged embedding cache entry {path} (shape {emb.shape}, expected {n_patches} finite rows); "
            f"recomputing it")
        return None
    return emb



@dataclass
class EmbeddingMethod:
    """The one detector (`exiflang.forensics.Detector`) as a benchmark method, with an embedding cache."""

    detector: Any  # exiflang.forensics.Detector
    cache_dir: Path | None = None
    description: str = ""
    trained: bool = True  # False for random weights: the camera-overlap check does not apply

    @property
    def method_id(self) -> str:
        """The model's id (the cache and the reports are keyed by it)."""
        return self.detector.model_id

    @property
    def model(self) -> Any:
        """The detector's model."""
        return self.detector.model

    @property
    def uses_trained_model(self) -> bool:
        """Whether results depend on what a model learned (and so on which cameras it saw)."""
        return self.trained

    @property
    def model_config(self) -> dict:
        """The model's config.json (``train.cameras`` lists its training cameras when the trainer recorded them)."""
        config = getattr(self.model, "config", None)
        return config.to_dict() if hasattr(config, "to_dict") else dict(config or {})

    def settings(self) -> dict:
        """Settings that change results."""
        d = self.detector
        # float32 leaves the settings (and so every digest written before the option existed) as they were
        precision = {} if d.precision == "float32" else {"precision": d.precision}
        return {"model_id": self.method_id, "per_side": d.per_side, "iters": d.iters,
                "percentile": d.percentile, "description": self.description, **precision}

    def set_progress(self, report: Callable[[float], None] | None) -> None:
        """Call ``report(fraction of this image done)`` as its patches are embedded (the web page's bar)."""
        self.detector.progress = None if report is None else (lambda done, total: report(done / max(total, 1)))

    def _cache_path(self, image: np.ndarray, grid: Any) -> Path | None:
        """Where this image's embeddings are cached (None without a cache folder)."""
        if self.cache_dir is None:
            return None
        # A JPEG-aligned grid (phase-aware models) is part of the key: other origin, other patches.
        aligned = f"_o{grid.origin[0]}{grid.origin[1]}s{grid.stride}" if grid.origin != (0, 0) or (
            self.model_config.get("grid_aligned")) else ""
        precision = "" if self.detector.precision == "float32" else f"_{self.detector.precision}"
        return self.cache_dir / self.method_id / (
            f"{pixel_sha256(image)[:24]}_ps{self.detector.per_side}{aligned}{precision}.npy")

    def _embeddings(self, image: np.ndarray, votes: np.ndarray | None = None):
        """Patch embeddings and grid, from the cache when possible (``votes``: the image's JPEG-grid votes)."""
        grid = self.detector.grid(image, votes)
        path = self._cache_path(image, grid)
        if path is not None and path.is_file():
            emb = _load_cached_embeddings(path, grid.n_patches)
            if emb is not None:
                return emb, grid, True
        emb, grid = self.detector.embed(image, grid)
        if path is not None:
            atomic_write_npy(path, emb)
        return emb, grid, False

    def analyse(self, image: np.ndarray, path: Path | None = None, votes: np.ndarray | None = None) -> Analysis:
        """Embed (or read cached embeddings) and run the consistency pipeline (``path``: was the file a JPEG;
        ``votes``: the image's JPEG-grid votes when counted already, for a phase-aware model's grid)."""
        from ..imageio import starts_as_jpeg

        emb, grid, cached = self._embeddings(image, votes)
        result = self.detector.analyse_embeddings(emb, grid, lossy=starts_as_jpeg(path) if path else None,
                                                 image=image)
        return Analysis(result.heatmap_map, float(result.score), result, cached)



# The fusion's steps' cost on this project's 2-core CPU (1024x768 shared photos; ratios are what matter): seconds
# per megapixel for counting the JPEG-grid votes (shared by the three analyses), the rest of the grid analysis and
# the dq analysis with the fusion, and seconds per embedded patch. They place the bar after each step, as time is
# spent there: a bar, not a clock. Fixed shares (0.7 after the learned map) held the bar still for most of a
# coarse-grid image.
VOTES_S_PER_MP, GRID_S_PER_MP, DQ_S_PER_MP, EMBED_S_PER_PATCH = 0.24, 0.04, 0.10, 0.0025


def fusion_progress_marks(height: int, width: int, n_patches: int) -> tuple[float, float, float]:
    """Where the fusion's bar stands (0-1) after the grid votes, after the learned map, and after the grid."""
    mp = height * width / 1e6
    costs = [VOTES_S_PER_MP * mp, EMBED_S_PER_PATCH * n_patches, GRID_S_PER_MP * mp, DQ_S_PER_MP * mp]
    ends = np.cumsum(costs) / sum(costs)
    return float(ends[0]), float(ends[1]), float(ends[2])


@dataclass
class FusionMethod:
    """The learned map fused with the grid and dq maps by the validation-chosen rule (`forensics.fusion`)."""

    learned: EmbeddingMethod
    rule: Any = None  # a forensics.fusion.FusionRule; None: the shipped rule file
    method_id: str = ""
    report: Callable[[float], None] | None = field(default=None, init=False, repr=False, compare=False)  # set_progress

    def __post_init__(self) -> None:
        from ..forensics.fusion import METHOD_ID
        from ..forensics.fusion_bands import BandFusion, ConditionalFusion

        # A given FusionRule is used for every file (tuning, tests); by default the shipped per-band rules.
        self.bands = (ConditionalFusion({"any": BandFusion(self.rule)}) if self.rule is not None
                      else ConditionalFusion.load())
        self.rule = self.rule or self.bands.rule_for_band("lossless")
        self.grid, self.dq = GridMethod(), DQMethod()
        self.method_id = self.method_id or f"{METHOD_ID}+{self.learned.method_id}"

    @property
    def uses_trained_model(self) -> bool:
        """The learned component is a trained model."""
        return self.learned.uses_trained_model

    @property
    def model_config(self) -> dict:
        """The learned component's config.json."""
        return self.learned.model_config

    def settings(self) -> dict:
        """Settings that change results (the rule's numbers included)."""
        return {"model_id": self.method_id, "learned": self.learned.settings(), "rule": self.bands.to_dict()}

    def set_progress(self, report: Callable[[float], None] | None) -> None:
        """Call ``report(fraction of this image done)`` through the steps: the JPEG-grid votes, the learned map's
        patches as they are embedded, the rest of the grid analysis, the double-quantisation analysis and the
        fusion, each with the share of the image's time it takes (`fusion_progress_marks`)."""
        self.report = report

    def components(self, image: np.ndarray, path: Path | None = None) -> dict[str, Analysis]:
        """The three component analyses of one image. The JPEG-grid votes are counted once, for the learned map's
        grid origin, the grid analysis and (on decoded pixels) the dq analysis: the same results as each counting
        its own (tests/test_shared_votes.py), in less time (benchmarks/batch_throughput.py's baseline row)."""
        from ..forensics.grid import is_grid_aligned, make_grid
        from ..forensics.jpeg_grid import votes_by_band

        report = self.report or (lambda fraction: None)
        model, h, w = self.learned.detector.model, *image.shape[:2]
        aligned = is_grid_aligned(model)
        n_patches = make_grid(h, w, int(model.patch_size), self.learned.detector.per_side,
                              (0, 0) if aligned else None).n_patches
        votes_end, learned_end, grid_end = fusion_progress_marks(h, w, n_patches)
        self.learned.set_progress(None if self.report is None else
                                  (lambda f: report(votes_end + (learned_end - votes_end) * f)))
        votes = votes_by_band(image)
        report(votes_end)
        learned = self.learned.analyse(image, votes=votes)
        report(learned_end)
        grid = self.grid.analyse(image, votes=votes)
        report(grid_end)
        return {"learned": learned, "grid": grid, "dq": self.dq.analyse(image, path=path, votes=votes)}

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Run the three methods and fuse their maps and scores."""
        from ..forensics.condition import read_condition
        from ..forensics.fusion_bands import fuse_file
        from ..forensics.reliability import measure_reliability

        parts = self.components(image, path)
        detector = self.learned.detector
        condition = read_condition(*image.shape[:2], path, detector.model.patch_size)
        # measured on these pixels by the learned component already (EmbeddingMethod.analyse), not again here
        reliability = parts["learned"].result.reliability or measure_reliability(image, detector.model.patch_size)
        heat, score, decision = fuse_file(self.bands, *((parts[k].heatmap, parts[k].score) for k in ("learned", "grid", "dq")),
                                          condition, detector.model_id, detector.per_side, detector.model.patch_size,
                                          reliability)
        extra = {f"{k}_score": float(v.score) for k, v in parts.items()}
        extra.update(condition=condition.to_dict(), probability=decision.probability, verdict=decision.verdict,
                     verdict_reason=decision.reason, verdict_caveat=decision.caveat,
                     reliability=reliability.to_dict())
        return Analysis(heat, score, cached=parts["learned"].cached, extra=extra)


def random_weights_model(like: str = "default", seed: int = 0, device: str = "cpu") -> "ExifModel":
    """The architecture of model `like` with freshly initialised (random) weights, fixed seed, eval mode."""
    from ..models import ModelError, create_model
    from ..models.factory import resolve_weights_dir

    try:
        config = json.loads((resolve_weights_dir(like) / "config.json").read_text())
    except ModelError:  # `like` may also be a config name such as "tiny"
        config = like
    model = create_model(config, seed=seed).to(device).eval()
    model.model_id = f"random-{model.config.name}-seed{seed}"
    return model

