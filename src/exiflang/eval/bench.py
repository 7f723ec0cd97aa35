"""The benchmark runner: every image of a dataset through one method, per-image metrics, a summary.

Output folder layout (``out_dir``):
* ``bench_config.json``: dataset, method, model id and post-processing settings of the run; a resumed run
  must match it (otherwise it refuses to mix results).
* ``maps/<stem>.json``, ``maps/<stem>.heatmap.npy``, PNGs: the files ``exiflang detect --out`` writes.
* ``per_image/<stem>.json``: label, score and localisation metrics of one image, written last and atomically;
  its presence marks the image as done, which is what makes an interrupted run resumable.
* ``per_image.csv``, ``summary.json`` (keys ``pmap``, ``pmap_strict``, ``ciou``, ``ciou_strict``, ``f1_best``,
  ``mcc_best``, ``pixel_auc``, ``det_ap``, ``det_auc``, ``counts``, ``camera_overlap``, ...) and ``summary.md``.

Methods (`METHODS`, `build_method`): ``exiflang`` (a trained model), ``random`` (its architecture with random
weights), ``noise`` (classical noise-level inconsistency), ``grid`` (JPEG block-grid analysis,
`exiflang.forensics.jpeg_grid`) and ``dq`` (double-quantisation analysis of the file's own DCT coefficients,
`exiflang.forensics.dq`). A method is any object with ``method_id``, ``settings()`` and
``analyse(image, path=None) -> Analysis``; ``path`` is the image file (methods that read the file itself, such
as ``dq``, use it; the others ignore it; an older ``analyse(image)`` without it is still called correctly).
Methods built on a trained model set ``uses_trained_model = True`` and expose ``model_config`` (its
config.json), which is what the camera-overlap check reads.

Camera overlap (``summary.json["camera_overlap"]``, see `camera_overlap`): when the dataset's manifest names the
cameras of its images (``target_camera``/``source_camera`` keys, or ``target_make``/``target_model``/
``source_make``/``source_model``) and the model's config.json records the cameras it trained on
(``train.cameras.train_cameras``), the run reports how many of the dataset's cameras the model has seen:
numbers on seen cameras measure memory, not generalisation.

Learned methods cache their patch embeddings as ``<cache>/<model id>/<pixel hash>_ps<per_side>.npy``, so
re-running with other post-processing (``iters``, ``percentile``, threshold) or into another folder embeds
nothing again. Metric definitions: `exiflang.eval.metrics`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, TYPE_CHECKING

from ..imageio import atomic_write, atomic_write_npy, pixel_sha256, read_npy, starts_as_jpeg
from ..errors import ExiflangError

if TYPE_CHECKING:
    from ..models import ExifModel

import numpy as np

from . import metrics as M
from .datasets import Dataset, Sample, load_mask

SUMMARY_KEYS = ["pmap", "pmap_strict", "ciou", "ciou_strict", "ciou_single", "f1_best", "mcc_best",
                "f1_fixed", "mcc_fixed", "pixel_auc", "det_ap", "det_auc"]
# Per-image metric key -> summary key (means over manipulated images).
LOCAL_KEYS = {"ap": "pmap", "ap_strict": "pmap_strict", "ciou": "ciou", "ciou_strict": "ciou_strict",
              "ciou_single": "ciou_single", "f1_best": "f1_best", "mcc_best": "mcc_best", "f1_fixed": "f1_fixed",
              "mcc_fixed": "mcc_fixed", "pixel_auc": "pixel_auc"}


class BenchError(ExiflangError):
    """The benchmark cannot run (bad options, an output folder from another run); the message says why."""


@dataclass
class Analysis:
    """What a method returns for one image."""

    heatmap: Any  # float32 HxW in [0, 1], high = manipulated: an array, or a forensics.CellMap (np.asarray expands it)
    score: float  # higher = more likely manipulated
    result: Any = None  # a forensics.DetectionResult when there is one (for write_report)
    cached: bool = False  # embeddings came from the cache
    extra: dict | None = None  # method-specific JSON-ready details for the report (e.g. a grid origin)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the heatmap."""
        return tuple(self.heatmap.shape[:2])

    @property
    def flagged_fraction(self) -> float:
        """Fraction of pixels with heatmap >= 0.5 (from the cells when the map is a CellMap)."""
        from ..forensics import CellMap

        if isinstance(self.heatmap, CellMap):
            return self.heatmap.pixel_mean(self.heatmap.cells >= 0.5)
        return float((np.asarray(self.heatmap) >= 0.5).mean())


