"""Frozen text-tower features, computed once per distinct text and cached in a safetensors file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..imageio import atomic_write
from ..models import ExifModel
from .errors import TrainError

# safetensors metadata that marks a file as this cache: only such a file is ever overwritten
MARKER_KEY, MARKER = "exiflang", "text-features"


@torch.no_grad()
def text_feature_table(model: ExifModel, texts: list[str], device: torch.device, batch: int = 32,
                       progress: bool = False) -> torch.Tensor:
    """Pooled frozen-backbone features [len(texts), hidden] for every text."""
    from tqdm import tqdm

    out = []
    for i in tqdm(range(0, len(texts), batch), desc="text features", unit="batch", disable=not progress):
        tok = model.tokenize(texts[i:i + batch])
        out.append(model.text.features(tok["input_ids"].to(device), tok["attention_mask"].to(device)).float())
    return torch.cat(out) if out else torch.empty(0, model.text.hidden_size, device=device)


def _text_key(text: str) -> str:
    """Cache key of a text."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _backbone_identity(model: ExifModel) -> str:
    """What the cached features depend on: the text tower's kind, tokenizer, length and architecture."""
    cfg = model.text.cfg
    # An empty backbone_config is written as null, as configs without the key always were (old caches stay valid).
    return json.dumps({k: cfg.get(k) or None for k in ("kind", "tokenizer", "max_length", "backbone_config")},
                      sort_keys=True)


def check_cache_file(path: Path) -> None:
    """Raise TrainError unless `path` is absent or a text-feature cache (the only file this cache overwrites).

    Caches written before the marker existed are recognised by their `backbone` metadata.
    """
    from safetensors import SafetensorError, safe_open

    if not path.exists() and not path.is_symlink():
        return
    refuse = "; refusing to overwrite it: give --text-features a new file name (or a cache written by exiflang train)"
    if not path.is_file():
        raise TrainError(f"{path}: not a regular file{refuse}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (OSError, SafetensorError, ValueError) as exc:
        why = " ".join(str(exc).split())
        raise TrainError(f"{path}: not a text-feature cache (not a safetensors file: {why}){refuse}") from exc
    if metadata.get(MARKER_KEY) != MARKER and "backbone" not in metadata:
        what = f"model {metadata['model_id']}" if "model_id" in metadata else "no text-feature marker"
        raise TrainError(f"{path}: a safetensors file that is not a text-feature cache ({what}){refuse}")


def cached_text_features(model: ExifModel, texts: list[str], device: torch.device, path: Path | None,
                         write: bool, progress: bool = False) -> dict[str, torch.Tensor]:
    """Frozen-backbone features per text, read from / added to a safetensors cache file (keyed by text hash).

    A file at `path` that is not such a cache (a model's weights, anything else) is refused, never overwritten.
    """
    from safetensors.torch import load_file, save_file

    identity = _backbone_identity(model)
    known: dict[str, torch.Tensor] = {}
    if path is not None:
        check_cache_file(path)
    if path is not None and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            same = (f.metadata() or {}).get("backbone") == identity
        if same:
            known = load_file(str(path))
    missing = sorted({t for t in texts if _text_key(t) not in known})
    if missing and not model.text.pretrained_loaded:
        raise TrainError(f"{path}: {len(missing)} text(s) lack cached features and the pretrained text weights "
                         "are not available to compute them")
    if missing:
        table = text_feature_table(model, missing, device, progress=progress).cpu()
        known.update({_text_key(t): row.clone() for t, row in zip(missing, table)})
        if write and path is not None:
            metadata = {MARKER_KEY: MARKER, "backbone": identity}
            atomic_write(path, lambda tmp: save_file(known, str(tmp), metadata=metadata))
    return {t: known[_text_key(t)].to(device) for t in texts}
