"""Read the official EXIF-as-language checkpoint (`wrapper_75_new.pth`) safely and convert it to exiflang's format.

The official training script saves ``{"epoch", "model", "optimizer", "lr_sched"}`` with ``torch.save``; its
``"model"`` entry is the state dict of a wrapper around a CLIP model whose image and text towers were replaced:

* ``model.visual.*``: a torchvision ResNet-50 whose ``fc`` is a 2048 -> 768 linear layer;
* ``model.transformer.*``: a Hugging Face ``DistilBertModel`` (``DistilBertConfig()`` defaults), read out by
  masked mean pooling of its last hidden state;
* ``model.logit_scale``: CLIP's log temperature (log 100), the fixed scale the paper trains with;
* leftovers of the CLIP text tower that the wrapper's forward pass never uses (`UNUSED_KEYS`).

The file is opened with ``torch.load(weights_only=True)``: only tensors and plain containers are rebuilt, so a
hostile pickle cannot run code. The mapping onto exiflang's model lives in `exiflang.models.paper`.
"""
from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ExiflangError

VISUAL_PREFIX = "model.visual."
TEXT_PREFIX = "model.transformer."
LOGIT_SCALE_KEY = "model.logit_scale"
# Parts of the CLIP ViT-B/32 the official wrapper started from that its forward pass never uses,
# plus `sink_temp`, a parameter the wrapper creates and never reads.
UNUSED_KEYS = (
    "model.positional_embedding",
    "model.token_embedding.weight",
    "model.ln_final.weight",
    "model.ln_final.bias",
    "model.text_projection",
    "sink_temp",
)
# Buffers that some transformers versions save and that are rebuilt, not learned (position_ids = arange).
REBUILT_TEXT_BUFFERS = ("embeddings.position_ids",)
OFFICIAL_TOP_KEYS = ("epoch", "model", "optimizer", "lr_sched")
# Keys whose presence proves the layout: the first and last layers of each tower.
SIGNATURE_KEYS = (
    VISUAL_PREFIX + "conv1.weight",
    VISUAL_PREFIX + "fc.weight",
    TEXT_PREFIX + "embeddings.word_embeddings.weight",
)


class OfficialCheckpointError(ExiflangError):
    """The file is missing, unsafe, or not the official EXIF-as-language checkpoint (message names file and cause)."""


@dataclass
class OfficialWeights:
    """The official checkpoint split by tower, with prefixes removed."""

    source: Path
    visual: dict[str, torch.Tensor]  # torchvision ResNet-50 names ("conv1.weight", ..., "fc.bias")
    text: dict[str, torch.Tensor]  # DistilBertModel names ("embeddings.word_embeddings.weight", ...)
    logit_scale_log: float | None  # as stored: the log of the logit scale
    dropped: list[str] = field(default_factory=list)  # known-unused keys that were present and left out
    unexpected: list[str] = field(default_factory=list)  # keys outside every known part of the layout
    epoch: int | None = None
    dtypes: list[str] = field(default_factory=list)  # dtypes found among the kept tensors

    @property
    def logit_scale(self) -> float | None:
        """The multiplicative logit scale (exp of the stored value), or None when the file had none."""
        return None if self.logit_scale_log is None else math.exp(self.logit_scale_log)


