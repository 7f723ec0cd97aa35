"""The trainer's error type."""
from __future__ import annotations


from ..errors import ExiflangError

class TrainError(ExiflangError):
    """Training cannot start or continue (bad option, missing checkpoint, ...); the message says why."""
