"""The files of `exiflang batch`: the input listing, the Parquet table written in parts, and what a re-run skips.

Inputs (`iter_inputs`): image files, folders (walked recursively, one folder at a time), glob patterns, and lists
of paths: ``.txt``/``.lst`` (one path a line; empty lines and ``#`` lines ignored), ``.csv`` (the ``path``
column, else the first one) and ``.parquet`` (the ``path`` column, else the first one). Lists and folders are
read as a stream, never held whole: the driver writes them into small Parquet chunks (``OUT/.inputs/``), and each
worker call reads one chunk (a million paths are a few thousand chunk names in the driver). A relative path in a list is taken from the current folder.

The table (``OUT/part-<run>-<seq>.parquet``, one schema, `COLUMNS`): each part is written whole through the one
atomic writer, so a killed run leaves complete parts and loses only the rows not yet written. Readers take the
folder as one table (``pyarrow.parquet.read_table(OUT)``; names starting with ``.`` or ``_`` are not parts).
Each part's key-value metadata ``exiflang.progress`` holds the run's progress when it was written, and
``OUT/_common_metadata`` (schema only) the latest.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import ExiflangError
from ..imageio import IMAGE_SUFFIXES, atomic_write
from ..ranges import MAX_IMAGES_PER_CALL

LIST_SUFFIXES = {".txt": "text", ".lst": "text", ".csv": "csv", ".parquet": "parquet"}
INPUT_CHUNK = MAX_IMAGES_PER_CALL  # most paths in one listing chunk: one Ray Data block, one actor call
PROGRESS_KEY = b"exiflang.progress"
# (name, arrow type) of every column, in order; None where a file failed before it could be measured.
COLUMNS = [("path", "string"), ("sha256", "string"), ("width", "int32"), ("height", "int32"),
           ("score", "float64"), ("probability", "float64"), ("verdict", "string"),
           ("flagged_fraction", "float64"), ("method", "string"), ("model_id", "string"),
           ("settings_digest", "string"), ("seconds", "float64"), ("error", "string")]


class BatchInputError(ExiflangError):
    """An input of `exiflang batch` cannot be read as a list of images (a missing list file, no path column)."""


def schema():
    """The table's pyarrow schema."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS])