def _detail(exc: Exception) -> str:
    """The informative line of a torch.load error (its messages wrap the cause in generic advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "failed reading" in line:
            return line
    return lines[0] if lines else type(exc).__name__


def _pickle_globals(path: Path, limit: int = 1 << 28) -> list[str]:
    """'module.name' of every class or callable a bare pickle file references, read without unpickling it."""
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        with path.open("rb") as fh:
            for opcode, arg, _ in pickletools.genops(fh):
                if isinstance(arg, str):
                    strings = (strings + [arg])[-2:]
                if opcode.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL":
                    found.append(".".join(strings) if len(strings) == 2 else "?")
                if fh.tell() > limit:
                    break
    except Exception:  # noqa: BLE001 - a damaged stream: report what was found before the damage
        pass
    return found


def load_checkpoint_safely(path: str | Path) -> Any:
    """torch.load with weights_only=True (no code can run); errors become OfficialCheckpointError."""
    path = Path(path)
    if not path.exists():
        raise OfficialCheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise OfficialCheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise OfficialCheckpointError(f"{path}: the file is empty")
    # The zip format (torch >= 1.6) can be memory-mapped: the optimizer state is never read into RAM.
    mmap = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": the refusal below says it in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        detail = _detail(exc)
        if "Unsupported operand" in detail and not mmap:
            # Protocol 4+ framing stops torch's weights-only unpickler before it reaches any class reference;
            # read the opcodes (pickletools never runs them) to say what the file would have imported.
            found = _pickle_globals(path)
            detail = f"GLOBAL {found[0]} (+{len(found) - 1} more)" if len(found) > 1 else (
                f"GLOBAL {found[0]}" if found else detail)
        if "GLOBAL" in detail:
            # The weights-only unpickler met a reference to a Python callable/class: the file wanted to run code.
            raise OfficialCheckpointError(
                f"{path}: refused: the file holds Python objects beyond tensors and plain containers, which could "
                f"run code when unpickled ({detail}); exiflang only reads weights-only checkpoints"
            ) from None
        raise OfficialCheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle data: {detail})") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, IndexError, ... on foreign or corrupt bytes
        raise OfficialCheckpointError(f"{path}: not a PyTorch checkpoint ({_detail(exc)})") from None


def _state_dict_of(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """The `"model"` state dict of the official checkpoint; anything else is refused with the reason."""
    if not isinstance(obj, Mapping):
        raise OfficialCheckpointError(
            f"{path}: not the official EXIF-as-language checkpoint: expected a dict with keys "
            f"{list(OFFICIAL_TOP_KEYS)}, found a {type(obj).__name__}"
        )
    if "model" not in obj or not isinstance(obj["model"], Mapping):
        raise OfficialCheckpointError(
            f"{path}: not the official EXIF-as-language checkpoint: expected a dict with keys "
            f"{list(OFFICIAL_TOP_KEYS)} whose 'model' entry is a state dict; found keys {sorted(map(str, obj))[:8]}"
        )
    state = obj["model"]
    # A checkpoint saved from a DataParallel/DDP wrapper prefixes every key with "module.": undo it.
    if state and all(str(k).startswith("module.") for k in state):
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    missing = [k for k in SIGNATURE_KEYS if k not in state]
    if missing:
        raise OfficialCheckpointError(
            f"{path}: not the official EXIF-as-language layout: its 'model' state dict lacks {missing} "
            f"(expected 'model.visual.*' = ResNet-50 and 'model.transformer.*' = DistilBERT)"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise OfficialCheckpointError(f"{path}: state dict entries that are not tensors: {bad[:5]}")
    return state


def split_official_state(state: Mapping[str, torch.Tensor], source: str | Path, epoch: Any = None) -> OfficialWeights:
    """Split an official state dict into ResNet-50 and DistilBERT parts (prefixes removed) and the rest."""
    source = Path(source)
    visual: dict[str, torch.Tensor] = {}
    text: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unexpected: list[str] = []
    logit_scale_log: float | None = None
    for key, value in state.items():
        if key.startswith(VISUAL_PREFIX):
            visual[key[len(VISUAL_PREFIX):]] = value
        elif key.startswith(TEXT_PREFIX):
            name = key[len(TEXT_PREFIX):]
            if name in REBUILT_TEXT_BUFFERS:
                dropped.append(key)
            else:
                text[name] = value
        elif key == LOGIT_SCALE_KEY:
            if value.numel() != 1:
                raise OfficialCheckpointError(f"{source}: {key} should be a scalar, found shape {tuple(value.shape)}")
            logit_scale_log = float(value.float().reshape(()))
        elif key in UNUSED_KEYS:
            dropped.append(key)
        else:
            unexpected.append(key)
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in (*visual.values(), *text.values())})
    return OfficialWeights(
        source=source,
        visual=visual,
        text=text,
        logit_scale_log=logit_scale_log,
        dropped=dropped,
        unexpected=unexpected,
        epoch=int(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else None,
        dtypes=dtypes,
    )


def read_official_checkpoint(path: str | Path) -> OfficialWeights:
    """Load the official checkpoint safely and split it into its towers; refuse any other file clearly."""
    path = Path(path)
    obj = load_checkpoint_safely(path)
    state = _state_dict_of(obj, path)
    return split_official_state(state, path, epoch=obj.get("epoch"))


@dataclass
class ConversionReport:
    """What a conversion did: tensors mapped, keys dropped, unexpected or missing, and where it wrote."""

    source: Path
    out_dir: Path | None
    n_mapped: int
    dropped: list[str]
    unexpected: list[str]
    missing: list[str]
    logit_scale: float
    epoch: int | None
    source_dtypes: list[str]
    model_id: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        out = [
            f"source: {self.source}" + (f" (epoch {self.epoch})" if self.epoch is not None else ""),
            f"mapped: {self.n_mapped} tensors (source dtypes: {', '.join(self.source_dtypes) or '-'}; written as float32)",
            f"logit scale: {self.logit_scale:g}",
            f"dropped (unused by the official forward pass): {', '.join(self.dropped) or 'none'}",
            f"unexpected (not part of the official layout, ignored): {', '.join(self.unexpected) or 'none'}",
            f"missing (left at random init!): {', '.join(self.missing) or 'none'}",
        ]
        if self.out_dir is not None:
            out.append(f"wrote: {self.out_dir} (model id {self.model_id})")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready provenance, stored in the converted model's config.json."""
        return {
            "format": "official EXIF-as-language checkpoint (hellomuffin/exif-as-language)",
            "file": self.source.name,
            "epoch": self.epoch,
            "n_mapped": self.n_mapped,
            "dropped": self.dropped,
            "unexpected": self.unexpected,
            "missing": self.missing,
            "source_dtypes": self.source_dtypes,
        }


