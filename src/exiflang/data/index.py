"""Index a photo collection: one JSON line per accepted photo, one per rejected file (with the reason).

An index is a folder:

* ``records.jsonl``  one accepted photo per line: path (absolute), relpath, width, height (decoded size, from
  the image itself, not EXIF), format, sha256, size, mtime (s), mtime_ns, make, model, n_tags (tags the default
  text uses), tags (dict, private tags removed), text (default TextConfig).
* ``rejects.jsonl``  path, relpath, reason, detail, size, mtime, mtime_ns, sha256.
* ``tag_counts.json`` {"n_photos": N, "counts": {tag: photos having it}} over accepted photos.
* ``meta.json``      options, reader, text format, the last run's summary.

Both files are streamed (never one big in-memory dict), so millions of photos fit. Re-running on a grown
folder re-reads only files that are new, or whose size/mtime changed *and* whose content hash changed.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


from ..errors import ExiflangError
from ..exif.errors import ExifReadError
from ..exif.reader import DEFAULT_TIMEOUT, ExifReader
from ..exif.tags import is_private
from ..exif.text import TextConfig, exif_to_text, selected_tags
from ..imageio import (CAMERA_RAW_SUFFIXES, IMAGE_SUFFIXES, ImageLoadError, ImageTooLargeError, NotAnImageError,
                       atomic_write_text, file_sha256, opened_image)

RECORDS = "records.jsonl"
REJECTS = "rejects.jsonl"
TAG_COUNTS = "tag_counts.json"
META = "meta.json"
INDEX_VERSION = 1

# Reject reasons (the `reason` field of rejects.jsonl).
NOT_AN_IMAGE = "not_an_image"  # Pillow does not recognise the file as an image
UNDECODABLE = "undecodable"  # recognised, but the pixels cannot be decoded (truncated, corrupt, unsupported)
TOO_LARGE = "too_large"  # more pixels than exiflang.imageio.MAX_PIXELS
TOO_SMALL = "too_small"  # a side shorter than one patch
EXIF_UNREADABLE = "exif_unreadable"  # the EXIF reader failed (time-out, broken structure)
NO_EXIF = "no_exif"  # no EXIF tags at all
TOO_FEW_TAGS = "too_few_tags"  # fewer usable tags than min_tags
EDITED = "edited"  # Software / ProcessingSoftware / XMP CreatorTool / History names editing software
DUPLICATE = "duplicate"  # same bytes as a photo already accepted
ERROR = "error"  # anything unexpected (kept so one odd file never stops a million-photo run)

# Software that re-encodes or edits pixels. Camera firmware strings ("Ver1.00", "15.0", "FinePix ...") pass.
EDITING_SOFTWARE = re.compile(
    r"photoshop|lightroom|camera ?raw|gimp|capture ?nx|capture ?one|windows photo|photo ?gallery|"
    r"picasa|paint\.?net|painttool|pixelmator|affinity|snapseed|darktable|rawtherapee|dxo|luminar|"
    r"aperture|iphoto|acdsee|photoscape|irfanview|imagemagick|graphicsmagick|fireworks|paint shop|"
    r"photoimpact|noise ?ninja|quicktime|corel|photo ?studio|fotor|facetune|vsco|instagram|"
    r"bibble|silkypix|faststone|xnview|shotwell|digikam|f-spot|gthumb|preview\b",
    re.IGNORECASE,
)


@dataclass
class IndexOptions:
    """What the index accepts; changing any of these re-judges every file on the next run."""

    min_tags: int = 11  # the paper keeps photos with more than 10 EXIF tags
    min_size: int = 128  # shorter side in pixels: at least one patch
    reject_edited: bool = True
    reject_duplicates: bool = True
    decode: str = "full"  # "full" decodes every image (catches truncation); "header" only reads the size
    makernotes: bool = False
    keep_private: bool = False  # keep GPS/serial/owner tags in records (off: they never reach an index)

    def __post_init__(self) -> None:
        """Reject impossible options early."""
        if self.decode not in ("full", "header"):
            raise ValueError(f"decode must be 'full' or 'header', not {self.decode!r}")
        if self.min_tags < 0 or self.min_size < 1:
            raise ValueError("min_tags must be >= 0 and min_size >= 1")


@dataclass
class IndexSummary:
    """Counts of one indexing run."""

    n_files: int = 0  # files found in the folder
    n_accepted: int = 0
    n_rejected: int = 0
    n_examined: int = 0  # files opened and judged this run (new or changed)
    n_reused: int = 0  # unchanged files kept from the previous index
    n_removed: int = 0  # files in the previous index that are gone
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reader: str = ""
    workers: int = 1

    def format(self) -> str:
        """A human-readable multi-line summary."""
        per_file = 1000 * self.seconds / self.n_examined if self.n_examined else 0.0
        pct = 100 * self.n_accepted / self.n_files if self.n_files else 0.0
        lines = [
            f"{self.n_files} files: {self.n_accepted} accepted ({pct:.1f}%), {self.n_rejected} rejected",
            f"this run examined {self.n_examined} new/changed files in {self.seconds:.1f} s "
            f"({per_file:.1f} ms per file, {self.workers} workers, {self.reader}); "
            f"{self.n_reused} unchanged, {self.n_removed} removed",
        ]
        if self.reasons:
            lines.append("rejected: " + ", ".join(f"{r} {n}" for r, n in sorted(self.reasons.items(), key=lambda x: -x[1])))
        return "\n".join(lines)


class IndexReadError(ExiflangError):
    """An index folder is missing or damaged; the message names the folder and the cause."""


# ---------------------------------------------------------------- walking and the previous index


def walk_files(photo_dir: Path, skip: Path | None = None) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Yield (path, relpath, stat) of every regular, non-hidden file under photo_dir, in sorted order."""
    for root, dirs, files in os.walk(photo_dir):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or root_path / d != skip))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = root_path / name
            try:
                st = path.stat()
            except OSError:
                continue  # vanished or a broken link: nothing to index
            if stat.S_ISREG(st.st_mode):
                yield path, path.relative_to(photo_dir).as_posix(), st


