"""Classical, training-free baseline: aligned double-JPEG-quantisation (DQ) likelihood map.

The histogram of each low-frequency DCT coefficient of a re-saved JPEG is periodic where the content was
quantised twice on the same grid; a pasted region, quantised once, is not. A mixture fit per frequency
estimates the primary step, and every 8x8 block gets the posterior probability of being singly
compressed (high = likely spliced). The implementation lives once in `exiflang.forensics.dq`; this
module re-exports it for the benchmark harness.
"""
from __future__ import annotations

from ...forensics.dq import METHOD_ID, DQAnalysis, dq_analysis, dq_analysis_file

__all__ = ["METHOD_ID", "DQAnalysis", "dq_analysis", "dq_analysis_file"]
