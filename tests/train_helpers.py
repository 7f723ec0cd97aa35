"""Shared setup for the training tests: a small real index of shared photos, built once per module."""
from __future__ import annotations

import shutil
from pathlib import Path


def make_small_index(photos_dir: Path, work: Path, n_photos: int = 24) -> Path:
    """Copy `n_photos` real photos (one per camera folder, sorted) to `work` and index them; return the index."""
    from exiflang.data.index import build_index

    src = work / "photos"
    src.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in photos_dir.iterdir() if p.is_dir())
    for folder in folders[:n_photos]:
        first = sorted(folder.glob("*.jpg"))[:1]
        for photo in first:
            shutil.copy2(photo, src / f"{folder.name}_{photo.name}")
    index = work / "index"
    build_index(src, index, progress=False)
    return index