def _iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (raw line, parsed dict) from a JSON Lines file; a torn last line (killed run) is skipped."""
    for _, line, rec in _jsonl_lines(path):
        if rec is not None:
            yield line, rec


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """Yield (line number, raw line, parsed dict or None when the line is not JSON) for every non-empty line."""
    if not path.is_file():
        return
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield number, line, json.loads(line)
            except json.JSONDecodeError:
                yield number, line, None


def _previous_state(out_dir: Path) -> dict[str, tuple[int, int, str]]:
    """relpath -> (size, mtime_ns, sha256) of every file judged by the previous run (records and rejects)."""
    state: dict[str, tuple[int, int, str]] = {}
    for name in (RECORDS, REJECTS):
        for _, rec in _iter_jsonl(out_dir / name):
            # Unexpected errors are retried; duplicates are re-judged because their original may be gone.
            if "relpath" in rec and "sha256" in rec and rec.get("reason") not in (ERROR, DUPLICATE):
                state[rec["relpath"]] = (int(rec.get("size", -1)), int(rec.get("mtime_ns", -1)), rec["sha256"] or "")
    return state


def _options_match(out_dir: Path, options: IndexOptions) -> bool:
    """True when the previous run used the same acceptance options (so its verdicts still hold)."""
    meta_path = out_dir / META
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("version") == INDEX_VERSION and meta.get("options") == asdict(options)


# ---------------------------------------------------------------- judging one file


# Image formats Pillow may lack a decoder for: a failure on these is "undecodable", not "not an image".
_DECODER_MAY_LACK = IMAGE_SUFFIXES | CAMERA_RAW_SUFFIXES


def decode_size(path: Path, full: bool = True) -> tuple[int, int, str]:
    """(width, height, format) from the image itself; with full=True the pixels are decoded too. Raises _Reject."""
    try:
        with opened_image(path, str(path), decode=full) as img:
            return img.size[0], img.size[1], str(img.format or "")
    except ImageTooLargeError as exc:
        raise _Reject(TOO_LARGE, str(exc).split(": ", 1)[1]) from exc
    except NotAnImageError as exc:
        if exc.kind:  # an empty or a text file is no image whatever its name
            raise _Reject(NOT_AN_IMAGE, f"not an image ({exc.kind})") from exc
        if path.suffix.lower() in _DECODER_MAY_LACK:
            raise _Reject(UNDECODABLE, f"Pillow has no decoder for {path.suffix} files (or the file is corrupt)") from exc
        raise _Reject(NOT_AN_IMAGE, "not an image Pillow can read") from exc
    except ImageLoadError as exc:
        raise _Reject(UNDECODABLE, f"cannot decode pixels: {str(exc).split(': ', 1)[-1]}") from exc


class _Reject(ExiflangError):
    """Internal: a file fails one acceptance check."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def editing_software(software: Iterable[str]) -> str | None:
    """The first software string naming an editor, or None."""
    for text in software:
        if EDITING_SOFTWARE.search(text):
            return text
    return None


