"""The one place a `--device` name is checked and resolved, for every command and the Python API.

`device_name_problem` checks the spelling without importing torch (argparse uses it, so `--help` stays instant);
`resolve_device` checks that this torch build and machine have the device ("cuda" on a CPU-only torch is a clear
`DeviceError`, not torch's AssertionError) and turns "auto" into "cuda" or "cpu".
"""
from __future__ import annotations

import re

from .errors import CommandError

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
_DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


class DeviceError(CommandError):
    """A device name that is misspelt or that this torch build / machine does not have."""


def device_name_problem(name: str) -> str | None:
    """Why `name` is not a device name (one of DEVICE_FORMS), or None when it is one."""
    if _DEVICE_RE.fullmatch(str(name).strip().lower()):
        return None
    return f"{name!r} is not a device; use {DEVICE_FORMS}"


def resolve_device(name: str) -> str:
    """The torch device string for `name` ('auto' -> 'cuda' or 'cpu'), or DeviceError naming what is missing."""
    problem = device_name_problem(name)
    if problem:
        raise DeviceError(f"--device {problem}")
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {name}: {build}; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("--device mps: MPS is not available on this machine; use --device cpu")
    return name
