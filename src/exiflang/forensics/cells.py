"""Maps held per cell: the geometry of a patch grid and its cell grid (`PatchGrid`), and a map kept per cell
or per pixel block and expanded only on demand (`CellMap`, `block_map`).

Below both the learned analysis (`forensics.grid`), whose consistency map is voted into a patch grid's cells,
and the classical detectors (`forensics.jpeg_grid`, `forensics.dq`), whose maps are decided per 8 px JPEG block:
at 24 MP a float32 pixel map is 96 MB, a map per 8 px block 1.5 MB.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PatchGrid:
    """Geometry of the patch grid and of the cell grid it votes into."""

    height: int
    width: int
    patch: int
    stride: int
    gy: int  # patch rows
    gx: int  # patch columns
    origin: tuple[int, int] = (0, 0)  # (y, x) of the first patch corner

    @property
    def spread(self) -> int:
        """How many cells one patch covers along each axis."""
        return max(1, self.patch // self.stride)

    @property
    def n_patches(self) -> int:
        """Number of patches in the grid."""
        return self.gy * self.gx

    @property
    def cell_shape(self) -> tuple[int, int]:
        """(rows, cols) of the cell grid."""
        return self.gy + self.spread - 1, self.gx + self.spread - 1

    def patch_origins(self) -> np.ndarray:
        """Top-left (y, x) pixel corner of every patch, row-major, shape [N, 2]."""
        ys = self.origin[0] + np.arange(self.gy) * self.stride
        xs = self.origin[1] + np.arange(self.gx) * self.stride
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def pixel_cells(self, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Cell row of every ``step``-th pixel row and cell column of every ``step``-th pixel column.

        With ``step`` > 1 the pixels sampled are the centres of the step x step blocks of a view that is ``step``
        times smaller (``height // step`` x ``width // step``, see `view_shape`).
        """
        rows, cols = self.cell_shape
        if step <= 1:
            ys, xs = np.arange(self.height), np.arange(self.width)
        else:
            h, w = self.view_shape(step)
            ys, xs = np.arange(h) * step + step // 2, np.arange(w) * step + step // 2
        iy = np.clip((ys - self.origin[0]) // self.stride, 0, rows - 1)
        ix = np.clip((xs - self.origin[1]) // self.stride, 0, cols - 1)
        return iy, ix

    def view_shape(self, step: int) -> tuple[int, int]:
        """(height, width) of the image reduced ``step`` times (whole step x step blocks; step 1: the image)."""
        if step <= 1:
            return self.height, self.width
        return max(1, self.height // step), max(1, self.width // step)

    def cells_to_pixels(self, cell_map: np.ndarray, step: int = 1) -> np.ndarray:
        """Expand a [rows, cols(, C)] cell map to full resolution [H, W(, C)] (each pixel takes its cell's value);
        with ``step`` > 1, to the ``step`` times smaller view of `view_shape` instead."""
        iy, ix = self.pixel_cells(step)
        return np.asarray(cell_map)[iy][:, ix]

    def to_dict(self) -> dict:
        """JSON-ready description (the stored fields plus spread and cell shape)."""
        out = asdict(self)
        out.update(spread=self.spread, cell_rows=self.cell_shape[0], cell_cols=self.cell_shape[1])
        return out


@dataclass(frozen=True)
class CellMap:
    """A map held per cell of a patch grid (what the analysis computes): small, exact, full resolution on demand.

    ``np.asarray(cell_map)`` and `full` give the [H, W] pixel map; `view` a ``step`` times smaller one (for
    pictures of large photos); `pixel_mean` the pixel-weighted mean without expanding anything.
    """

    cells: np.ndarray  # [rows, cols] (or [rows, cols, C])
    grid: PatchGrid  # a patch grid's cells, or pixel blocks (`block_map`)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the full-resolution map."""
        return (self.grid.height, self.grid.width) + tuple(self.cells.shape[2:])

    @property
    def dtype(self) -> np.dtype:
        """dtype of the map."""
        return self.cells.dtype

    def full(self) -> np.ndarray:
        """The map at full resolution [H, W(, C)]."""
        return self.grid.cells_to_pixels(self.cells)

    def view(self, step: int = 1) -> np.ndarray:
        """The map on the ``step`` times smaller view (`PatchGrid.view_shape`)."""
        return self.grid.cells_to_pixels(self.cells, step)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Full-resolution pixel rows y0:y1 of the map (a band: what a row-by-row consumer needs, not the map)."""
        iy, ix = self.grid.pixel_cells()
        return np.asarray(self.cells)[iy[y0:y1]][:, ix]

    def pixel_mean(self, values: np.ndarray | None = None) -> float:
        """Mean over all pixels of ``values`` (a [rows, cols] cell array; default: the map), weighted by cell area."""
        iy, ix = self.grid.pixel_cells()
        rows, cols = self.grid.cell_shape
        areas = np.outer(np.bincount(iy, minlength=rows), np.bincount(ix, minlength=cols))
        v = np.asarray(self.cells if values is None else values, dtype=np.float64)
        return float((v * areas).sum() / areas.sum())

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self.full()
        return full if dtype is None else full.astype(dtype, copy=False)


def block_map(cells: np.ndarray, height: int, width: int, block: int, origin: tuple[int, int] = (0, 0)) -> CellMap:
    """A map constant on ``block`` x ``block`` pixel blocks from ``origin`` (the classical detectors' 8 px JPEG
    blocks) as a `CellMap`: pixel (y, x) takes block (clip((y - oy) // block), clip((x - ox) // block)), so pixels
    before the origin join the first block and the remainder the last, as the detectors expand their blocks."""
    rows, cols = np.asarray(cells).shape[:2]
    return CellMap(cells, PatchGrid(height, width, block, block, rows, cols, (int(origin[0]), int(origin[1]))))


__all__ = ["CellMap", "PatchGrid", "block_map"]