def judge_file(path: Path, relpath: str, size: int, mtime_ns: int, reader: ExifReader, options: IndexOptions,
               sha256: str | None = None) -> tuple[str, dict[str, Any]]:
    """Examine one file: ("record", record) or ("reject", reject entry)."""
    base = {"path": str(path.resolve()), "relpath": relpath, "size": size, "mtime": mtime_ns / 1e9,
            "mtime_ns": mtime_ns, "sha256": sha256 or file_sha256(path)}
    try:
        width, height, fmt = decode_size(path, full=options.decode == "full")
        if min(width, height) < options.min_size:
            raise _Reject(TOO_SMALL, f"{width}x{height} is smaller than a {options.min_size}-pixel patch")
        try:
            exif = reader.read_record(path)
        except ExifReadError as exc:
            raise _Reject(EXIF_UNREADABLE, exc.cause) from exc
        if not exif.tags:
            raise _Reject(NO_EXIF, "the file has no EXIF tags")
        if options.reject_edited:
            editor = editing_software(exif.editing_software)
            if editor:
                raise _Reject(EDITED, f"edited with {editor!r}")
        tags = exif.tags if options.keep_private else {k: v for k, v in exif.tags.items() if not is_private(k)}
        n_tags = len(selected_tags(tags, TextConfig()))
        if n_tags < options.min_tags:
            raise _Reject(TOO_FEW_TAGS, f"{n_tags} usable tags, fewer than {options.min_tags}")
    except _Reject as rej:
        return "reject", {**base, "reason": rej.reason, "detail": rej.detail}
    record = {**base, "width": width, "height": height, "format": fmt,
              "make": tags.get("Make", ""), "model": tags.get("Model", ""), "n_tags": n_tags,
              "tags": tags, "text": exif_to_text(tags)}
    return "record", record


# ---------------------------------------------------------------- the run


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """Map fn over items with a thread pool, in order, keeping only a small window of jobs in flight."""
    window = max(4, 8 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="exiflang-index") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, Ctrl+C, SIGTERM): do not judge the queued files first
            for future in pending:
                future.cancel()


