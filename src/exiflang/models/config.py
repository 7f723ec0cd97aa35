"""Typed model configs, parsed once from a config JSON; every default lives here and nowhere else.

The JSON layout is unchanged (a saved config.json still reads as before); `ModelConfig.from_dict` checks
the keys, types and bounds once, and `to_dict` writes it back. Keys a saved model carries beside the architecture
(`train`, `description`, `source`, ...) are kept verbatim in `ModelConfig.extra`.

A model folder is untrusted input: every architecture number has a bound (an unbounded width is a many-GB
allocation before any weight is read), the text backbone takes only the architecture keys listed in
`BACKBONE_KEYS` (nothing free-form ever reaches a third-party loader), and `model_id`, which becomes a cache
folder name, must be a plain slug.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ExiflangError

DEFAULT_PATCH_SIZE = 128  # the paper's full-resolution crop


class ModelError(ExiflangError):
    """A model config or weights folder is invalid; the message names the file and the cause."""


@dataclass(frozen=True)
class ImageTowerConfig:
    """The ResNet patch encoder (`image` section); `depth` names a standard layout that fields override."""

    arch: str = "resnet"
    depth: str | None = None
    block: str | None = None
    layers: tuple[int, ...] | None = None
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_width: int | None = None
    stem_kernel: int = 7
    stem_stride: int = 2
    stem_padding: int | None = None
    maxpool: bool = True
    projection: bool = True  # a trained fc to embed_dim; False keeps the trunk's own width
    jpeg_zeros: bool = False
    zero_init_residual: bool = True
    norm: str | None = None  # accepted for old configs; only batch norm exists

    def resnet_options(self) -> dict[str, Any]:
        """Keyword arguments of `build_resnet`'s config (only the fields that were set or differ)."""
        options = {k: v for k, v in asdict(self).items() if k not in ("arch", "projection", "norm") and v is not None}
        for key in ("layers", "widths"):
            if key in options:
                options[key] = list(options[key])
        return options


@dataclass(frozen=True)
class TextTowerConfig:
    """The EXIF-text transformer (`text` section)."""

    kind: str = "minilm"  # minilm (packaged pretrained), distilbert or scratch (built from backbone_config)
    tokenizer: str = "minilm"  # minilm's WordPiece vocabulary, or "trained" on the run's own texts
    max_length: int = 256
    projection: bool = True
    train_backbone: bool = True
    vocab_size: int = 4000  # for a trained tokenizer
    backbone_config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The section as the text module reads it."""
        return asdict(self)


@dataclass(frozen=True)
class LogitScaleConfig:
    """CLIP's temperature: the multiplier of cosine similarities, fixed or learned, clamped at `max`."""

    init: float = 100.0
    learned: bool = False
    max: float = 100.0


@dataclass(frozen=True)
class ModelConfig:
    """A whole model: the two towers, the joint width, the patch size and how test-time grids are laid."""

    embed_dim: int
    image: ImageTowerConfig
    text: TextTowerConfig
    name: str = "custom"
    patch_size: int = DEFAULT_PATCH_SIZE
    grid_aligned: bool = False  # test-time patch grids follow the image's JPEG grid (phase-aware models)
    logit_scale: LogitScaleConfig = LogitScaleConfig()
    text_format: dict[str, Any] = field(default_factory=dict)  # exiflang.exif.TextConfig as a dict
    model_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # train, description, source, ... kept verbatim

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> "ModelConfig":
        """Parse a config JSON object; ModelError names `source` and the bad key."""
        for key in ("embed_dim", "image", "text"):
            if key not in data:
                raise ModelError(f"{source}: lacks the required key {key!r}")
        known = {f.name for f in fields(cls)} - {"extra"}
        try:
            config = cls(
                embed_dim=_number(data["embed_dim"], int, MODEL_LIMITS["embed_dim"], f"{source}: embed_dim"),
                image=_section(ImageTowerConfig, data["image"], f"{source}: image"),
                text=_section(TextTowerConfig, data["text"], f"{source}: text"),
                name=_slug(data.get("name", "custom"), f"{source}: name"),
                patch_size=_number(data.get("patch_size", DEFAULT_PATCH_SIZE), int, MODEL_LIMITS["patch_size"],
                                   f"{source}: patch_size"),
                grid_aligned=_flag(data.get("grid_aligned", False), f"{source}: grid_aligned"),
                logit_scale=_section(LogitScaleConfig, data.get("logit_scale") or {}, f"{source}: logit_scale"),
                text_format=_complete_text_format(data.get("text_format"), f"{source}: text_format"),
                model_id=_model_id(data.get("model_id"), f"{source}: model_id"),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: {exc}") from exc
        _check_image(config.image, f"{source}: image")
        _check_text(config.text, f"{source}: text")
        _check_logit_scale(config.logit_scale, f"{source}: logit_scale")
        return config

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `from_dict` reads (extra keys at the top level, as they were)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "model_id")}
        data["image"] = {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in asdict(self.image).items() if v is not None}
        data["text"], data["logit_scale"] = asdict(self.text), asdict(self.logit_scale)
        if self.model_id:
            data["model_id"] = self.model_id
        return {**self.extra, **data}


