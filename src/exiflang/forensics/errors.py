"""The forensics layer's error, in a module of its own: the patch grid and the classical detectors both raise it,
and neither imports the other for it."""
from __future__ import annotations

from ..errors import ExiflangError


class ForensicsError(ExiflangError):
    """An image cannot be analysed (bad array, bad settings, ...); the message names the cause. An image too small
    for the analysis raises `exiflang.imageio.ImageTooSmallError`, the one error every loader and analysis uses."""