class _Readers:
    """One ExifReader per worker thread (ExifTool processes are not shared between threads)."""

    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs
        self._local = threading.local()
        self._all: list[ExifReader] = []
        self._lock = threading.Lock()

    def get(self) -> ExifReader:
        """This thread's reader, started on first use."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = ExifReader(**self.kwargs)
            self._local.reader = reader
            with self._lock:
                self._all.append(reader)
        return reader

    def close(self) -> None:
        """Close every reader."""
        for reader in self._all:
            reader.close()


@dataclass
class _Plan:
    """What a run has to do: which files are unchanged and which must be (re)judged."""

    n_files: int = 0
    n_removed: int = 0
    unchanged: set[str] = field(default_factory=set)
    todo: list[tuple[str, int, int]] = field(default_factory=list)  # (relpath, size, mtime_ns)
    maybe_same: set[str] = field(default_factory=set)  # changed size/mtime: hash before re-reading


def _plan(photo_dir: Path, out_dir: Path, previous: dict[str, tuple[int, int, str]]) -> _Plan:
    """Compare the folder with the previous index by size and mtime (one small tuple per file in memory)."""
    plan = _Plan()
    n_seen_before = 0
    for _, rel, st in walk_files(photo_dir, skip=out_dir):
        plan.n_files += 1
        old = previous.get(rel)
        n_seen_before += old is not None
        if old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            plan.unchanged.add(rel)
        else:
            plan.todo.append((rel, st.st_size, st.st_mtime_ns))
            if old is not None:
                plan.maybe_same.add(rel)
    plan.n_removed = len(previous) - n_seen_before
    return plan


class _Writer:
    """Streams verdicts to records/rejects files, applying the duplicate check and counting tags and reasons."""

    def __init__(self, out_dir: Path, options: IndexOptions, summary: IndexSummary):
        self.options = options
        self.summary = summary
        self.tag_counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.seen_sha: dict[str, str] = {}  # sha256 -> relpath of the accepted photo
        self.rec_tmp, self.rej_tmp = _tmp_name(out_dir / RECORDS), _tmp_name(out_dir / REJECTS)
        self.rec_fh, self.rej_fh = _new_text_file(self.rec_tmp), _new_text_file(self.rej_tmp)

    def write(self, kind: str, entry: dict[str, Any]) -> None:
        """Append one verdict ("record" or "reject")."""
        if kind == "record" and self.options.reject_duplicates and entry["sha256"] in self.seen_sha:
            kind = "reject"
            entry = {k: entry[k] for k in ("path", "relpath", "size", "mtime", "mtime_ns", "sha256")}
            entry.update(reason=DUPLICATE, detail=f"same content as {self.seen_sha[entry['sha256']]}")
        if kind == "record":
            self.seen_sha.setdefault(entry["sha256"], entry["relpath"])
            self.tag_counts.update(entry["tags"].keys())
            self.summary.n_accepted += 1
            self.rec_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        else:
            self.reasons[entry["reason"]] += 1
            self.summary.n_rejected += 1
            self.rej_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def commit(self, out_dir: Path) -> None:
        """Close the files and move them into place (a killed run leaves the previous index intact)."""
        self.close()
        os.replace(self.rec_tmp, out_dir / RECORDS)
        os.replace(self.rej_tmp, out_dir / REJECTS)
        self.summary.reasons = dict(self.reasons)
        _write_json(out_dir / TAG_COUNTS, {"n_photos": self.summary.n_accepted,
                                           "counts": dict(self.tag_counts.most_common())})

    def close(self) -> None:
        """Close both files."""
        self.rec_fh.close()
        self.rej_fh.close()

    def discard(self) -> None:
        """Close and delete both temporary files (a failed or stopped run leaves the previous index as it was)."""
        self.close()
        self.rec_tmp.unlink(missing_ok=True)
        self.rej_tmp.unlink(missing_ok=True)


def _tmp_name(path: Path) -> Path:
    """This process's temporary file for `path`, ending in the pid as `exiflang.imageio.atomic_write`'s do."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _new_text_file(path: Path):
    """Create `path` afresh for writing, never through a symbolic link planted at its name (O_EXCL | O_NOFOLLOW)."""
    if path.is_file() and not path.is_symlink():
        path.unlink()  # our own pid's leftover: a killed run whose pid came round again
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    return os.fdopen(fd, "w", encoding="utf-8")


_TMP_NAME = re.compile(r"\.(.+)\.(\d+)\.tmp")


