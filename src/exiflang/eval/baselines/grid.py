"""Classical, training-free baseline: JPEG 8x8 grid-origin inconsistency (ZERO-style DCT-zero voting).

Every pixel votes for the JPEG grid origin whose 8x8 block around it has the most zero DCT coefficients;
a region whose votes consistently point to another origin than the image's dominant one was compressed
on a shifted grid, i.e. pasted. Regions are validated a contrario (binomial NFA). The implementation
lives once in `exiflang.forensics.jpeg_grid`; this module re-exports it for the benchmark harness.
"""
from __future__ import annotations

from ...forensics.jpeg_grid import METHOD_ID, GridAnalysis, grid_analysis, grid_origin

__all__ = ["METHOD_ID", "GridAnalysis", "grid_analysis", "grid_origin"]
