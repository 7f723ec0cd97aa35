"""Helpers for the forensics tests (no tests here): a tiny hand-made encoder with a real forensic signal."""
from __future__ import annotations

import torch
import torch.nn.functional as F


class NoiseStatsModel(torch.nn.Module):
    """Stands in for an ExifModel: embeds a patch by its noise floor (log median absolute high-pass residuals).

    Deterministic and untrained, yet it separates a noisy demosaiced JPEG-95 region from a resampled
    JPEG-70 one, so the whole detection pipeline can be checked on real pixels without trained weights.
    """

    patch_size = 32
    embed_dim = 6
    model_id = "test-noise-stats"

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, P, P] in [0, 1] -> [B, 6] noise statistics (centred so cosine similarity is informative)."""
        smooth = x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        second = x[..., :, 2:] - 2 * x[..., :, 1:-1] + x[..., :, :-2]
        # Median absolute residuals: the noise floor, robust to the few edge pixels in a patch.
        feats = torch.cat(
            [torch.log(r.abs().flatten(2).median(2).values + 1e-3) for r in (smooth, second)], 1
        )
        return feats + 5.5 + self.anchor  # centre the logs near 0 so cosine similarity sees the level
