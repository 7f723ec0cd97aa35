"""exiflang: learn camera signatures from pixels by treating EXIF metadata as language.

The public API is imported lazily so that `import exiflang` stays fast:

    exiflang.read_exif(path)            -> dict of tags           (exiflang.exif)
    exiflang.exif_to_text(tags, cfg)    -> the text the model reads
    exiflang.load_model("default")      -> model with encode_image / encode_text / encode_tokens
    exiflang.analyse(path)              -> `exiflang detect`'s default analysis: heatmap, score, verdict
    exiflang.detect(image_or_path)      -> the learned map alone: heatmap, mask, score   (exiflang.forensics)
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read_exif": "exiflang.exif",
    "exif_to_text": "exiflang.exif",
    "TextConfig": "exiflang.exif",
    "ExifReadError": "exiflang.exif",
    "load_model": "exiflang.models",
    "create_model": "exiflang.models",
    "detect": "exiflang.forensics",
    "analyse": "exiflang.eval.file_analysis",
}


def __getattr__(name: str) -> Any:
    """Import public API members on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'exiflang' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
