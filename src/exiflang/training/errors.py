"""The trainer's error type."""
from __future__ import annotations


class TrainError(Exception):
    """Training cannot start or continue (bad option, missing checkpoint, ...); the message says why."""
