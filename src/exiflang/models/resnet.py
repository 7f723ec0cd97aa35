"""A ResNet family in plain PyTorch whose parameter names match torchvision's.

Names follow torchvision exactly (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`, ...), so a
torchvision-format state dict loads with `load_state_dict`. Beyond torchvision, the widths, the stem (kernel,
stride, max-pool) and the output dimension are configurable, which gives small CPU-friendly variants; such
changes alter tensor shapes, never names.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

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
        cin = stem_width
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
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
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
