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

Small-image policy (nothing is padded: reflect-padding would invent content whose traces are copies of real
ones, and one patch has nothing to be inconsistent with): an image is refused with
`exiflang.imageio.ImageTooSmallError` ("too small: 10x10000 px, the smallest side must be at least P px") when

* a side is shorter than P (128 px for the built-in model; a JPEG-aligned grid's origin search also needs
  `jpeg_grid.MIN_SIDE` = 16 px, which every patch size in use exceeds), or
* the grid holds a single patch: the longer side must reach P + stride, i.e. P + 1 px (P + 8 px, up to P + 15 px
  with the grid origin's offset, on a JPEG-aligned grid), or a little more where the finest stride would give
  more than `MAX_CELLS` cells (130 x 128 px for P = 128 at a 1 px stride would be 16,640 cells).

Fine grids: ``per_side`` larger than the image allows would ask for a stride below 1 px (below 8 px on a
JPEG-aligned grid), or for more than `MAX_CELLS` cells; the stride stops at the finest one allowed instead
(`grid_stride`), and `per_side_note` words the cap for the report.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..imageio import ImageTooSmallError, check_min_side
from .cells import PatchGrid
from .errors import ForensicsError

if TYPE_CHECKING:
    import torch

DEFAULT_PER_SIDE = 30
# Cells a grid may have (`grid_stride`): the consistency maths holds a few cells x cells float64 arrays, about
# 40 bytes x cells^2 at its peak (0.6 GB and seconds at 4096 cells; every pixel of a 158 x 158 image as a cell,
# 25,000 cells, would need 24 GB). The built-in model at the default per_side has at most 3,600 cells on any image.
MAX_CELLS = 4096


def make_grid(height: int, width: int, patch: int, per_side: int = DEFAULT_PER_SIDE,
              origin: tuple[int, int] | None = None) -> PatchGrid:
    """Lay the paper's patch grid over an HxW image (JPEG-aligned from `origin` when given); ImageTooSmallError
    when the image is too small (see the module's small-image policy)."""
    check_min_side(height, width, patch, f"one {patch}x{patch} model patch")
    stride, _ = grid_stride(height, width, patch, per_side, aligned=origin is not None)
    oy, ox = 0, 0
    if origin is not None:
        oy, ox = int(origin[0]) % 8, int(origin[1]) % 8
        if height - oy < patch:
            oy = 0
        if width - ox < patch:
            ox = 0
    gy = (height - oy - patch) // stride + 1
    gx = (width - ox - patch) // stride + 1
    if gy * gx < 2:  # one patch has nothing to compare with
        raise ImageTooSmallError(f"too small: {width}x{height} px, the longer side must hold two {patch}x{patch} "
                                 f"model patches {stride} px apart")
    return PatchGrid(height, width, patch, stride, gy, gx, (oy, ox))


def cell_count(height: int, width: int, patch: int, stride: int) -> int:
    """How many cells a grid of this stride has on an HxW image (at origin (0, 0); an offset origin has no more)."""
    spread = max(1, patch // stride)
    return ((height - patch) // stride + spread) * ((width - patch) // stride + spread)


def grid_stride(height: int, width: int, patch: int, per_side: int, aligned: bool = False) -> tuple[int, bool]:
    """The grid's stride, and whether it is coarser than ``per_side`` asked (capped).

    The stride is never finer than 1 px (one 8 px JPEG block on a JPEG-aligned grid, whose stride is a multiple
    of 8), nor than the finest one with at most `MAX_CELLS` cells: the consistency maths holds a few
    cells x cells arrays, so a small image at a 1 px stride (every pixel a cell) would need gigabytes.
    """
    step = 8 if aligned else 1
    wanted = (max(height, width) - patch) // max(1, per_side)
    if aligned:
        wanted = int(round(wanted / 8)) * 8
    stride = max(step, wanted)
    while cell_count(height, width, patch, stride) > MAX_CELLS:
        stride += step
    return stride, stride != wanted


def per_side_note(grid: PatchGrid, per_side: int, aligned: bool = False) -> str | None:
    """A note for the report when the grid is coarser than ``per_side`` asked (`grid_stride`), so the longer side
    holds fewer patches than asked; None otherwise."""
    _, capped = grid_stride(grid.height, grid.width, grid.patch, per_side, aligned)
    if not capped:
        return None
    finest = 8 if aligned else 1
    return (f"per_side {per_side} asks for a finer grid than this {grid.width}x{grid.height} image allows; the "
            f"stride is {grid.stride} px, {max(grid.gy, grid.gx)} patches along the longer side (a stride is at "
            f"least {finest} px, and a grid has at most {MAX_CELLS} cells)")


def is_grid_aligned(model) -> bool:
    """Whether the model reads the 8x8 JPEG block phase, and so wants a JPEG-aligned grid (its config says so)."""
    return bool(getattr(getattr(model, "config", None), "grid_aligned", False))


def model_grid(image: np.ndarray, model, per_side: int = DEFAULT_PER_SIDE,
               votes: np.ndarray | None = None) -> PatchGrid:
    """The patch grid a model wants on this image: JPEG-aligned for phase-aware models, the paper's otherwise
    (``votes``: the image's `jpeg_grid.votes_by_band`, when the caller has counted them already)."""
    patch = int(model.patch_size)
    origin = None
    check_min_side(image.shape[0], image.shape[1], patch, f"one {patch}x{patch} model patch")  # before any search
    if is_grid_aligned(model):
        from .jpeg_grid import ORIGIN_SAMPLE_PIXELS, grid_origin, origin_from_votes

        found = (grid_origin(image, ORIGIN_SAMPLE_PIXELS) if votes is None
                 else origin_from_votes(votes, ORIGIN_SAMPLE_PIXELS))
        origin = found or (0, 0)
    return make_grid(image.shape[0], image.shape[1], patch, per_side, origin)


# Encoder precisions of `embed_patches`: float32 (exact, the default) or bfloat16 autocast (faster, maps measured).
PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: str) -> None:
    """A one-line ForensicsError for a precision outside `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ForensicsError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")


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
    progress=None,
    precision: str = "float32",
) -> tuple[np.ndarray, PatchGrid]:
    """Embed every grid patch of an HxWx3 uint8 image with ``model.encode_image``: L2-normalised [N, D] float32.
    ``progress(done, total)``, when given, is called after each batch (patches embedded so far, all patches).
    ``precision`` "bfloat16" runs the encoder under bfloat16 autocast (the stem and the JPEG-zero features stay
    float32): faster where the CPU has bfloat16 instructions, maps within `benchmarks/precision_accuracy.py`'s
    table of float32's, not equal to them."""
    import torch

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ForensicsError(f"expected an HxWx3 uint8 array, got {image.dtype} {image.shape}")
    check_precision(precision)
    grid = grid or model_grid(image, model, per_side)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    chunks = []
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bfloat16"):
        for batch in iter_patch_batches(image, grid, batch_size):
            batch = batch.to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            emb = model.encode_image(batch).float()
            chunks.append(torch.nn.functional.normalize(emb, dim=1).cpu())
            if progress is not None:
                progress(sum(len(c) for c in chunks), grid.n_patches)
    return torch.cat(chunks).numpy(), grid
