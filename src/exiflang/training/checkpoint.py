"""Training checkpoints: one safetensors file (model, AdamW state, RNG; the rest as JSON metadata), written atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..imageio import atomic_write
from ..models.factory import saved_state
from .errors import TrainError

if TYPE_CHECKING:
    from ..models import ExifModel


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state dict -> (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, pid, key = name.split("/", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: Path, model: "ExifModel", optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, rng_states: list[torch.Tensor],
                    meta: dict[str, Any]) -> None:
    """Write model, optimiser, scheduler, RNG and step to one safetensors file atomically (temp + rename)."""
    from safetensors.torch import save_file

    # A frozen package MiniLM is rebuilt on resume, as on load: keep its ~90 MB out of every checkpoint.
    tensors = {f"model/{k}": v.clone() for k, v in saved_state(model).items()}
    optim_tensors, optim_meta = flatten_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    for rank, state in enumerate(rng_states):
        tensors[f"rng/{rank}"] = state.cpu()
    info = dict(meta, step=step, scheduler=scheduler.state_dict(), optimizer=optim_meta)
    # atomic: a reader sees the old or the new checkpoint, never half of one
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"exiflang": json.dumps(info)}))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads(f.metadata()["exiflang"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        raise TrainError(f"{path}: cannot read checkpoint ({exc})") from exc
    return tensors, info


def rng_state(device: torch.device) -> torch.Tensor:
    """This process's torch RNG state (CPU, plus the current GPU's when on CUDA) as one uint8 tensor."""
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    lengths = torch.tensor([len(s) for s in states], dtype=torch.int64).view(torch.uint8)
    return torch.cat([torch.tensor([len(states)], dtype=torch.uint8), lengths, *states])


def set_rng_state(packed: torch.Tensor, device: torch.device) -> None:
    """Restore a state made by `rng_state`."""
    n = int(packed[0])
    lengths = packed[1:1 + 8 * n].clone().view(torch.int64).tolist()
    offset = 1 + 8 * n
    parts = []
    for length in lengths:
        parts.append(packed[offset:offset + length].clone())
        offset += length
    torch.set_rng_state(parts[0])
    if len(parts) > 1 and device.type == "cuda":
        torch.cuda.set_rng_state(parts[1], device)