# Bounds of every number a config may hold: (low, high), both inclusive. Generous for real models (the paper's
# ResNet-50 + DistilBERT is well inside), small enough that building one never allocates more than a few GB.
MODEL_LIMITS = {"embed_dim": (1, 4096), "patch_size": (8, 1024)}
IMAGE_LIMITS = {"widths": (1, 4096), "layers": (1, 64), "stem_width": (1, 4096), "stem_kernel": (1, 64),
                "stem_stride": (1, 64), "stem_padding": (0, 64)}
MAX_STAGES = 8
TEXT_LIMITS = {"max_length": (1, 8192), "vocab_size": (16, 1_000_000)}
LOGIT_LIMITS = (1e-3, 1e4)
IMAGE_CHOICES = {"arch": ("resnet",), "block": ("basic", "bottleneck"),
                 "depth": ("resnet18", "resnet34", "resnet50", "resnet101"), "norm": ("batch",)}
TEXT_CHOICES = {"kind": ("minilm", "distilbert", "scratch"), "tokenizer": ("minilm", "trained")}
_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")
# The only keys `text.backbone_config` may hold, per text kind, with their type and bounds (or choices): the
# architecture of a BERT (minilm, scratch) or a DistilBERT. Nothing else ever reaches the transformers library,
# whose loaders take keywords such as `subfolder` or `weights_only` that would make them unpickle a file.
_BERT_KEYS: dict[str, tuple] = {
    "hidden_size": (int, 1, 4096), "num_hidden_layers": (int, 1, 48), "num_attention_heads": (int, 1, 64),
    "intermediate_size": (int, 1, 16384), "max_position_embeddings": (int, 1, 8192), "type_vocab_size": (int, 1, 16),
    "hidden_dropout_prob": (float, 0.0, 1.0), "attention_probs_dropout_prob": (float, 0.0, 1.0),
    "layer_norm_eps": (float, 0.0, 1.0), "hidden_act": (str, _ACTIVATIONS),
}
_DISTILBERT_KEYS: dict[str, tuple] = {
    "dim": (int, 1, 4096), "n_layers": (int, 1, 48), "n_heads": (int, 1, 64), "hidden_dim": (int, 1, 16384),
    "max_position_embeddings": (int, 1, 8192), "dropout": (float, 0.0, 1.0), "attention_dropout": (float, 0.0, 1.0),
    "activation": (str, _ACTIVATIONS), "sinusoidal_pos_embds": (bool,),
}
BACKBONE_KEYS = {"minilm": {k: v for k, v in _BERT_KEYS.items() if k.endswith("_prob")},  # pretrained shape is fixed
                 "scratch": _BERT_KEYS, "distilbert": _DISTILBERT_KEYS}
# model_id becomes a folder name in caches: a slug, never a path ("/", "..", a leading dot or dash).
MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
_NAME_MAX = 128


def _section(cls, data: Any, source: str):
    """One config section as dataclass `cls`; unknown keys are an error (a typo would silently do nothing)."""
    if not isinstance(data, dict):
        raise ModelError(f"{source}: expected a JSON object")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ModelError(f"{source}: unknown keys {unknown} (known: {sorted(allowed)})")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    for f in fields(cls):  # every value must have the type its default has (a string width is no width)
        if f.name in values:
            values[f.name] = _typed(values[f.name], f.type, f"{source}: {f.name}")
    return cls(**values)


def _typed(value: Any, annotation: Any, source: str) -> Any:
    """`value` checked against a field's annotation (int, float, bool, str, tuples of int, dict; or None)."""
    kind = str(annotation)
    if value is None and "None" in kind:
        return None
    if kind.startswith("tuple"):
        if not isinstance(value, tuple) or not value:
            raise ModelError(f"{source}: expected a non-empty list of integers")
        return tuple(_integer(v, source) for v in value)
    if kind.startswith("dict"):
        if not isinstance(value, dict):
            raise ModelError(f"{source}: expected a JSON object")
        return value
    if kind.startswith("bool"):
        return _flag(value, source)
    if kind.startswith("int"):
        return _integer(value, source)
    if kind.startswith("float"):
        return _real(value, source)
    if kind.startswith("str"):
        return _text(value, source)
    return value


