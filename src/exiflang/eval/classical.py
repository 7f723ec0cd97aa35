"""The training-free methods of the registry: noise-level inconsistency, JPEG block grid, double quantisation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..imageio import starts_as_jpeg
from .analysis import Analysis, MethodError, jsonable


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


def _classical_analysis(result: Any, image: np.ndarray, method_id: str, **extra: Any) -> Analysis:
    """Analysis from a GridAnalysis/DQAnalysis (cell_map, score, origin), checked; the map stays per block (its
    pixels are 4 bytes each: 96 MB at 24 MP, and the fusion reads it a band of rows at a time)."""
    from ..forensics import CellMap

    heat = result.cell_map
    if heat.shape[:2] != image.shape[:2]:
        raise MethodError(f"{method_id} returned a {heat.shape} map for a {image.shape[:2]} image")
    cells = np.clip(np.nan_to_num(np.asarray(heat.cells, dtype=np.float32), nan=0.0), 0.0, 1.0)
    details = {"origin": jsonable(getattr(result, "origin", None)), **extra}
    return Analysis(CellMap(cells, heat.grid), float(result.score), extra=details)


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

    def analyse(self, image: np.ndarray, path: Path | None = None, votes: np.ndarray | None = None) -> Analysis:
        """Grid heatmap and score of the decoded pixels (``path`` is not used; ``votes``: their
        `jpeg_grid.votes_by_band` when counted already)."""
        from ..forensics.jpeg_grid import grid_analysis

        try:
            result = grid_analysis(image, votes)
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

    def analyse(self, image: np.ndarray, path: Path | None = None, votes: np.ndarray | None = None) -> Analysis:
        """DQ heatmap and score; from the file's coefficients when ``path`` is a JPEG (``votes``: the pixels'
        `jpeg_grid.votes_by_band` when counted already, for the grid of a pixel-domain analysis)."""
        from ..forensics.dq import dq_analysis, dq_analysis_file

        from_file = starts_as_jpeg(path)
        try:
            result = dq_analysis_file(path, image=image) if from_file else dq_analysis(image, votes)
        except ValueError as exc:
            raise MethodError(f"{self.method_id}: {exc}") from exc
        return _classical_analysis(result, image, self.method_id,
                                   input="jpeg-coefficients" if from_file else "decoded-pixels")

