"""A ResNet family in plain PyTorch whose parameter names match torchvision's.

Names follow torchvision exactly (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`, ...), so a
torchvision-format state dict loads with `load_state_dict`. Beyond torchvision, the widths, the stem (kernel,
stride, max-pool) and the output dimension are configurable, which gives small CPU-friendly variants; such
changes alter tensor shapes, never names.
"""
from __future__ import annotations

from typing import Any

import math

import torch
from torch import nn

# CLIP's RGB statistics: the image tower's input normalisation (the joint model applies it; `JpegZeros` undoes it).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Standard depths: name -> (block kind, blocks per stage).
STANDARD_DEPTHS: dict[str, tuple[str, list[int]]] = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projected) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, as torchvision's v1.5) -> 1x1 with 4x expansion."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def dct_basis() -> torch.Tensor:
    """The 64 orthonormal 8x8 DCT-II basis images (JPEG's transform) as conv filters [64, 1, 8, 8], zig-zag-free
    (row-major frequency order)."""
    k = torch.arange(8, dtype=torch.float64)
    c = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    c[0] /= math.sqrt(2)
    return torch.einsum("ui,vj->uvij", c, c).reshape(64, 1, 8, 8).float()


class JpegZeros(nn.Module):
    """Fixed (untrained) JPEG-grid features: which DCT coefficients of each 8x8 block are zero.

    JPEG quantises the DCT of the 8x8 blocks of its grid, so a decoded block on that grid has many coefficients
    that round to exactly zero; a block straddling the grid has few (the cue of the ZERO grid detector). This
    sharp, non-linear cue is hard for a convolution to learn from normalised pixels, so it is computed here: the
    luminance of the [0, 255] pixels (rounded, as a decoder's Y), minus 128, its block DCT at the patch's own
    8x8 grid, and one channel per frequency that is 1 where |coefficient| < 0.5. Which frequencies are zero
    also tells the last compression's quality. Input: CLIP-normalised RGB (undone here); output [B, 64, H/8, W/8].
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", dct_basis(), persistent=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero indicators [B, 64, H/8, W/8] (float 0/1) of normalised RGB x [B, 3, H, W]."""
        with torch.autocast(x.device.type, enabled=False):  # bfloat16 would blur the |c| < 0.5 test
            pixels = (x.float() * self.std + self.mean) * 255.0
            y = torch.round((pixels * self.luma).sum(1, keepdim=True)) - 128.0
            coef = nn.functional.conv2d(y, self.basis, stride=8)
        return (coef.abs() < 0.5).to(x.dtype).contiguous(memory_format=torch.channels_last)


class ResNet(nn.Module):
    """ResNet trunk + global average pool + `fc` (the projection to the joint space, or identity)."""

    def __init__(
        self,
        block: str = "basic",
        layers: list[int] | tuple[int, ...] = (2, 2, 2, 2),
        widths: list[int] | tuple[int, ...] = (64, 128, 256, 512),
        stem_width: int | None = None,
        stem_kernel: int = 7,
        stem_stride: int = 2,
        stem_padding: int | None = None,
        maxpool: bool = True,
        out_dim: int | None = None,
        zero_init_residual: bool = True,
        jpeg_zeros: bool = False,
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown ResNet block {block!r}; expected one of {sorted(BLOCKS)}")
        if len(layers) != len(widths) or not layers:
            raise ValueError(f"ResNet needs one width per stage: layers={list(layers)} widths={list(widths)}")
        block_cls = BLOCKS[block]
        stem_width = stem_width or widths[0]
        # stem_kernel = stem_stride = 8 with padding 0 is a space-to-depth-by-8 stem: each output position reads
        # exactly one 8x8 block, so where a JPEG block boundary falls inside the window stays explicit.
        padding = stem_kernel // 2 if stem_padding is None else stem_padding
        self.conv1 = nn.Conv2d(3, stem_width, stem_kernel, stem_stride, padding=padding, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        # Identity keeps the module name free of parameters, so names never shift.
        self.maxpool = nn.MaxPool2d(3, 2, padding=1) if maxpool else nn.Identity()
        # Fixed JPEG-zero features beside the learned stem (needs an 8x8, stride-8 stem: same resolution).
        if jpeg_zeros and (stem_stride != 8 or maxpool):
            raise ValueError("jpeg_zeros needs a stride-8 stem without max-pool (one feature per 8x8 block)")
        self.jpeg_zeros = JpegZeros() if jpeg_zeros else None
        cin = stem_width + (64 if jpeg_zeros else 0)
        for i, (n_blocks, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            stage, cin = self._make_stage(block_cls, cin, width, n_blocks, stride)
            setattr(self, f"layer{i + 1}", stage)
        self.n_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, out_dim) if out_dim else nn.Identity()
        self.out_dim = out_dim or cin
        self._init_weights(zero_init_residual)

    @staticmethod
    def _make_stage(
        block_cls: type[nn.Module], cin: int, width: int, n_blocks: int, stride: int
    ) -> tuple[nn.Sequential, int]:
        """Build one stage; the first block changes resolution/width through a 1x1 `downsample`."""
        cout = width * block_cls.expansion
        downsample = None
        if stride != 1 or cin != cout:
            downsample = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
        blocks = [block_cls(cin, width, stride, downsample)]
        blocks += [block_cls(cout, width) for _ in range(n_blocks - 1)]
        return nn.Sequential(*blocks), cout

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He init for convolutions; last BN of each block at zero so blocks start as identities."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features [B, feature_dim] (before `fc`)."""
        # The stem reads pixels in float32 even under bfloat16 autocast: one grey level of camera noise (~0.015
        # after normalisation) is about bfloat16's step at these magnitudes, so a bfloat16 stem would blur the very
        # traces the model reads. The trunk after it tolerates bfloat16 (benchmarks/precision_accuracy.py).
        with torch.autocast(x.device.type, enabled=False):
            stem = self.maxpool(self.relu(self.bn1(self.conv1(x.float()))))
        x = stem if self.jpeg_zeros is None else torch.cat([stem, self.jpeg_zeros(x)], 1)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, out_dim]."""
        return self.fc(self.forward_features(x))


def build_resnet(cfg: dict[str, Any], out_dim: int | None) -> ResNet:
    """Build a ResNet from an `image` config section (`depth` names a standard layout; fields override it)."""
    cfg = dict(cfg)
    depth = cfg.pop("depth", None)
    if depth is not None:
        if depth not in STANDARD_DEPTHS:
            raise ValueError(f"unknown ResNet depth {depth!r}; expected one of {sorted(STANDARD_DEPTHS)}")
        block, layers = STANDARD_DEPTHS[depth]
        cfg.setdefault("block", block)
        cfg.setdefault("layers", layers)
    cfg.pop("arch", None)
    cfg.pop("norm", None)
    return ResNet(out_dim=out_dim, **cfg)
