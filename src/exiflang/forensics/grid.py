"""The dense patch grid over an image, and its batched embedding with an image encoder.

Grid (the paper's): square patches of side P (the model's patch size), stride
``max(1, (max(H, W) - P) // per_side)`` with ``per_side = 30``, top-left corners at
``range(0, H - P + 1, stride)`` x ``range(0, W - P + 1, stride)``.

Cells: the consistency map lives on a finer grid of *cells*, squares of side ``stride``. A patch
at grid index (i, j) covers the ``spread x spread`` cells (i .. i+spread-1, j .. j+spread-1), with
``spread = max(1, P // stride)``; there are ``gy + spread - 1`` rows of cells. A pixel (y, x)
belongs to cell ``(min(y // stride, rows-1), min(x // stride, cols-1))``, so the right/bottom
remainder that no patch covers joins the last cell.

JPEG-aligned grid (models whose config says ``grid_aligned``, i.e. that read the 8x8 block phase): the stride
is rounded to a multiple of 8 and the first corner sits on the image's own JPEG grid origin (``origin``, found
by `jpeg_grid.grid_origin`), so every patch of the untouched background has block phase (0, 0), as the model's
grid-aligned training crops had, and a paste that kept another grid stands out. Pixels above/left of the origin
join the first row/column of cells.

Small-image policy: an image with a side shorter than P is refused with `ForensicsError`
(reflect-padding would invent content whose traces are copies of real ones, and one patch has
nothing to be inconsistent with). The grid must hold at least two patches.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..errors import ExiflangError

if TYPE_CHECKING:
    import torch

DEFAULT_PER_SIDE = 30


class ForensicsError(ExiflangError):
    """An image cannot be analysed (too small, bad array, ...); the message names the cause."""


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
    grid: PatchGrid

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


def make_grid(height: int, width: int, patch: int, per_side: int = DEFAULT_PER_SIDE,
              origin: tuple[int, int] | None = None) -> PatchGrid:
    """Lay the paper's patch grid over an HxW image (JPEG-aligned from `origin` when given); ForensicsError when
    the image is too small."""
    if height < patch or width < patch:
        raise ForensicsError(
            f"image is {width}x{height} pixels, smaller than the model's {patch}x{patch} patch; "
            f"at least {patch}x{patch} is needed"
        )
    stride = max(1, (max(height, width) - patch) // max(1, per_side))
    oy, ox = 0, 0
    if origin is not None:
        stride = max(8, int(round(stride / 8)) * 8)
        oy, ox = int(origin[0]) % 8, int(origin[1]) % 8
        if height - oy < patch:
            oy = 0
        if width - ox < patch:
            ox = 0
    gy = (height - oy - patch) // stride + 1
    gx = (width - ox - patch) // stride + 1
    if gy * gx < 2:
        raise ForensicsError(
            f"image is {width}x{height} pixels: only one {patch}x{patch} patch fits, nothing to compare it with"
        )
    return PatchGrid(height, width, patch, stride, gy, gx, (oy, ox))


def model_grid(image: np.ndarray, model, per_side: int = DEFAULT_PER_SIDE) -> PatchGrid:
    """The patch grid a model wants on this image: JPEG-aligned for phase-aware models, the paper's otherwise."""
    patch = int(model.patch_size)
    origin = None
    if getattr(getattr(model, "config", None), "grid_aligned", False):
        from .jpeg_grid import ORIGIN_SAMPLE_PIXELS, grid_origin

        origin = grid_origin(image, ORIGIN_SAMPLE_PIXELS) or (0, 0)
    return make_grid(image.shape[0], image.shape[1], patch, per_side, origin)


def iter_patch_batches(image: np.ndarray, grid: PatchGrid, batch_size: int) -> Iterator["torch.Tensor"]:
    """Yield float32 tensors [B, 3, P, P] in [0, 1] of the grid's patches, row-major."""
    import torch

    import warnings

    oy, ox = grid.origin
    with warnings.catch_warnings():
        # Arrays from np.asarray(PIL image) are read-only; torch only warns about that, and nothing here writes
        # into the view: copying the decoded photo instead would double its memory (95 MP: +285 MB).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[:, oy:, ox:]  # uint8 view, no copy
    # unfold gives a [3, gy, gx, P, P] view whose origins are exactly range(0, H-P+1, stride).
    windows = chw.unfold(1, grid.patch, grid.stride).unfold(2, grid.patch, grid.stride)
    windows = windows[:, : grid.gy, : grid.gx].reshape(3, grid.n_patches, grid.patch, grid.patch)
    for start in range(0, grid.n_patches, batch_size):
        batch = windows[:, start : start + batch_size].permute(1, 0, 2, 3)
        yield batch.float().div_(255.0)


def embed_patches(
    image: np.ndarray,
    model,
    per_side: int = DEFAULT_PER_SIDE,
    batch_size: int = 64,
    channels_last: bool = True,
    grid: PatchGrid | None = None,
) -> tuple[np.ndarray, PatchGrid]:
    """Embed every grid patch of an HxWx3 uint8 image with ``model.encode_image``: L2-normalised [N, D] float32."""
    import torch

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ForensicsError(f"expected an HxWx3 uint8 array, got {image.dtype} {image.shape}")
    grid = grid or model_grid(image, model, per_side)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    chunks = []
    with torch.inference_mode():
        for batch in iter_patch_batches(image, grid, batch_size):
            batch = batch.to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            emb = model.encode_image(batch).float()
            chunks.append(torch.nn.functional.normalize(emb, dim=1).cpu())
    return torch.cat(chunks).numpy(), grid