class MethodError(ExiflangError):
    """A method cannot analyse one image (too small, not decodable by it, ...); the benchmark skips that image."""


class Method(Protocol):
    """A detector the harness can run: a stable id and image (+ its file) -> Analysis.

    Optional attributes for the camera-overlap check: ``uses_trained_model`` (bool; when absent, a method
    with a ``model_config`` or ``model`` attribute counts as using one) and ``model_config`` (the model's
    config.json dict; else ``model.config``).
    """

    method_id: str

    def settings(self) -> dict:
        """Settings that change results (recorded in bench_config.json)."""

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Analyse one HxWx3 uint8 image (stored pixels); ``path`` is its file when known."""


def _accepts_path(method: Any) -> bool:
    """Whether method.analyse takes a ``path`` argument (methods written before it was added do not)."""
    import inspect

    try:
        params = inspect.signature(method.analyse).parameters
    except (TypeError, ValueError):
        return False
    return "path" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_analyse(method: Any, image: np.ndarray, path: Path | None = None) -> Analysis:
    """method.analyse(image, path=path), or method.analyse(image) for a method without the path argument."""
    if path is not None and _accepts_path(method):
        return method.analyse(image, path=path)
    return method.analyse(image)


def warn(message: str) -> None:
    """One warning line on stderr (a damaged cache entry, ...); the run goes on."""
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)  # tqdm.write: the line does not mix with a progress bar


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
        return {"model_id": self.method_id, "per_side": d.per_side, "iters": d.iters,
                "percentile": d.percentile, "description": self.description}

    def _cache_path(self, image: np.ndarray, grid: Any) -> Path | None:
        """Where this image's embeddings are cached (None without a cache folder)."""
        if self.cache_dir is None:
            return None
        # A JPEG-aligned grid (phase-aware models) is part of the key: other origin, other patches.
        aligned = f"_o{grid.origin[0]}{grid.origin[1]}s{grid.stride}" if grid.origin != (0, 0) or (
            self.model_config.get("grid_aligned")) else ""
        return self.cache_dir / self.method_id / f"{pixel_sha256(image)[:24]}_ps{self.detector.per_side}{aligned}.npy"

    def _embeddings(self, image: np.ndarray):
        """Patch embeddings and grid, from the cache when possible."""
        grid = self.detector.grid(image)
        path = self._cache_path(image, grid)
        if path is not None and path.is_file():
            emb = _load_cached_embeddings(path, grid.n_patches)
            if emb is not None:
                return emb, grid, True
        emb, grid = self.detector.embed(image, grid)
        if path is not None:
            atomic_write_npy(path, emb)
        return emb, grid, False

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Embed (or read cached embeddings) and run the consistency pipeline (``path``: was the file a JPEG)."""
        from ..imageio import starts_as_jpeg

        emb, grid, cached = self._embeddings(image)
        result = self.detector.analyse_embeddings(emb, grid, lossy=starts_as_jpeg(path) if path else None)
        return Analysis(result.heatmap_map, float(result.score), result, cached)


@dataclass
class NoiseMethod:
    """The classical noise-level-inconsistency baseline (`baselines.noise`)."""

    block: int = 16
    method_id: str = "noise-v1"
    uses_trained_model = False

    def settings(self) -> dict:
        """Settings that change results."""
        return {"model_id": self.method_id, "block": self.block}

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Noise-level heatmap and score (``path`` is not used)."""
        from .baselines.noise import noise_inconsistency

        heat, score = noise_inconsistency(image, self.block)
        return Analysis(heat, score)


def _jsonable(value: Any) -> Any:
    """A JSON-ready copy of a method's detail (numpy scalars/arrays, tuples, dataclasses)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _classical_analysis(result: Any, image: np.ndarray, method_id: str, **extra: Any) -> Analysis:
    """Analysis from a GridAnalysis/DQAnalysis-like result (heatmap, score, origin), checked."""
    heat = np.asarray(result.heatmap, dtype=np.float32)
    if heat.shape != image.shape[:2]:
        raise MethodError(f"{method_id} returned a {heat.shape} map for a {image.shape[:2]} image")
    details = {"origin": _jsonable(getattr(result, "origin", None)), **extra}
    return Analysis(np.clip(np.nan_to_num(heat, nan=0.0), 0.0, 1.0), float(result.score), extra=details)


def _module_method_id(module: str, fallback: str) -> str:
    """A classical module's METHOD_ID (so a new algorithm version never resumes an old run), else fallback."""
    import importlib

    try:
        return str(getattr(importlib.import_module(module), "METHOD_ID", "") or fallback)
    except ImportError:
        return fallback