def _remove_stale_tmp(out_dir: Path) -> None:
    """Delete temporary files left in out_dir by runs that were killed (their process no longer exists)."""
    for path in out_dir.glob(".*.tmp"):
        found = _TMP_NAME.fullmatch(path.name)
        if found and not _process_alive(int(found.group(2))) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    """True while a process with this id exists (a run indexing into the same folder right now)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or no pid at all: leave its file alone
    return True


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block SIGTERM unwinds the stack (every `finally` runs: temporary files deleted, ExifTool
    stopped); then the process dies of the signal as it would have.

    Only the main thread receives signals; elsewhere, or where SIGTERM is ignored, the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    received: list[int] = []

    def unwind(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
        received.append(signum)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if received:  # the default action ends the process with the usual status; a caller's handler runs
            signal.raise_signal(signal.SIGTERM)


def _carry_over(out_dir: Path, plan: _Plan, writer: _Writer) -> dict[str, dict[str, Any]]:
    """Copy verdicts of unchanged files from the previous index; return the old entries of maybe-same files."""
    stashed: dict[str, dict[str, Any]] = {}
    for name, kind in ((RECORDS, "record"), (REJECTS, "reject")):
        for _, entry in _iter_jsonl(out_dir / name):
            rel = entry.get("relpath")
            if rel in plan.unchanged:
                writer.summary.n_reused += 1
                writer.write(kind, entry)
            elif rel in plan.maybe_same:
                stashed[rel] = {"kind": kind, "entry": entry}
    return stashed


def _judge_job(photo_dir: Path, readers: _Readers, options: IndexOptions, stashed: dict[str, dict[str, Any]]):
    """The per-file job run on worker threads: hash, reuse an identical old verdict, else judge the file."""

    def job(item: tuple[str, int, int]) -> tuple[str, dict[str, Any]]:
        rel, size, mtime_ns = item
        path = photo_dir / rel
        try:
            sha = file_sha256(path)
            old = stashed.get(rel)
            if old is not None and old["entry"].get("sha256") == sha:
                return "same", {**old["entry"], "size": size, "mtime": mtime_ns / 1e9, "mtime_ns": mtime_ns,
                                "_kind": old["kind"]}
            return judge_file(path, rel, size, mtime_ns, readers.get(), options, sha256=sha)
        except Exception as exc:  # one odd file must not stop a long run; the reason is recorded
            return "reject", {"path": str(path), "relpath": rel, "size": size, "mtime": mtime_ns / 1e9,
                              "mtime_ns": mtime_ns, "sha256": "", "reason": ERROR,
                              "detail": f"{type(exc).__name__}: {exc}"}

    return job


def build_index(
    photo_dir: str | Path,
    out_dir: str | Path,
    options: IndexOptions | None = None,
    *,
    workers: int | None = None,
    backend: str = "auto",
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> IndexSummary:
    """Index every file under photo_dir into out_dir (incremental when out_dir holds an earlier index).

    A run stopped by an error, Ctrl+C or SIGTERM leaves the previous index as it was and no temporary files;
    one killed outright (SIGKILL) leaves its temporary files, which the next run into out_dir deletes.
    """
    photo_dir = Path(photo_dir).expanduser().resolve()
    out_dir = Path(out_dir).expanduser().resolve()
    if not photo_dir.is_dir():
        raise FileNotFoundError(f"{photo_dir}: {'not a folder' if photo_dir.exists() else 'photo folder not found'}")
    options = options or IndexOptions()
    workers = workers or min(2, os.cpu_count() or 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _sigterm_unwinds():
        _remove_stale_tmp(out_dir)
        return _run_index(photo_dir, out_dir, options, workers, backend, timeout, progress)


def _run_index(photo_dir: Path, out_dir: Path, options: IndexOptions, workers: int, backend: str, timeout: float,
               progress: bool) -> IndexSummary:
    """One indexing run into out_dir; on any failure or interruption the previous index stays as it was."""
    from tqdm import tqdm

    start = time.perf_counter()
    # Verdicts of an earlier run hold only if it used the same acceptance options.
    previous = _previous_state(out_dir) if _options_match(out_dir, options) else {}
    plan = _plan(photo_dir, out_dir, previous)
    summary = IndexSummary(n_files=plan.n_files, n_removed=plan.n_removed, workers=workers)
    readers = _Readers(backend=backend, makernotes=options.makernotes, timeout=timeout)
    writer = _Writer(out_dir, options, summary)
    try:
        summary.reader = readers.get().describe()
        stashed = _carry_over(out_dir, plan, writer) if previous else {}
        bar = tqdm(total=len(plan.todo), desc="indexing", unit="file", disable=not progress, dynamic_ncols=True)
        verdicts = _ordered_map(_judge_job(photo_dir, readers, options, stashed), plan.todo, workers)
        with contextlib.closing(verdicts):  # the pool stops before its readers are closed
            for kind, entry in verdicts:
                if kind == "same":
                    kind = entry.pop("_kind")
                    summary.n_reused += 1
                else:
                    summary.n_examined += 1
                writer.write(kind, entry)
                bar.update(1)
                bar.set_postfix(accepted=summary.n_accepted, rejected=summary.n_rejected, refresh=False)
        bar.close()
    except BaseException:
        writer.discard()
        raise
    finally:
        readers.close()
    writer.commit(out_dir)
    summary.seconds = time.perf_counter() - start
    _write_json(out_dir / META, {
        "version": INDEX_VERSION,
        "photo_dir": str(photo_dir),
        "options": asdict(options),
        "reader": summary.reader,
        "text_format": TextConfig().to_dict(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": asdict(summary),
    })
    return summary


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a killed run never leaves half a file)."""
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- reading an index


