"""Where exiflang finds the shared photo collections and its own packaged files."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
DATA_ENV_VAR = "EXIFLANG_DATA"


def shared_data_dir() -> Path | None:
    """Return the shared data folder ($EXIFLANG_DATA, else ../shared/data beside the checkout), or None."""
    override = os.environ.get(DATA_ENV_VAR)
    if override:
        path = Path(override).expanduser()
        return path if path.is_dir() else None
    # The checkout lives next to shared/: <root>/main/src/exiflang -> <root>/shared/data.
    for base in (Path.cwd(), PACKAGE_DIR):
        for parent in (base, *base.parents):
            candidate = parent.parent / "shared" / "data"
            if candidate.is_dir():
                return candidate
    return None

CACHE_ENV_VAR = "EXIFLANG_CACHE"


def cache_root() -> Path:
    """Where exiflang keeps caches it can always recompute: $EXIFLANG_CACHE, else ~/.cache/exiflang."""
    base = os.environ.get(CACHE_ENV_VAR)
    return Path(base).expanduser() if base else Path.home() / ".cache" / "exiflang"