@dataclass
class GridMethod:
    """Classical JPEG block-grid analysis (`exiflang.forensics.jpeg_grid.grid_analysis`), training-free."""

    method_id: str = ""  # default: the module's METHOD_ID (its algorithm version), else "jpeg-grid-v1"
    uses_trained_model = False

    def __post_init__(self) -> None:
        self.method_id = self.method_id or _module_method_id("exiflang.forensics.jpeg_grid", "jpeg-grid-v1")

    def settings(self) -> dict:
        """Settings that change results."""
        return {"model_id": self.method_id}

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Grid heatmap and score of the decoded pixels (``path`` is not used)."""
        from ..forensics.jpeg_grid import grid_analysis

        try:
            result = grid_analysis(image)
        except ValueError as exc:
            raise MethodError(f"{self.method_id}: {exc}") from exc
        return _classical_analysis(result, image, self.method_id)


@dataclass
class DQMethod:
    """Classical double-quantisation analysis (`exiflang.forensics.dq`), training-free.

    With a JPEG file, its own DCT coefficients and quantisation tables are read (`dq_analysis_file`); other
    inputs (PNG, arrays) are analysed from the decoded pixels (`dq_analysis`).
    """

    method_id: str = ""  # default: the module's METHOD_ID (its algorithm version), else "dq-v1"
    uses_trained_model = False

    def __post_init__(self) -> None:
        self.method_id = self.method_id or _module_method_id("exiflang.forensics.dq", "dq-v1")

    def settings(self) -> dict:
        """Settings that change results."""
        return {"model_id": self.method_id}

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """DQ heatmap and score; from the file's coefficients when ``path`` is a JPEG."""
        from ..forensics.dq import dq_analysis, dq_analysis_file

        from_file = starts_as_jpeg(path)
        try:
            result = dq_analysis_file(path, image=image) if from_file else dq_analysis(image)
        except ValueError as exc:
            raise MethodError(f"{self.method_id}: {exc}") from exc
        return _classical_analysis(result, image, self.method_id,
                                   input="jpeg-coefficients" if from_file else "decoded-pixels")


@dataclass
class FusionMethod:
    """The learned map fused with the grid and dq maps by the validation-chosen rule (`forensics.fusion`)."""

    learned: EmbeddingMethod
    rule: Any = None  # a forensics.fusion.FusionRule; None: the shipped rule file
    method_id: str = ""

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

    def components(self, image: np.ndarray, path: Path | None = None) -> dict[str, Analysis]:
        """The three component analyses of one image."""
        return {"learned": self.learned.analyse(image), "grid": self.grid.analyse(image),
                "dq": self.dq.analyse(image, path=path)}

    def analyse(self, image: np.ndarray, path: Path | None = None) -> Analysis:
        """Run the three methods and fuse their maps and scores."""
        from ..forensics.condition import read_condition
        from ..forensics.fusion_bands import fuse_file
        from ..forensics.reliability import measure_reliability

        parts = self.components(image, path)
        detector = self.learned.detector
        condition = read_condition(*image.shape[:2], path, detector.model.patch_size)
        reliability = measure_reliability(image, detector.model.patch_size)
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


@dataclass(frozen=True)
class MethodOptions:
    """What `build_method` passes to a method builder (each builder uses the options it needs)."""

    model: str = "default"
    cache_dir: Path | None = None
    device: str = "cpu"
    per_side: int = 30
    batch_size: int = 64
    iters: int = 5
    percentile: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class MethodSpec:
    """One entry of `METHODS`: what it is, its builder, and the modules it needs (checked before building)."""

    help: str
    build: Callable[[MethodOptions], Any]
    requires: tuple[str, ...] = ()


def _build_exiflang(o: MethodOptions) -> EmbeddingMethod:
    """A trained model through the consistency pipeline."""
    detector = _detector(o, o.model)
    recipe = (getattr(getattr(detector.model, "config", None), "extra", None) or {}).get("train", {}).get("recipe", {})
    objective = recipe.get("objective", "unknown")
    return EmbeddingMethod(detector, o.cache_dir, f"trained model {o.model} (objective {objective})")


def _detector(o: MethodOptions, model: Any) -> Any:
    """The one Detector, with the options' grid and consistency settings."""
    from ..forensics import Detector

    return Detector.load(model, o.device, per_side=o.per_side, batch_size=o.batch_size, iters=o.iters,
                         percentile=o.percentile)


