"""Process groups under torchrun (gloo on CPU, nccl on GPU), devices, and gathers that carry no gradient."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..device import resolve_device
from .checkpoint import rng_state


@dataclass
class Dist:
    """Process-group facts of this process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is the rank that logs and writes files."""
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, ddp: Dist) -> torch.device:
    """Resolve the device with `exiflang.device.resolve_device` (one GPU per local rank under torchrun)."""
    name = resolve_device(name)
    if name.startswith("cuda"):
        index = ddp.local_rank if name == "cuda" else torch.device(name).index
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(name)


def all_gather_ints(x: torch.Tensor, ddp: Dist) -> torch.Tensor:
    """Concatenate an integer tensor over ranks (no gradient)."""
    if ddp.world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(ddp.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_rng_states(device: torch.device, ddp: Dist) -> list[torch.Tensor]:
    """Every rank's RNG state (on rank 0; others get their own only)."""
    mine = rng_state(device)
    if ddp.world == 1:
        return [mine]
    states: list[Any] = [None] * ddp.world
    dist.all_gather_object(states, mine)
    return states
