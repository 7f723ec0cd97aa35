"""The method registry: "analyse one image with method M", shared by `exiflang bench`, `exiflang detect` and
`exiflang batch`.

A method is any object with ``method_id``, ``settings()`` and ``analyse(image, path=None) -> Analysis``
(`exiflang.eval.analysis`); ``path`` is the image file (methods that read the file itself, such as ``dq``, use
it). `build_method(name, ...)` builds one of `METHODS` (``exiflang``, ``random``, ``noise``, ``grid``, ``dq``,
``fusion``); `analyse_file(method, path)` decodes a file and runs it. The methods themselves live in
`exiflang.eval.learned` and `exiflang.eval.classical`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .analysis import (Analysis, BenchError, FileAnalysis, Method, MethodError, analyse_file, call_analyse,
                       input_sha256, jsonable)
from .classical import DQMethod, GridMethod, NoiseMethod
from .learned import EmbeddingMethod, FusionMethod, random_weights_model


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
    precision: str = "float32"  # the learned encoder's arithmetic (forensics.grid.PRECISIONS)


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
                         percentile=o.percentile, precision=o.precision)


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


# What `exiflang detect` and `exiflang batch` run unless told otherwise, and the patch densities the shipped
# verdicts were calibrated at: the learned map's calibration.json at 30 per side (the paper's density), the
# fusion's per-band calibrations at 15 (forensics/fusion_rule.json records it; a test checks the two agree).
DEFAULT_METHOD = "fusion"
LEARNED_PER_SIDE = 30
FUSION_PER_SIDE = 15


def default_per_side(method: str) -> int:
    """The patch density a method's verdict was calibrated at (the fusion's rule file records its own)."""
    if method == "fusion":
        from ..forensics.fusion_bands import ConditionalFusion

        return ConditionalFusion.load().per_side or LEARNED_PER_SIDE
    return LEARNED_PER_SIDE


def build_method(method: str, model: str = "default", cache_dir: Path | None = None, device: str = "cpu",
                 per_side: int = 30, batch_size: int = 64, iters: int = 5, percentile: float = 10.0,
                 seed: int = 0, precision: str = "float32") -> Any:
    """A Method by name (see `METHODS`): 'exiflang', 'random', 'noise', 'grid', 'dq' or 'fusion'."""
    spec = METHODS.get(method)
    if spec is None:
        raise BenchError(f"unknown method {method!r} (choose {', '.join(METHODS)})")
    missing = [m for m in spec.requires if not _module_available(m)]
    if missing:
        raise BenchError(f"method {method!r} needs {', '.join(missing)}, which this installation does not have")
    return spec.build(MethodOptions(model, cache_dir, device, per_side, batch_size, iters, percentile, seed,
                                    precision))


def settings_digest(method_name: str, method: Any) -> str:
    """A short hash of everything that changes a result: the method, its settings (model id, patches per side,
    seed through the random model's id, fusion rule, ...) and the exiflang version. `exiflang detect` and
    `exiflang batch` key their skip of finished work on it (with the file's content hash)."""
    import hashlib
    import json

    from .. import __version__

    blob = json.dumps({"method": method_name, "settings": jsonable(method.settings()), "exiflang": __version__},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


__all__ = ["settings_digest", "METHODS", "MethodOptions", "MethodSpec", "build_method", "analyse_file", "call_analyse", "jsonable", "input_sha256",
           "Analysis", "FileAnalysis", "Method", "MethodError", "BenchError", "EmbeddingMethod", "FusionMethod",
           "NoiseMethod", "GridMethod", "DQMethod", "random_weights_model"]
