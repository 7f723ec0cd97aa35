"""A stand-in for the official EXIF-as-language checkpoint: same module tree, key names and shapes, random weights.

Written independently of exiflang's own model code so that the conversion tests compare exiflang against a
separate statement of the official forward pass: a torchvision-layout ResNet-50 (fc 2048 -> 768) under
``model.visual``, a transformers ``DistilBertModel(DistilBertConfig())`` under ``model.transformer``, the unused
leftovers of the CLIP ViT-B/32 text tower, ``model.logit_scale`` = log 100 and a top-level ``sink_temp``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class RefBottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 convolution)."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class RefResNet50(nn.Module):
    """torchvision.models.resnet50 with `fc` replaced by Linear(2048, 768), as the official wrapper does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(RefBottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = 4 * width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 768)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] normalised pixels -> [B,768]."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class RefClipLeftovers(nn.Module):
    """The CLIP ViT-B/32 model after the wrapper deleted its towers: leftovers + the new `visual`/`transformer`."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import DistilBertConfig, DistilBertModel

        self.visual = RefResNet50()
        self.transformer = DistilBertModel(DistilBertConfig())
        self.token_embedding = nn.Embedding(49408, 512)
        self.positional_embedding = nn.Parameter(torch.randn(77, 512) * 0.01)
        self.ln_final = nn.LayerNorm(512)
        self.text_projection = nn.Parameter(torch.randn(512, 512) * 0.02)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))


class RefOfficialWrapper(nn.Module):
    """The official EXIFNet wrapper: `model` (the CLIP leftovers with new towers) and an unused `sink_temp`."""

    def __init__(self) -> None:
        super().__init__()
        self.model = RefClipLeftovers()
        self.sink_temp = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def encode_image(self, x01: torch.Tensor) -> torch.Tensor:
        """The official inference path for pixels in [0,1]: CLIP Normalize, then the ResNet-50."""
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        return self.model.visual((x01 - mean) / std)

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The official text path: masked mean of DistilBERT's last hidden state (768-d, not normalised)."""
        hidden = self.model.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)


def build_reference(seed: int = 0) -> RefOfficialWrapper:
    """A reference wrapper with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    ref = RefOfficialWrapper()
    with torch.no_grad():
        for module in ref.model.visual.modules():
            if isinstance(module, nn.BatchNorm2d):
                # Non-trivial statistics and affine terms, so a mis-mapped BN buffer changes the output.
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.0)
                module.bias.normal_(0.0, 0.1)
                module.num_batches_tracked.fill_(1000)
    return ref.eval()


def save_like_official(ref: RefOfficialWrapper, path: Path, epoch: int = 74) -> dict:
    """torch.save the checkpoint dict exactly as the official training script writes it."""
    params = [p for p in ref.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100, eta_min=1e-7)
    checkpoint = {
        "epoch": epoch,
        "model": ref.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_sched": scheduler.state_dict(),
    }
    torch.save(checkpoint, path)
    return checkpoint
