"""Shared fixtures: the shared photo collections, skipped with a clear message where absent."""
from __future__ import annotations

from pathlib import Path

import pytest

from exiflang.paths import CACHE_ENV_VAR, shared_data_dir


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Every cache (embeddings, text embeddings) in a fresh folder: tests neither read nor fill ~/.cache/exiflang."""
    import os

    previous = os.environ.get(CACHE_ENV_VAR)
    os.environ[CACHE_ENV_VAR] = str(tmp_path_factory.mktemp("exiflang-cache"))  # subprocesses inherit it
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV_VAR, None)
    else:
        os.environ[CACHE_ENV_VAR] = previous


def _shared(sub: str) -> Path:
    root = shared_data_dir()
    if root is None or not (root / sub).is_dir():
        pytest.skip(f"shared data '{sub}' not found: set EXIFLANG_DATA or place it at ../shared/data/{sub}")
    return root / sub


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    """../shared/data/photos: real camera photos with original EXIF."""
    return _shared("photos")


@pytest.fixture(scope="session")
def casia_dir() -> Path:
    """../shared/data/casia1: CASIA v1.0 splicing subset."""
    return _shared("casia1")


@pytest.fixture(scope="session")
def exif_samples_dir() -> Path:
    """../shared/data/exif-samples: small and broken files for parser tests."""
    return _shared("exif-samples")