def _integer(value: Any, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{source}: expected an integer, got {value!r:.40}")
    return value


def _real(value: Any, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"{source}: expected a finite number, got {value!r:.40}")
    return float(value)


def _flag(value: Any, source: str) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"{source}: expected true or false, got {value!r:.40}")
    return value


def _text(value: Any, source: str) -> str:
    if not isinstance(value, str) or len(value) > _NAME_MAX:
        raise ModelError(f"{source}: expected a string of at most {_NAME_MAX} characters")
    return value


def _number(value: Any, kind: type, limits: tuple, source: str) -> Any:
    """An int or float within inclusive `limits`; ModelError naming `source` otherwise."""
    value = _integer(value, source) if kind is int else _real(value, source)
    low, high = limits
    if not low <= value <= high:
        raise ModelError(f"{source}: must be in [{low:g}, {high:g}], got {value:g}")
    return value


def _slug(value: Any, source: str) -> str:
    """A name that may become part of a file name: letters, digits and . _ + -, never a path."""
    if not isinstance(value, str) or not MODEL_ID_PATTERN.fullmatch(value):
        raise ModelError(f"{source}: must be a plain name of letters, digits and . _ + - "
                         f"(it names cache folders), got {str(value)[:60]!r}")
    return value


def _model_id(value: Any, source: str) -> str | None:
    return None if value is None else _slug(value, source)


def _choice(value: Any, choices: tuple, source: str) -> None:
    if value is not None and value not in choices:
        raise ModelError(f"{source}: expected one of {list(choices)}, got {str(value)[:40]!r}")


def _check_image(image: ImageTowerConfig, source: str) -> None:
    """Choices and bounds of the image tower (the ResNet builder trusts them)."""
    for key, choices in IMAGE_CHOICES.items():
        _choice(getattr(image, key), choices, f"{source}.{key}")
    for key in ("widths", "layers"):
        values = getattr(image, key)
        if values is not None:
            if len(values) > MAX_STAGES:
                raise ModelError(f"{source}.{key}: at most {MAX_STAGES} stages, got {len(values)}")
            for v in values:
                _number(v, int, IMAGE_LIMITS[key], f"{source}.{key}")
    for key in ("stem_width", "stem_kernel", "stem_stride", "stem_padding"):
        if getattr(image, key) is not None:
            _number(getattr(image, key), int, IMAGE_LIMITS[key], f"{source}.{key}")


def _check_text(text: TextTowerConfig, source: str) -> None:
    """Choices and bounds of the text tower, and the whitelist of its backbone's keys."""
    for key, choices in TEXT_CHOICES.items():
        _choice(getattr(text, key), choices, f"{source}.{key}")
    for key, limits in TEXT_LIMITS.items():
        _number(getattr(text, key), int, limits, f"{source}.{key}")
    allowed = BACKBONE_KEYS[text.kind]
    unknown = sorted(set(text.backbone_config) - set(allowed))
    if unknown:
        raise ModelError(f"{source}.backbone_config: keys {unknown} are not allowed for text kind {text.kind!r} "
                         f"(allowed: {sorted(allowed)})")
    for key, value in text.backbone_config.items():
        kind, *rule = allowed[key]
        where = f"{source}.backbone_config.{key}"
        if kind is str:
            _choice(value, rule[0], where) if isinstance(value, str) else _text(value, where)
        elif kind is bool:
            _flag(value, where)
        else:
            _number(value, kind, tuple(rule), where)


def _check_logit_scale(scale: "LogitScaleConfig", source: str) -> None:
    for key in ("init", "max"):
        _number(getattr(scale, key), float, LOGIT_LIMITS, f"{source}.{key}")


def _complete_text_format(partial: Any, source: str = "text_format") -> dict[str, Any]:
    """A partial text_format completed with TextConfig's defaults, so a saved config states its whole format."""
    from ..exif import TextConfig

    if partial is not None and not isinstance(partial, dict):
        raise ModelError(f"{source}: expected a JSON object")
    complete = {**TextConfig().to_dict(), **(partial or {})}
    try:
        TextConfig.from_dict(complete)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: {exc}") from None
    return complete