def _build_random(o: MethodOptions) -> EmbeddingMethod:
    """The architecture of --model with random weights (a floor for the learned method)."""
    net = random_weights_model(o.model, o.seed, o.device)
    desc = f"architecture of {o.model}, random weights (seed {o.seed})"
    return EmbeddingMethod(_detector(o, net), o.cache_dir, desc, trained=False)


# The methods `exiflang bench --method` and `exiflang detect --method` offer, in this order. A new method
# (e.g. a fusion of these) is one builder plus one entry here, and its name in the CLIs' METHOD_NAMES
# (exiflang.commands.bench; a test checks that the two agree).
METHODS: dict[str, MethodSpec] = {
    "exiflang": MethodSpec("a trained model (--model) through the patch-consistency pipeline", _build_exiflang),
    "random": MethodSpec("the --model architecture with random weights (seed --seed)", _build_random),
    "noise": MethodSpec("the classical noise-level-inconsistency baseline", lambda o: NoiseMethod()),
    "grid": MethodSpec("classical JPEG 8x8 block-grid analysis (training-free)", lambda o: GridMethod(),
                       requires=("exiflang.forensics.jpeg_grid",)),
    "dq": MethodSpec("classical JPEG double-quantisation analysis of the file's own DCT coefficients "
                     "(training-free)", lambda o: DQMethod(), requires=("exiflang.forensics.dq",)),
    "fusion": MethodSpec("the --model map fused with the grid and dq maps (rule chosen on validation composites)",
                         lambda o: FusionMethod(_build_exiflang(o)),
                         requires=("exiflang.forensics.jpeg_grid", "exiflang.forensics.dq")),
}


def _module_available(name: str) -> bool:
    """Whether a module can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def build_method(method: str, model: str = "default", cache_dir: Path | None = None, device: str = "cpu",
                 per_side: int = 30, batch_size: int = 64, iters: int = 5, percentile: float = 10.0,
                 seed: int = 0) -> Any:
    """A Method by name (see `METHODS`): 'exiflang', 'random', 'noise', 'grid', 'dq' or 'fusion'."""
    spec = METHODS.get(method)
    if spec is None:
        raise BenchError(f"unknown method {method!r} (choose {', '.join(METHODS)})")
    missing = [m for m in spec.requires if not _module_available(m)]
    if missing:
        raise BenchError(f"method {method!r} needs {', '.join(missing)}, which this installation does not have")
    return spec.build(MethodOptions(model, cache_dir, device, per_side, batch_size, iters, percentile, seed))


# ---------------------------------------------------------------------------------------------------- cameras
STATUS_DISJOINT = "camera-disjoint"
STATUS_OVERLAP = "overlap"
STATUS_NO_MODEL_CAMERAS = "unknown (model config lists no training cameras)"
STATUS_NO_DATASET_CAMERAS = "unknown (dataset lists no cameras)"
STATUS_TRAINING_FREE = "not applicable (training-free method)"
STATUS_RANDOM_WEIGHTS = "not applicable (random weights, never trained)"
SEEN_LIST_MAX = 20


def _manifest_path(root: Path) -> Path | None:
    """The dataset folder's manifest.csv / MANIFEST.csv, if any."""
    for name in ("manifest.csv", "MANIFEST.csv"):
        if (Path(root) / name).is_file():
            return Path(root) / name
    return None


def dataset_cameras(dataset: Dataset, samples: list[Sample] | None = None) -> list[str] | None:
    """Sorted camera keys of a dataset's images (targets and sources), from its manifest; None if it names none.

    Reads ``target_camera``/``source_camera`` (camera keys) or else ``target_make``/``target_model``/
    ``source_make``/``source_model`` (normalised with `exiflang.data.cameras.camera_key`). With ``samples``,
    only the manifest rows of those images count (a --limit/--every subset), when the rows can be matched.
    """
    from ..data.cameras import camera_key

    path = _manifest_path(dataset.root)
    if path is None:
        return None
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    roles = []
    for role in ("target", "source"):
        if f"{role}_camera" in fields:
            roles.append((role, "key"))
        elif {f"{role}_make", f"{role}_model"} <= fields:
            roles.append((role, "make_model"))
    if not roles:
        return None
    if samples is not None and "image" in fields:
        wanted = {Path(s.image).resolve() for s in samples}
        subset = [r for r in rows if (Path(dataset.root) / (r.get("image") or "")).resolve() in wanted]
        rows = subset or rows
    keys: set[str] = set()
    for row in rows:
        for role, how in roles:
            if how == "key":
                raw = (row.get(f"{role}_camera") or "").strip()
                if raw:
                    make, _, model = raw.partition("|")
                    keys.add(camera_key(make, model))
            else:
                make, model = (row.get(f"{role}_make") or "").strip(), (row.get(f"{role}_model") or "").strip()
                if make or model:
                    keys.add(camera_key(make, model))
    return sorted(keys) or None


