"""Cross-modal models: ResNet patch encoder + EXIF-text transformer, built from named configs.

    create_model("tiny")           -> untrained ExifModel from models/configs/tiny.json
    load_model("default")          -> the built-in trained model (eval mode; image_only=True for detection)
    save_model(model, out_dir)     -> model.safetensors + config.json (+ tokenizer.json)
"""
from __future__ import annotations

from .config import ModelConfig, ModelError
from .factory import available_configs, create_model, load_model, save_model
from .joint import CLIP_MEAN, CLIP_STD, ExifModel
from .loss import clip_loss, image_only_loss

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ExifModel",
    "ModelConfig",
    "ModelError",
    "available_configs",
    "clip_loss",
    "create_model",
    "image_only_loss",
    "load_model",
    "save_model",
]
