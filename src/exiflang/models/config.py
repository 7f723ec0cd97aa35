"""Typed model configs, parsed once from a config JSON; every default lives here and nowhere else.

The JSON layout is unchanged (a saved config.json still reads as before); `ModelConfig.from_dict` checks
the keys and types once, and `to_dict` writes it back. Keys a saved model carries beside the architecture
(`train`, `description`, `source`, ...) are kept verbatim in `ModelConfig.extra`.
"""
from __future__ import annotations

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
            return cls(
                embed_dim=int(data["embed_dim"]),
                image=_section(ImageTowerConfig, data["image"], f"{source}: image"),
                text=_section(TextTowerConfig, data["text"], f"{source}: text"),
                name=str(data.get("name", "custom")),
                patch_size=int(data.get("patch_size", DEFAULT_PATCH_SIZE)),
                grid_aligned=bool(data.get("grid_aligned", False)),
                logit_scale=_section(LogitScaleConfig, data.get("logit_scale") or {}, f"{source}: logit_scale"),
                text_format=_complete_text_format(data.get("text_format")),
                model_id=data.get("model_id"),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `from_dict` reads (extra keys at the top level, as they were)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "model_id")}
        data["image"] = {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in asdict(self.image).items() if v is not None}
        data["text"], data["logit_scale"] = asdict(self.text), asdict(self.logit_scale)
        if self.model_id:
            data["model_id"] = self.model_id
        return {**self.extra, **data}


def _section(cls, data: Any, source: str):
    """One config section as dataclass `cls`; unknown keys are an error (a typo would silently do nothing)."""
    if not isinstance(data, dict):
        raise ModelError(f"{source}: expected a JSON object")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ModelError(f"{source}: unknown keys {unknown} (known: {sorted(allowed)})")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**values)


def _complete_text_format(partial: dict[str, Any] | None) -> dict[str, Any]:
    """A partial text_format completed with TextConfig's defaults, so a saved config states its whole format."""
    from ..exif import TextConfig

    return {**TextConfig().to_dict(), **(partial or {})}