def _model_train_cameras(method: Any) -> tuple[list[str] | None, dict]:
    """The camera keys a method's model trained on (None when its config does not list them), and train.cameras."""
    from ..data.cameras import camera_key

    config = getattr(method, "model_config", None) or getattr(getattr(method, "model", None), "config", None) or {}
    config = config.to_dict() if hasattr(config, "to_dict") else config
    cams = (config.get("train") or {}).get("cameras") if isinstance(config, dict) else None
    if not isinstance(cams, dict) or not isinstance(cams.get("train_cameras"), list):
        return None, {}
    keys = []
    for k in cams["train_cameras"]:
        make, _, model = str(k).partition("|")
        keys.append(camera_key(make, model))
    return sorted(set(keys)), cams


def camera_overlap(method: Any, cameras: list[str] | None) -> dict:
    """Which of a dataset's cameras the method's model trained on.

    Returns ``{"dataset_cameras": n, "seen_by_model": n_seen, "seen_list": [first 20 seen keys],
    "status": ...}``; status is "camera-disjoint", "overlap", "unknown (model config lists no training
    cameras)", "unknown (dataset lists no cameras)", "not applicable (training-free method)" or "not applicable
    (random weights, never trained)". ``seen_by_model`` is None when it cannot be known. When the model records
    its split, ``split`` (its name) and ``train_cameras_hash`` are added.
    """
    n = len(cameras or [])
    out: dict[str, Any] = {"dataset_cameras": n, "seen_by_model": None, "seen_list": []}
    uses_model = getattr(method, "uses_trained_model", None)
    if uses_model is None:  # a method that does not say: it uses a trained model if it carries one
        uses_model = getattr(method, "model_config", None) is not None or getattr(method, "model", None) is not None
    if not uses_model:
        is_random = getattr(method, "trained", True) is False
        out["status"] = STATUS_RANDOM_WEIGHTS if is_random else STATUS_TRAINING_FREE
        return out
    train, cams = _model_train_cameras(method)
    if cams:
        out["split"] = cams.get("split")
        out["train_cameras_hash"] = cams.get("train_cameras_hash")
    if not cameras:
        out["status"] = STATUS_NO_DATASET_CAMERAS
        return out
    if train is None:
        out["status"] = STATUS_NO_MODEL_CAMERAS
        return out
    seen = sorted(set(cameras) & set(train))
    out.update(seen_by_model=len(seen), seen_list=seen[:SEEN_LIST_MAX],
               status=STATUS_OVERLAP if seen else STATUS_DISJOINT)
    return out


def camera_overlap_line(overlap: dict) -> str:
    """One line describing a camera_overlap entry (printed by the CLI and written to summary.md)."""
    status, n = overlap["status"], overlap["dataset_cameras"]
    if status == STATUS_OVERLAP:
        shown = ", ".join(overlap["seen_list"]) + (", ..." if overlap["seen_by_model"] > len(overlap["seen_list"]) else "")
        return (f"camera overlap: {status}: {overlap['seen_by_model']} of {n} dataset cameras were in the model's "
                f"training set ({shown})")
    if status == STATUS_DISJOINT:
        return f"camera overlap: {status}: none of the {n} dataset cameras was in the model's training set"
    return f"camera overlap: {status}" + (f" ({n} dataset cameras)" if n else "")


def camera_overlap_warning(overlap: dict) -> str | None:
    """The loud multi-line warning for an overlapping run, or None."""
    if overlap.get("status") != STATUS_OVERLAP:
        return None
    bar = "!" * 78
    n_seen, n = overlap["seen_by_model"], overlap["dataset_cameras"]
    shown = ", ".join(overlap["seen_list"]) + (", ..." if n_seen > len(overlap["seen_list"]) else "")
    split = overlap.get("split") or "its split"
    return (f"{bar}\nWARNING: {n_seen} of {n} cameras in this dataset were in the model's training set: these "
            f"numbers measure memory, not generalisation.\nSeen cameras: {shown}\nFor a camera-disjoint test, use "
            f"composites of cameras the model never saw (exiflang make-splices --cameras heldout, for a model trained "
            f"on the training cameras of {split}).\n{bar}")