def _index_file(index_dir: str | Path, name: str) -> Path:
    """Path of one file of an index, with a clear error when the folder is not an index."""
    path = Path(index_dir).expanduser() / name
    if not path.is_file():
        raise IndexReadError(f"{Path(index_dir)}: not an exiflang index (no {name}); run `exiflang index PHOTO_DIR --out {index_dir}`")
    return path


def iter_records(index_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the accepted photos of an index, one dict per photo.

    A cut last line (a copy or a write that was interrupted) is skipped with a warning on stderr naming the file;
    an unreadable line before others means the file is damaged: IndexReadError.
    """
    path = _index_file(index_dir, RECORDS)
    torn, n_read = None, 0  # torn: number of an unreadable line, fine only as the last one
    for number, _, rec in _jsonl_lines(path):
        if torn is not None:
            raise IndexReadError(f"{path}: line {torn} is not JSON and more lines follow: the index is damaged; "
                                 f"rebuild it with `exiflang index PHOTO_DIR --out {index_dir}`")
        if rec is None:
            torn = number
            continue
        n_read += 1
        yield rec
    if torn is not None:
        from tqdm import tqdm

        # tqdm.write: the line does not mix with a progress bar
        tqdm.write(f"warning: {path}: 1 unreadable line (the last, cut short): that photo is left out, "
                   f"{n_read} are used", file=sys.stderr)


def load_records(index_dir: str | Path) -> list[dict[str, Any]]:
    """All accepted photos of an index as a list (use iter_records for very large collections)."""
    return list(iter_records(index_dir))


def iter_rejects(index_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the rejected files of an index with their reasons."""
    for _, rec in _iter_jsonl(_index_file(index_dir, REJECTS)):
        yield rec


def load_tag_counts(index_dir: str | Path) -> dict[str, Any]:
    """The index's tag frequencies: {"n_photos": N, "counts": {tag: n}} (input of TextConfig.with_tag_counts)."""
    return json.loads(_index_file(index_dir, TAG_COUNTS).read_text(encoding="utf-8"))


__all__ = [
    "IndexOptions", "IndexSummary", "IndexReadError", "build_index", "iter_records", "load_records",
    "iter_rejects", "load_tag_counts", "judge_file", "walk_files", "editing_software",
    "RECORDS", "REJECTS", "TAG_COUNTS", "META",
]
