"""The joint model: a ResNet on full-resolution patches and a transformer on EXIF text, in one embedding space."""
from __future__ import annotations

import math
import torch
from torch import nn

from .config import ModelConfig, ModelError
from .resnet import CLIP_MEAN, CLIP_STD, build_resnet
from .text import TextEncoder, TextTokenizer

# The model normalises its own input with CLIP's RGB statistics (CLIP_MEAN, CLIP_STD), so callers pass [0,1] RGB.


class ExifModel(nn.Module):
    """Image encoder (`image`), text encoder (`text`) and the contrastive temperature.

    Attributes: `patch_size`, `embed_dim`, `model_id`, `config` (the full JSON config, with `text_format`),
    `logit_scale` (the multiplier applied to cosine similarities, e.g. 100.0; stored as `log_logit_scale`).
    """

    def __init__(self, config: ModelConfig, tokenizer: TextTokenizer | None, pretrained_text: bool = True,
                 image_only: bool = False) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.embed_dim
        self.patch_size = config.patch_size
        self.model_id = config.model_id or f"{config.name}-untrained"
        self.image = build_resnet(config.image.resnet_options(), self.embed_dim if config.image.projection else None)
        if self.image.out_dim != self.embed_dim:
            raise ValueError(f"image output width {self.image.out_dim} != embed_dim {self.embed_dim}")
        # channels_last weights match the channels_last input of encode_image (faster on CPU, and gradients then
        # have the parameters' own layout, as DDP's buckets expect).
        self.image.to(memory_format=torch.channels_last)
        # Detection only calls encode_image: image-only models skip the text tower (seconds and ~90 MB for MiniLM).
        self.text = None if image_only else TextEncoder(config.text.as_dict(), self.embed_dim, tokenizer,
                                                        pretrained=pretrained_text)
        log_scale = torch.tensor(math.log(config.logit_scale.init))
        if config.logit_scale.learned:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)
        self.max_logit_scale = config.logit_scale.max
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def logit_scale(self) -> torch.Tensor:
        """Multiplier of cosine similarities in the loss (exp of the stored log, clamped as in CLIP)."""
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.pixel_mean.device

    def normalize_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP normalisation of [0,1] RGB."""
        return (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings [B, D] (unnormalised) from x: float [B,3,H,W], RGB in [0,1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode_image expects [B,3,H,W] RGB in [0,1], got shape {tuple(x.shape)}")
        x = x.to(self.pixel_mean.device, torch.float32)
        # channels_last is markedly faster for these convolutions on CPU (oneDNN).
        x = self.normalize_pixels(x).contiguous(memory_format=torch.channels_last)
        return self.image(x)

    def _text_tower(self) -> TextEncoder:
        """The text encoder; a one-line error for a model loaded image-only."""
        if self.text is None:
            raise ModelError(f"model {self.model_id} was loaded image-only (load_model(..., image_only=False) reads text)")
        return self.text

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask for a list of EXIF texts (on the model's device)."""
        batch = self._text_tower().tokenizer(texts)
        return {k: v.to(self.device) for k, v in batch.items()}

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text embeddings [B, D] (unnormalised) from token ids."""
        return self._text_tower()(input_ids.to(self.device), attention_mask.to(self.device))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings [B, D] (unnormalised) from EXIF texts."""
        batch = self.tokenize(texts)
        return self.encode_tokens(batch["input_ids"], batch["attention_mask"])

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(image embeddings, text embeddings), both unnormalised."""
        return self.encode_image(images), self.encode_tokens(input_ids, attention_mask)