def sample_stem(sample: Sample, root: Path) -> str:
    """Unique, file-system-safe output stem of a sample (its path under the dataset root)."""
    try:
        rel = sample.image.relative_to(root)
    except ValueError:
        rel = Path(sample.image.name)
    stem = rel.with_suffix("").as_posix().replace("/", "__")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def _git_commit() -> str:
    """Short commit of the checkout this package runs from ($EXIFLANG_COMMIT when set, e.g. on a copy), or 'unknown'."""
    if os.environ.get("EXIFLANG_COMMIT"):
        return os.environ["EXIFLANG_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _write_light_report(analysis: Analysis, image: np.ndarray, out_dir: Path, stem: str, method_id: str,
                        info: dict | None = None, orientation: int | None = None) -> None:
    """Heatmap .npy, overlay PNG, mask PNG and last the JSON, for methods without a DetectionResult (same names
    as detect; every file through the atomic writer, which refuses symbolic links).

    The JSON holds score, model_id (the method id), image size, flagged fraction, the analysis' ``extra``
    details and ``info`` (e.g. the method name, source file, content hash); PNGs are rotated upright when
    ``orientation`` is given, the .npy stays in stored-pixel coordinates.
    """
    from ..forensics.report import (map_view, reduce_image, report_paths, save_overlay_png, view_step,
                                    write_report_json)
    from ..imageio import atomic_save_image, atomic_write_npy, upright

    paths = report_paths(out_dir, stem, ("heatmap.npy", "overlay.png", "mask.png"))
    heat = np.asarray(analysis.heatmap, dtype=np.float32)
    show = lambda a: upright(a, orientation)  # noqa: E731 - display-only rotation
    atomic_write_npy(paths["heatmap.npy"], heat)
    h, w = heat.shape
    step = view_step(h, w)  # the PNGs of a large photo are reduced views, as write_report's
    heat_view = map_view(heat, step)
    save_overlay_png(paths["overlay.png"], reduce_image(image, step), heat_view, orientation)
    atomic_save_image(paths["mask.png"], show(((heat_view >= 0.5) * 255).astype(np.uint8)), "PNG")
    meta = {"score": float(analysis.score), "model_id": method_id, "image_size": {"height": h, "width": w},
            "flagged_fraction": float((heat >= 0.5).mean()), "view_step": step}
    if analysis.extra:
        meta.update(_jsonable(analysis.extra))
    write_report_json(paths["json"], meta, paths, _jsonable(info) if info else None)


@dataclass
class BenchRun:
    """Counters of one invocation (how much was computed now vs. resumed)."""

    computed: int = 0
    resumed: int = 0
    errors: int = 0
    cached_embeddings: int = 0
    problems: list[str] = field(default_factory=list)


def _analyse_sample(sample: Sample, method: Any, fixed_threshold: float, maps_dir: Path | None, stem: str) -> tuple[dict, bool]:
    """Run the method on one sample, write its maps, and return its per-image record (+ cache hit)."""
    from ..imageio import load_rgb

    image, _ = load_rgb(sample.image)
    mask = load_mask(sample, image.shape[:2])
    t0 = time.perf_counter()
    analysis = call_analyse(method, image, sample.image)
    seconds = time.perf_counter() - t0
    heat = np.asarray(analysis.heatmap, dtype=np.float64)
    if heat.shape != mask.shape:
        raise BenchError(f"{sample.image}: method returned a {heat.shape} map for a {mask.shape} image")
    record: dict[str, Any] = {"stem": stem, "image": str(sample.image), "label": int(sample.label),
                              "score": float(analysis.score), "seconds": round(seconds, 4),
                              "mask_fraction": float(mask.mean()), "status": "ok"}
    if sample.label == 1:
        if mask.any():
            record.update(M.image_localization_metrics(heat, mask, fixed_threshold))
        else:
            record["status"] = "empty-mask"
    if maps_dir is not None:
        if analysis.result is not None:
            from ..forensics import write_report

            analysis.result.source = str(sample.image)
            write_report(analysis.result, image, maps_dir, stem)
        else:
            _write_light_report(analysis, image, maps_dir, stem, method.method_id)
    return record, analysis.cached