def _walk_folder(root: Path) -> Iterator[str]:
    """Image files under a folder, sorted within each folder, yielded as found (never the whole list at once)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                yield os.path.join(folder, name)


def _column(names: list[str], source: Path) -> str:
    """The path column of a CSV/Parquet list: ``path`` if there is one, else the first."""
    if not names:
        raise BatchInputError(f"{source}: no columns; a list needs a 'path' column (or paths in its first column)")
    return "path" if "path" in names else names[0]


def _read_csv(source: Path) -> Iterator[str]:
    with source.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        index = header.index(_column(header, source))
        for row in reader:
            if len(row) > index and row[index].strip():
                yield row[index].strip()


def _read_parquet(source: Path) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid/OSError kinds for a file that is no Parquet
        raise BatchInputError(f"{source}: not a readable Parquet file ({exc})") from None
    column = _column(parquet.schema_arrow.names, source)
    for batch in parquet.iter_batches(batch_size=INPUT_CHUNK, columns=[column]):
        yield from (str(p) for p in batch.column(0).to_pylist() if p)


def _read_text(source: Path) -> Iterator[str]:
    with source.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def _expand(spec: str) -> Iterator[str]:
    """The paths one command-line input names (see the module docstring)."""
    path = Path(spec)
    kind = LIST_SUFFIXES.get(path.suffix.lower())
    if path.is_dir():
        yield from _walk_folder(path)
    elif kind:
        if not path.is_file():
            raise BatchInputError(f"{spec}: no such list file")
        try:
            yield from {"text": _read_text, "csv": _read_csv, "parquet": _read_parquet}[kind](path)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BatchInputError(f"{spec}: cannot read this list ({exc})") from None
    elif glob.has_magic(spec):
        for match in glob.iglob(spec, recursive=True):
            if not os.path.isdir(match):
                yield match
    else:
        yield spec  # a file (a missing one becomes a row with its error)


def iter_inputs(specs: Iterable[str]) -> Iterator[str]:
    """Absolute paths of every image the inputs name, each path once (a set of 8-byte path digests, not the paths,
    remembers which were seen: 1 million paths take tens of MB)."""
    seen: set[bytes] = set()
    for spec in specs:
        for raw in _expand(spec):
            path = os.path.abspath(raw)
            key = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
            if key not in seen:
                seen.add(key)
                yield path


def write_input_chunks(paths: Iterable[str], folder: Path, workers: int = 1, min_chunk: int = 1) -> tuple[list[str], int]:
    """Write the paths as Parquet chunks into ``folder`` (emptied first): (chunk files, count).

    A chunk is one Ray Data block, and a block goes to one actor: chunks of about an eighth of each worker's share
    (at least ``min_chunk``, at most `INPUT_CHUNK` paths) keep every worker busy on ten images and on a million.
    The paths are streamed twice (into one spool file while counting, then into the chunks), never held whole.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("chunk-*.parquet"), folder / "all.parquet"]:
        old.unlink(missing_ok=True)
    spool, total, buffer = folder / "all.parquet", 0, []
    with pq.ParquetWriter(spool, pa.schema([("path", pa.string())])) as writer:
        for path in paths:
            buffer.append(path)
            total += 1
            if len(buffer) >= INPUT_CHUNK:
                writer.write_table(pa.table({"path": pa.array(buffer, pa.string())}))
                buffer.clear()
        if buffer:
            writer.write_table(pa.table({"path": pa.array(buffer, pa.string())}))
    size = min(INPUT_CHUNK, max(min_chunk, -(-total // (8 * max(workers, 1)))))
    files = []
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=size):
        name = folder / f"chunk-{len(files):06d}.parquet"
        atomic_write(name, lambda tmp: pq.write_table(pa.Table.from_batches([batch]), tmp))
        files.append(str(name))
    spool.unlink()
    return files, total


def part_files(out_dir: Path) -> list[Path]:
    """The table's part files, in name order."""
    return sorted(out_dir.glob("part-*.parquet"))


def read_table(out_dir: Path, columns: list[str] | None = None):
    """The whole table (all parts) as one pyarrow Table; an empty one with the schema when there is no part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = part_files(out_dir)
    if not parts:
        empty = schema()
        return empty.empty_table() if columns is None else pa.schema([empty.field(c) for c in columns]).empty_table()
    return pq.read_table([str(p) for p in parts], columns=columns, schema=schema())


def hash_key(sha256_hex: str) -> np.uint64:
    """The 64-bit key of a content hash in the done set (its first 16 hex digits)."""
    return np.uint64(int(sha256_hex[:16], 16))


def done_keys(out_dir: Path, digest: str) -> tuple[np.ndarray, set[str]]:
    """What a re-run with settings ``digest`` skips: the sorted 64-bit keys of the content hashes already in the
    table (8 bytes a row: a million finished images ship to every worker as 8 MB), and the paths of rows that
    have no hash (files that could not be read: skipped while they still cannot be)."""
    table = read_table(out_dir, ["path", "sha256", "settings_digest"])
    keys, unread = [], set()
    for path, sha, dig in zip(*(table.column(c).to_pylist() for c in ("path", "sha256", "settings_digest"))):
        if dig != digest:
            continue
        if sha:
            keys.append(hash_key(sha))
        else:
            unread.add(path)
    return np.unique(np.array(keys, dtype=np.uint64)), unread


def write_part(out_dir: Path, name: str, table, progress: dict) -> Path:
    """One part, whole or not at all, with the progress in its metadata; `_common_metadata` gets the same."""
    import pyarrow.parquet as pq

    meta = {PROGRESS_KEY: json.dumps(progress).encode()}
    table = table.replace_schema_metadata(meta)
    path = atomic_write(out_dir / name, lambda tmp: pq.write_table(table, tmp))
    write_progress(out_dir, progress)
    return path


def write_progress(out_dir: Path, progress: dict) -> None:
    """The run's progress in ``OUT/_common_metadata`` (the table's schema, no rows)."""
    import pyarrow.parquet as pq

    with_meta = schema().with_metadata({PROGRESS_KEY: json.dumps(progress).encode()})
    atomic_write(out_dir / "_common_metadata", lambda tmp: pq.write_metadata(with_meta, tmp))


def read_progress(out_dir: Path) -> dict | None:
    """The latest progress a run recorded, or None."""
    import pyarrow.parquet as pq

    path = out_dir / "_common_metadata"
    if not path.is_file():
        return None
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[PROGRESS_KEY]) if PROGRESS_KEY in meta else None
