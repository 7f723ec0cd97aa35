"""Build models from named configs, save them as safetensors + config.json, and load them back (never pickle)."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import torch

from ..imageio import atomic_write, atomic_write_text
from ..paths import WEIGHTS_DIR
from .config import ModelConfig, ModelError
from .joint import ExifModel
from .text import TextModelError, build_tokenizer, train_wordpiece

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
# The image score's calibration (exiflang.forensics.calibration), shipped beside config.json; optional.
CALIBRATION_FILE = "calibration.json"


def available_configs() -> list[str]:
    """Names of the configs shipped in `exiflang/models/configs/`."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, naming the file on error."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def resolve_config(name_or_config: "str | Path | dict[str, Any] | ModelConfig") -> ModelConfig:
    """The typed config of a config name (`tiny`, `grid`, ...), a JSON file path, a dict or a ModelConfig."""
    if isinstance(name_or_config, ModelConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return ModelConfig.from_dict(copy.deepcopy(name_or_config), f"model config {name_or_config.get('name', 'custom')!r}")
    text = str(name_or_config)
    path = CONFIG_DIR / f"{text}.json"
    if not path.is_file():
        if not (text.endswith(".json") and Path(text).is_file()):
            raise ModelError(f"unknown model config {text!r}: not a JSON file and not one of {available_configs()}")
        path = Path(text)
    return ModelConfig.from_dict(_read_json(path), str(path))


def create_model(name_or_config: "str | Path | dict[str, Any] | ModelConfig" = "tiny", texts: Iterable[str] | None = None,
                 seed: int | None = None, pretrained_text: bool = True) -> ExifModel:
    """A freshly initialised model (train mode); `texts` trains the vocabulary of a `trained` tokenizer.

    `pretrained_text=False` skips loading pretrained text weights (MiniLM), for runs that only use cached
    text features; `model.text.pretrained_loaded` then says False.
    """
    config = resolve_config(name_or_config)
    tokenizer_json = None
    if config.text.tokenizer == "trained" and texts is not None:
        tokenizer_json = train_wordpiece(texts, config.text.vocab_size, config.text.max_length).to_json()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        tokenizer = build_tokenizer(config.text.as_dict(), tokenizer_json)
        return ExifModel(config, tokenizer, pretrained_text=pretrained_text)
    except (TextModelError, ValueError, TypeError) as exc:
        raise ModelError(f"model config {config.name!r}: {exc}") from exc


def saved_state(model: ExifModel) -> dict[str, torch.Tensor]:
    """State dict minus what load rebuilds (a frozen package MiniLM), contiguous and detached."""
    state = model.state_dict()
    if model.text is not None and not model.text.ships_backbone:
        state = {k: v for k, v in state.items() if not k.startswith("text.backbone.")}
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_saved_state(model: ExifModel, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `saved_state()` output into a model built from the same config; ModelError names `source` on mismatch."""
    if model.text is None:  # image-only: the text tower's tensors are not needed
        state = {k: v for k, v in state.items() if not k.startswith("text.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if model.text is None or not model.text.ships_backbone:  # rebuilt from its package, never saved
        missing = [k for k in missing if not k.startswith("text.backbone.")]
    if missing or unexpected:
        raise ModelError(f"{source}: weights do not match the config "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """Short content hash of a state dict (names, shapes and bytes), used in model ids."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:12]


def save_model(model: ExifModel, out_dir: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` + `config.json` (+ `tokenizer.json` when trained) to `out_dir`."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # unwrap DDP
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = saved_state(model)
    if model.text is None:
        raise ModelError(f"{out}: an image-only model cannot be saved (its text tower was never loaded)")
    model_id = f"{model.config.name}-{weights_digest(state)}"
    config = replace(model.config, model_id=model_id,
                     extra={**model.config.extra, **copy.deepcopy(extra_config or {})})
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt", "model_id": model_id}))
    if config.text.tokenizer == "trained":
        atomic_write_text(out / TOKENIZER_FILE, model.text.tokenizer.to_json())
    atomic_write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    model.config, model.model_id = config, model_id
    return out


def resolve_weights_dir(name_or_path: str | Path) -> Path:
    """Folder holding a saved model: 'default' (or another built-in name) or a path."""
    text = str(name_or_path)
    builtin = WEIGHTS_DIR / text
    if "/" not in text and (builtin / CONFIG_FILE).is_file():
        return builtin
    path = Path(text).expanduser()
    if path.is_file() and path.name in (WEIGHTS_FILE, CONFIG_FILE):
        path = path.parent
    if not path.is_dir():
        builtins = sorted(p.name for p in WEIGHTS_DIR.glob("*") if (p / CONFIG_FILE).is_file()) if WEIGHTS_DIR.is_dir() else []
        raise ModelError(f"{text}: no such model folder (built-in models: {builtins})")
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise ModelError(f"{path}: not a model folder ({name} missing)")
    return path


def read_calibration(folder: str | Path) -> dict[str, Any] | None:
    """The weights folder's ``calibration.json`` as a dict (None when there is none); `load_model` attaches it as
    ``model.calibration`` and `exiflang.forensics.calibration.for_model` interprets it."""
    path = Path(folder) / CALIBRATION_FILE
    return _read_json(path) if path.is_file() else None


def load_model(name_or_path: str | Path = "default", *, image_only: bool = False,
               device: str | torch.device = "cpu") -> ExifModel:
    """Load a saved model (built-in name or folder) in eval mode; `image_only` skips the text tower (detection)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..device import resolve_device

    if isinstance(device, str):
        device = resolve_device(device)  # "cuda" on a CPU-only torch: DeviceError, before the weights are read
    folder = resolve_weights_dir(name_or_path)
    config = ModelConfig.from_dict(_read_json(folder / CONFIG_FILE), str(folder / CONFIG_FILE))
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{folder / WEIGHTS_FILE}: cannot read weights ({exc})") from exc
    # A frozen package MiniLM is not in the file: build it from the package; otherwise skip pretrained loading.
    needs_package = config.text.kind == "minilm" and not any(k.startswith("text.backbone.") for k in state)
    try:
        tokenizer = None if image_only else build_tokenizer(config.text.as_dict(), _saved_tokenizer(folder, config))
        model = ExifModel(config, tokenizer, pretrained_text=needs_package, image_only=image_only)
    except (TextModelError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: cannot build the model ({exc})") from exc
    load_saved_state(model, state, folder / WEIGHTS_FILE)
    model.calibration = read_calibration(folder)
    return model.to(device).eval()


def _saved_tokenizer(folder: Path, config: ModelConfig) -> str | None:
    """The trained tokenizer's JSON saved beside the weights, when the config needs one."""
    if config.text.tokenizer != "trained":
        return None
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelError(f"{folder}: the config needs a trained tokenizer but {TOKENIZER_FILE} is missing")
    return (folder / TOKENIZER_FILE).read_text()