def summarise(records: list[dict]) -> dict:
    """Summary metrics over per-image records (see `exiflang.eval.metrics` for the definitions)."""
    ok = [r for r in records if r["status"] == "ok"]
    manip = [r for r in ok if r["label"] == 1]
    out: dict[str, Any] = {}
    for local, key in LOCAL_KEYS.items():
        vals = [r[local] for r in manip if local in r and r[local] is not None and not math.isnan(r[local])]
        out[key] = float(np.mean(vals)) if vals else None
    labels = np.array([r["label"] for r in ok])
    if ok and 0 < labels.sum() < len(labels):
        det = M.detection_metrics(np.array([r["score"] for r in ok]), labels)
        out.update({k: float(v) for k, v in det.items()})
    else:
        out.update(det_ap=None, det_auc=None)  # detection needs both authentic and manipulated images
    out["counts"] = {
        "images": len(records), "scored": len(ok), "manipulated": len(manip), "authentic": len(ok) - len(manip),
        "errors": sum(r["status"] == "error" for r in records),
        "empty_masks": sum(r["status"] == "empty-mask" for r in records),
    }
    out["mean_seconds"] = float(np.mean([r["seconds"] for r in ok])) if ok else None
    return out


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table with one row per (name, summary)."""
    cols = ["pmap", "pmap_strict", "ciou", "ciou_strict", "ciou_single", "f1_best", "mcc_best", "f1_fixed",
            "pixel_auc", "det_ap", "det_auc"]
    head = "| method | " + " | ".join(cols) + " | n (manip/auth) |"
    sep = "|" + "---|" * (len(cols) + 2)
    lines = [head, sep]
    for name, s in rows:
        vals = ["–" if s.get(c) is None else f"{s[c]:.3f}" for c in cols]
        c = s["counts"]
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {c['manipulated']}/{c['authentic']} |")
    return "\n".join(lines) + "\n"


def _check_config(out_dir: Path, config: dict, overwrite: bool) -> None:
    """Refuse to resume into a folder that holds a run with other settings (unless overwrite)."""
    path = out_dir / "bench_config.json"
    if path.is_file() and not overwrite:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BenchError(f"{path} is damaged ({exc}); delete it to resume, or use --overwrite") from None
        if not isinstance(old, dict):
            raise BenchError(f"{path} is damaged (not a JSON object); delete it to resume, or use --overwrite")
        keys = ("dataset", "method", "settings", "fixed_threshold")
        if {k: old.get(k) for k in keys} != {k: config.get(k) for k in keys}:
            raise BenchError(
                f"{out_dir} holds a benchmark run with other settings ({path}); use another --out, or --overwrite "
                f"to discard it"
            )
    if overwrite and (out_dir / "per_image").is_dir():
        # Shards of one run would delete each other's results: overwrite is for a single process.
        for p in (out_dir / "per_image").glob("*.json"):
            p.unlink()
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))


def _check_unique_stems(samples: list[Sample], stems: list[str]) -> None:
    """BenchError naming both files when two samples would share output files (``a b.jpg`` and ``a_b.jpg``)."""
    first_with: dict[str, Path] = {}
    for sample, stem in zip(samples, stems):
        if stem not in first_with:
            first_with[stem] = sample.image
            continue
        other = first_with[stem]
        if other == sample.image:
            raise BenchError(f"{other} is listed twice in the dataset")
        raise BenchError(f"{other} and {sample.image} map to the same output name {stem!r}; rename one of them")


def _select_samples(dataset: Dataset, every: int, limit: int | None, shard: tuple[int, int] | None):
    """(all scored samples, this shard's samples, their output stems)."""
    # Every k-th image of the loader's order (manipulated then authentic): a subsample keeping the class mix.
    samples = dataset.samples[::every]
    samples = samples[:limit] if limit else samples
    stems = [sample_stem(s, dataset.root) for s in samples]
    _check_unique_stems(samples, stems)
    if shard is None:
        return samples, samples, stems
    k, n = shard
    if not 0 <= k < n:
        raise BenchError(f"shard {k}/{n}: need 0 <= K < N")
    return samples, samples[k::n], stems[k::n]


def _read_record(path: Path, log: Callable[[str], None] = warn) -> dict | None:
    """A per-image record written by an earlier run, or None (with a warning naming the file) when it is damaged."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log(f"damaged per-image result {path} ({exc}); recomputing it")
        return None
    if not isinstance(record, dict) or not {"stem", "label", "status", "score"} <= set(record):
        log(f"damaged per-image result {path} (not a per-image record); recomputing it")
        return None
    return record


def _sample_record(sample, stem: str, method: Any, fixed_threshold: float, per_image: Path, maps_dir: Path | None,
                   run: BenchRun) -> dict:
    """One image's record: read back when a previous run wrote it, else analysed and written atomically."""
    done = per_image / f"{stem}.json"
    if done.is_file():
        record = _read_record(done)
        if record is not None:
            run.resumed += 1
            return record
    try:
        record, cached = _analyse_sample(sample, method, fixed_threshold, maps_dir, stem)
        run.cached_embeddings += int(cached)
    except ExiflangError as exc:  # any project error of one image (unreadable, too small, ...): recorded, the run goes on
        record = {"stem": stem, "image": str(sample.image), "label": int(sample.label), "status": "error",
                  "error": str(exc), "score": None, "seconds": 0.0}
        run.errors += 1
        warn(f"skipped {exc}" if str(sample.image) in str(exc) else f"skipped {sample.image}: {exc}")
    atomic_write(done, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    run.computed += 1
    return record


def run_bench(dataset: Dataset, method: Any, out_dir: Path, *, dataset_spec: str = "", fixed_threshold: float = 0.5,
              limit: int | None = None, write_maps: bool = True, overwrite: bool = False,
              progress: bool = True, shard: tuple[int, int] | None = None, every: int = 1) -> tuple[dict, BenchRun]:
    """Run (or resume) a benchmark; write per-image files, per_image.csv, summary.json and summary.md.

    With ``shard=(k, n)`` only every n-th image from the k-th is analysed and no summary is written: run n
    shards in parallel into the same folder, then once without a shard to gather them (nothing is recomputed).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"dataset": dataset_spec or f"{dataset.kind}:{dataset.root}", "method": method.method_id, "every": every,
              "settings": method.settings(), "fixed_threshold": fixed_threshold}
    _check_config(out_dir, config, overwrite)
    if every < 1:
        raise BenchError(f"--every must be at least 1, got {every}")
    samples_all, samples, stems = _select_samples(dataset, every, limit, shard)
    per_image, maps_dir = out_dir / "per_image", (out_dir / "maps" if write_maps else None)
    run = BenchRun(problems=list(dataset.problems))
    records: list[dict] = []
    t_start = time.perf_counter()
    bar = tqdm(list(zip(samples, stems)), desc=f"bench {method.method_id}", unit="img", disable=not progress)
    for sample, stem in bar:
        records.append(_sample_record(sample, stem, method, fixed_threshold, per_image, maps_dir, run))
    if shard is not None:
        return {}, run
    summary = summarise(records)
    summary.update({
        "dataset": config["dataset"], "method": method.method_id, "settings": method.settings(),
        "fixed_threshold": fixed_threshold, "every": every, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(), "wall_seconds_this_invocation": round(time.perf_counter() - t_start, 2),
        "problems": run.problems,
        "camera_overlap": camera_overlap(method, dataset_cameras(dataset, samples_all)),
    })
    _write_outputs(out_dir, records, summary)
    return summary, run


def _write_outputs(out_dir: Path, records: list[dict], summary: dict) -> None:
    """per_image.csv, summary.json and summary.md."""
    fields = ["stem", "image", "label", "status", "score", "seconds", "mask_fraction", "ap", "ap_strict", "ciou",
              "ciou_strict", "ciou_single", "ciou_single_strict", "f1_best", "f1_best_strict", "mcc_best",
              "mcc_best_strict", "f1_fixed", "mcc_fixed", "ciou_fixed", "pixel_auc", "pixel_auc_pf", "error"]

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)

    atomic_write(out_dir / "per_image.csv", write_csv)
    atomic_write(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    text = (f"Benchmark `{summary['dataset']}`, method `{summary['method']}`, {summary['date']}, commit "
            f"{summary['commit']}. Metric definitions: `exiflang.eval.metrics`.\n\n"
            + markdown_table([(summary["method"], summary)]))
    overlap = summary.get("camera_overlap")
    if overlap:
        line = camera_overlap_line(overlap)
        text += f"\n{line[0].upper() + line[1:]}.\n"
        if overlap.get("status") == STATUS_OVERLAP:
            text += ("\n**Warning: these numbers measure memory, not generalisation** (the model trained on photos "
                     "from these cameras).\n")
    atomic_write(out_dir / "summary.md", lambda tmp: tmp.write_text(text))


__all__ = ["BenchError", "MethodError", "Analysis", "EmbeddingMethod", "NoiseMethod", "GridMethod", "DQMethod",
           "METHODS", "MethodSpec", "FusionMethod", "MethodOptions", "build_method", "call_analyse",
           "random_weights_model", "run_bench", "summarise", "markdown_table", "sample_stem",
           "dataset_cameras", "camera_overlap", "camera_overlap_line", "camera_overlap_warning"]