def load_official_into(model: torch.nn.Module, weights: OfficialWeights) -> ConversionReport:
    """Copy the official towers into a `paper` model in place; shape mismatches are an error."""
    from . import paper

    mapped = paper.exiflang_state_from_official(weights.visual, weights.text, weights.logit_scale_log)
    target = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in mapped.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    if mismatched:
        raise OfficialCheckpointError(
            f"{weights.source}: tensor shapes differ from the paper architecture (ResNet-50 + DistilBERT): "
            + "; ".join(mismatched[:5]) + (f" (+{len(mismatched) - 5} more)" if len(mismatched) > 5 else "")
        )
    known = {k: v for k, v in mapped.items() if k in target}
    unexpected = list(weights.unexpected) + [_official_name(k) for k in mapped if k not in target]
    # A checkpoint without a logit scale keeps the preset's fixed 100: not a hole in the network.
    missing = [k for k in target if k not in known and k != paper.LOGIT_SCALE_KEY]
    model.load_state_dict(known, strict=False)
    return ConversionReport(
        source=weights.source,
        out_dir=None,
        n_mapped=len(known),
        dropped=list(weights.dropped),
        unexpected=unexpected,
        missing=[_official_name(k) for k in missing],
        logit_scale=float(getattr(model, "logit_scale", torch.tensor(float("nan")))),
        epoch=weights.epoch,
        source_dtypes=list(weights.dtypes),
    )


def _official_name(exiflang_key: str) -> str:
    """The official checkpoint's name for an exiflang state-dict key (for reports users can grep for)."""
    from . import paper

    if exiflang_key.startswith(paper.IMAGE_PREFIX):
        return VISUAL_PREFIX + exiflang_key[len(paper.IMAGE_PREFIX):]
    if exiflang_key.startswith(paper.TEXT_PREFIX):
        return TEXT_PREFIX + exiflang_key[len(paper.TEXT_PREFIX):]
    if exiflang_key == paper.LOGIT_SCALE_KEY:
        return LOGIT_SCALE_KEY
    return exiflang_key


def convert_weights(weights: OfficialWeights, out_dir: str | Path, allow_missing: bool = False) -> ConversionReport:
    """Build the `paper` model, copy the official towers in and save it as an exiflang model folder."""
    from .factory import save_model
    from .paper import create_paper_model

    model = create_paper_model(seed=0)
    report = load_official_into(model, weights)
    if report.missing and not allow_missing:
        raise OfficialCheckpointError(
            f"{weights.source}: {len(report.missing)} weights of the paper architecture are absent from the "
            f"checkpoint ({', '.join(report.missing[:5])}{' ...' if len(report.missing) > 5 else ''}); the converted "
            "model would be partly random. Nothing was written (allow_missing=True / --allow-missing overrides)"
        )
    report.out_dir = Path(out_dir)
    save_model(model.eval(), report.out_dir, extra_config={"converted_from": report.to_dict()})
    report.model_id = model.model_id
    return report


def convert_official(checkpoint: str | Path, out_dir: str | Path, allow_missing: bool = False) -> ConversionReport:
    """Convert the official `wrapper_75_new.pth` into an exiflang model folder (model.safetensors + config.json)."""
    return convert_weights(read_official_checkpoint(checkpoint), out_dir, allow_missing=allow_missing)


__all__ = [
    "ConversionReport",
    "OfficialCheckpointError",
    "OfficialWeights",
    "convert_official",
    "convert_weights",
    "load_checkpoint_safely",
    "load_official_into",
    "read_official_checkpoint",
    "split_official_state",
    "UNUSED_KEYS",
]
