"""Image-side-only loading of a saved model: detection never needs the text tower.

`load_model()` also builds the text encoder (for the default model, the packaged MiniLM: seconds
of start-up and ~90 MB of memory). Detection only calls `encode_image`, so this loads the ResNet
(`image.*` tensors) and the CLIP normalisation from the same weights folder. Any surprise in the
folder (a config this does not understand, missing tensors) falls back to the full `load_model`.
"""
from __future__ import annotations

import json

import torch


class ImageEncoder(torch.nn.Module):
    """The image tower of an ExifModel: ``encode_image(x in [0,1]) -> [B, D]``, plus ``patch_size``/``model_id``."""

    def __init__(self, resnet: torch.nn.Module, config: dict, mean, std) -> None:
        super().__init__()
        self.image = resnet
        self.config = config
        self.embed_dim = int(config["embed_dim"])
        self.patch_size = int(config.get("patch_size", 128))
        self.model_id = str(config.get("model_id", config.get("name", "custom")))
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings [B, D] (unnormalised) from float [B, 3, H, W] RGB in [0, 1]."""
        x = x.to(self.pixel_mean.device, torch.float32)
        x = ((x - self.pixel_mean) / self.pixel_std).contiguous(memory_format=torch.channels_last)
        return self.image(x)


def load_image_encoder(name_or_path: str, device: str = "cpu") -> torch.nn.Module:
    """Load only the image tower of a saved model (built-in name or folder); fall back to the full model."""
    from safetensors.torch import load_file

    from exiflang.models import CLIP_MEAN, CLIP_STD, load_model
    from exiflang.models.factory import CONFIG_FILE, WEIGHTS_FILE, read_calibration, resolve_weights_dir
    from exiflang.models.resnet import build_resnet

    folder = resolve_weights_dir(name_or_path)  # raises ModelError with a clear message
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        image_cfg = dict(config["image"])
        project = image_cfg.pop("projection", True)
        resnet = build_resnet(image_cfg, int(config["embed_dim"]) if project else None)
        state = load_file(str(folder / WEIGHTS_FILE))
        image_state = {k[len("image."):]: v for k, v in state.items() if k.startswith("image.")}
        resnet.load_state_dict(image_state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError, OSError):
        return load_model(name_or_path, device=device)  # layout changed: the full loader knows best
    encoder = ImageEncoder(resnet, config, CLIP_MEAN, CLIP_STD)
    encoder.calibration = read_calibration(folder)  # the score's calibration.json, when the folder ships one
    return encoder.to(device).eval()
