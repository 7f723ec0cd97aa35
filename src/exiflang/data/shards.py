"""Webdataset shards of an index: `<key>.jpg` (the original file bytes, never re-encoded) + `<key>.json`.

Shards are plain POSIX tar files in the webdataset layout (members of one sample are consecutive and share
the key), so `webdataset.WebDataset` reads them, and so does this module with the standard `tarfile` (no
extra dependency on training machines). Files travel byte for byte: re-encoding would erase the camera's
JPEG traces.

Training from shards (`photos_from_shards`) keeps the compressed bytes in memory and decodes a photo when its
crops are cut; JPEGs are ~10x smaller than their pixels, so a collection of a few hundred thousand photos
fits a large training machine's memory. (A collection larger than memory would need a streaming reader.)
"""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from ..errors import ExiflangError
from ..imageio import atomic_write_text
from .patches import PatchDataError, TrainingPhoto, photos_from_records

SHARD_PATTERN = "shard-{:06d}.tar"
MANIFEST = "shards.json"
# Record fields copied into each sample's JSON (the absolute path is replaced by the sample key).
RECORD_FIELDS = ("relpath", "width", "height", "sha256", "size", "make", "model", "tags", "text")


class ShardError(ExiflangError):
    """Shards cannot be written or read; the message names the file and the cause."""


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Append one file member with fixed metadata (so shards are byte-reproducible)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(records: list[dict[str, Any]], out_dir: str | Path, max_count: int = 1000,
                 max_bytes: int = 1 << 30, progress: bool = True) -> dict[str, Any]:
    """Write records' photos as webdataset tar shards; returns the manifest (also written to shards.json)."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    tar, count, size = None, 0, 0
    try:
        for rec in tqdm(sorted(records, key=lambda r: r["sha256"]), desc="sharding", unit="photo",
                        disable=not progress):
            try:
                data = Path(rec["path"]).read_bytes()
            except OSError as exc:
                raise ShardError(f"{rec['path']}: cannot read ({exc})") from exc
            if tar is None or count >= max_count or size + len(data) > max_bytes:
                if tar is not None:
                    tar.close()
                name = SHARD_PATTERN.format(len(shards))
                tar = tarfile.open(out / name, "w", format=tarfile.PAX_FORMAT)
                shards.append({"name": name, "n": 0})
                count, size = 0, 0
            key = rec["sha256"][:24]
            meta = {k: rec.get(k) for k in RECORD_FIELDS}
            _add_member(tar, f"{key}.jpg", data)
            _add_member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
            count, size = count + 1, size + len(data)
            shards[-1]["n"] += 1
    finally:
        if tar is not None:
            tar.close()
    manifest = {"n_samples": sum(s["n"] for s in shards), "shards": shards, "layout": "webdataset: <key>.jpg, <key>.json"}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def shard_files(shards: str | Path) -> list[Path]:
    """The tar files of a shard folder (or a single tar)."""
    path = Path(shards)
    if path.is_file() and path.suffix == ".tar":
        return [path]
    if not path.is_dir():
        raise ShardError(f"{path}: no such shard folder")
    files = sorted(path.glob("*.tar"))
    if not files:
        raise ShardError(f"{path}: no .tar shards in this folder")
    return files


def iter_samples(shards: str | Path) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """(key, jpeg bytes, record) for every sample of every shard, in order."""
    for tar_path in shard_files(shards):
        pending: dict[str, dict[str, Any]] = {}
        try:
            with tarfile.open(tar_path, "r") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, _, ext = member.name.rpartition(".")
                    pending.setdefault(key, {})[ext] = tar.extractfile(member).read()
                    sample = pending[key]
                    if "jpg" in sample and "json" in sample:
                        del pending[key]
                        yield key, sample["jpg"], json.loads(sample["json"])
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise ShardError(f"{tar_path}: cannot read shard ({exc})") from exc
        if pending:
            raise ShardError(f"{tar_path}: incomplete samples {sorted(pending)[:3]} (need .jpg and .json)")


def photos_from_shards(shards: str | Path, patch_size: int,
                       text_format: dict[str, Any] | None = None) -> tuple[list[TrainingPhoto], int]:
    """Photos (with their JPEG bytes in memory) usable at this patch size, and the count too small."""
    records, blobs = [], {}
    for key, data, rec in iter_samples(shards):
        rec = dict(rec, path=f"{shards}#{key}")
        records.append(rec)
        blobs[rec["path"]] = data
    if not records:
        raise PatchDataError(f"{shards}: the shards hold no samples")
    photos, skipped = photos_from_records(records, patch_size, text_format)
    return [replace(p, blob=blobs[p.path]) for p in photos], skipped
