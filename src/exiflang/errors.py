"""The one error base of exiflang: every project exception derives from `ExiflangError`.

`exiflang.cli.main` catches `ExiflangError` once and prints it as one line (exit status 2, no traceback;
`exiflang --debug ...` shows the traceback). This module imports nothing from the package, so every layer
may raise these.
"""
from __future__ import annotations


class ExiflangError(Exception):
    """Base of every exiflang exception; its message is one line that names the cause."""


class CommandError(ExiflangError):
    """A bad option, argument or input given to a command (exit status 2)."""
