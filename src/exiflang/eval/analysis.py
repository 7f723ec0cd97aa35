"""What a detection method returns for one image, the method protocol, and how the harness calls it.

Shared by the method registry (`exiflang.eval.methods`), the benchmark loop (`exiflang.eval.bench`) and the
batch runner (`exiflang.eval.batch`); it holds no method of its own.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ExiflangError


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

    @property
    def probability(self) -> float | None:
        """The calibrated probability of manipulation (None where the method gives none)."""
        return verdict_fields(self)["probability"]

    @property
    def verdict(self) -> str | None:
        """'likely authentic', 'inconclusive', 'likely manipulated', 'cannot judge', or None."""
        return verdict_fields(self)["verdict"]

    @property
    def verdict_reason(self) -> str | None:
        """Why 'cannot judge', or why 'inconclusive' where the learned map withheld 'likely authentic'."""
        return verdict_fields(self)["verdict_reason"]


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


VERDICT_FIELDS = ("probability", "verdict", "verdict_reason", "verdict_caveat")


def verdict_fields(analysis: Analysis) -> dict[str, Any]:
    """What the reader is told about one image: the learned method keeps it on its DetectionResult, the fusion in
    its extra details (its per-band calibration); None where a method gives none."""
    found = {k: getattr(analysis.result, k, None) for k in VERDICT_FIELDS}
    found.update({k: v for k, v in (analysis.extra or {}).items() if k in found and v is not None})
    return found


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


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of a method's detail (numpy scalars/arrays, tuples, dataclasses)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@dataclass
class FileAnalysis:
    """One image file through one method: the decoded pixels, their load info, the analysis and its seconds."""

    pixels: np.ndarray
    info: Any  # exiflang.imageio.ImageInfo (orientation, ...)
    analysis: Analysis
    seconds: float  # the analysis alone (decoding excluded)


def analyse_file(method: Any, path: Path, max_pixels: int | None = None) -> FileAnalysis:
    """Decode ``path`` (the one decoder, its pixel limits checked; ``max_pixels`` may lower them) and analyse it with
    ``method``; a map of another size than the image is a MethodError. Every project error (unreadable, too small,
    too large) propagates."""
    from ..imageio import load_rgb

    pixels, info = load_rgb(path) if max_pixels is None else load_rgb(path, max_pixels=max_pixels)
    t0 = time.perf_counter()
    analysis = call_analyse(method, pixels, Path(path))
    seconds = time.perf_counter() - t0
    if analysis.shape != pixels.shape[:2]:  # a learned map stays per cell: nothing is expanded to pixels here
        raise MethodError(f"{path}: method {getattr(method, 'method_id', method)} returned a {analysis.shape} map "
                          f"for a {pixels.shape[:2]} image")
    return FileAnalysis(pixels, info, analysis, seconds)


def input_sha256(path: Path) -> str | None:
    """The file's content hash (None when it cannot be read: the analysis then says why). `exiflang detect` records
    it in each report and `exiflang batch` in each row, to skip finished work on a re-run."""
    from ..imageio import file_sha256, regular_file_problem

    if regular_file_problem(path):  # a FIFO would block the read; the loader names the problem
        return None
    try:
        return file_sha256(path)
    except OSError:
        return None
