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
from ..jsonfile import read_json_object
from ..paths import WEIGHTS_DIR
from .config import MODEL_ID_PATTERN, ModelConfig, ModelError
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


# The largest model a config may describe (the paper's ResNet-50 + DistilBERT has about 0.1 billion parameters);
# a config beyond it is refused before anything is allocated.
MAX_PARAMETERS = 1_000_000_000


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object (bounded size and nesting), naming the file on error."""
    return read_json_object(path, ModelError, max_bytes=16 << 20)


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
        check_size(config, tokenizer, f"model config {config.name!r}")
        return ExifModel(config, tokenizer, pretrained_text=pretrained_text)
    except (TextModelError, ValueError, TypeError) as exc:
        raise ModelError(f"model config {config.name!r}: {exc}") from exc


def parameter_count(config: ModelConfig, tokenizer, image_only: bool = False) -> int:
    """Parameters the config describes, counted on PyTorch's meta device (nothing allocated, nothing read)."""
    with torch.device("meta"):
        model = ExifModel(config, None if image_only else tokenizer, pretrained_text=False, image_only=image_only)
    return sum(p.numel() for p in model.parameters())


def check_size(config: ModelConfig, tokenizer, source: str, image_only: bool = False) -> None:
    """ModelError when the config describes more than MAX_PARAMETERS (each bound alone still admits a huge product)."""
    n = parameter_count(config, tokenizer, image_only)
    if n > MAX_PARAMETERS:
        raise ModelError(f"{source}: the architecture has {n / 1e9:.1f} billion parameters "
                         f"(at most {MAX_PARAMETERS / 1e9:g} billion are allowed)")


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
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes differ from the config's: name the first few, not torch's essay
        mismatched = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise ModelError(f"{source}: weights do not match the config ({'; '.join(mismatched[:2]) or exc})") from None
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


def read_config(name_or_path: str | Path = "default") -> ModelConfig:
    """A saved model's typed config (built-in name or folder) without reading its weights: its text format, say."""
    folder = resolve_weights_dir(name_or_path)
    return ModelConfig.from_dict(_read_json(folder / CONFIG_FILE), str(folder / CONFIG_FILE))


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
    config = replace(config, model_id=checked_model_id(config, state, folder / CONFIG_FILE))
    # A frozen package MiniLM is not in the file: build it from the package; otherwise skip pretrained loading.
    needs_package = config.text.kind == "minilm" and not any(k.startswith("text.backbone.") for k in state)
    try:
        tokenizer = None if image_only else build_tokenizer(config.text.as_dict(), _saved_tokenizer(folder, config))
        check_size(config, tokenizer, str(folder / CONFIG_FILE), image_only)
        model = ExifModel(config, tokenizer, pretrained_text=needs_package, image_only=image_only)
    except (TextModelError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: cannot build the model ({exc})") from exc
    load_saved_state(model, state, folder / WEIGHTS_FILE)
    model.calibration = read_calibration(folder)
    return model.to(device).eval()


def checked_model_id(config: ModelConfig, state: dict[str, torch.Tensor], source: str | Path) -> str:
    """The model id, proven by the weights: `save_model` writes `<name>-<weights digest>`, and caches are keyed by it.

    A folder whose id does not end in its own weights' digest is refused: it would read (and poison) the cached
    text embeddings of the model it names, the built-in one included. A folder without an id gets one.
    """
    digest = weights_digest(state)
    if config.model_id is None:
        return f"{config.name}-{digest}" if MODEL_ID_PATTERN.fullmatch(f"{config.name}-{digest}") else f"model-{digest}"
    if not config.model_id.endswith(f"-{digest}"):
        raise ModelError(f"{source}: model_id {config.model_id!r} does not match its weights (their digest is "
                         f"{digest}); the folder's files were changed or mixed")
    return config.model_id


def _saved_tokenizer(folder: Path, config: ModelConfig) -> str | None:
    """The trained tokenizer's JSON saved beside the weights, when the config needs one."""
    if config.text.tokenizer != "trained":
        return None
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelError(f"{folder}: the config needs a trained tokenizer but {TOKENIZER_FILE} is missing")
    read_json_object(folder / TOKENIZER_FILE, ModelError)  # bounded size and nesting before the Rust parser sees it
    return (folder / TOKENIZER_FILE).read_text(encoding="utf-8")
