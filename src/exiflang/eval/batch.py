"""`exiflang batch`: one method over millions of images on Ray Data, into one Parquet table, resumable.

The pipeline: the input listing (`batch_io.write_input_chunks`, streamed into small Parquet chunks) -> a dataset
of the chunks' names, one block each -> ``map_batches(BatchAnalyser)``, a pool of actors that each build the method
once (the model loaded once per actor), read a chunk and run `analysis.analyse_file` on each of its paths (the
same "image file through method M" as `exiflang bench`) -> rows streamed back to the driver, which writes them into
the table in parts (`batch_io.write_part`) and prints the progress. Rows come back in the order they finish.
A worker that dies mid-chunk has its chunk run again by Ray on a new actor; its rows had not come back yet.

Resumable and idempotent: every row carries the file's content hash and the settings digest
(`methods.settings_digest`, the same as `exiflang detect`'s); a run skips the files whose (hash, digest) pair is
already in the table, and files that could not be read whose path is there, so a re-run after a kill (of the
driver or a worker) ends with each image once. A file that fails is a row with its error, never a stopped run.
"""
from __future__ import annotations

import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ExiflangError
from . import batch_io
from .methods import DEFAULT_METHOD, FUSION_PER_SIDE


class BatchError(ExiflangError):
    """`exiflang batch` cannot run (Ray missing or unreachable, too few CPUs or GPUs, a worker that cannot start)."""


@dataclass(frozen=True)
class BatchOptions:
    """What a batch run does; the method options are `methods.build_method`'s."""

    method: str = DEFAULT_METHOD  # as `exiflang detect`
    model: str = "default"
    per_side: int = FUSION_PER_SIDE  # the density the default method was calibrated at
    batch_size: int | None = None  # patches per forward pass (None: 64 on a CPU, 256 on a GPU)
    seed: int = 0
    workers: int = 2  # actors (each builds the method once)
    threads: int = 1  # CPUs (torch threads) per actor
    gpus: float | None = 0.0  # GPUs per actor (0: CPU actors; None: one each where Ray sees GPUs, else 0)
    images_per_call: int = 4  # fewest images per actor call (a listing chunk: what a kill can lose per worker)
    rows_per_part: int = 256  # rows per Parquet part (a part is also written every `part_seconds`)
    part_seconds: float = 30.0
    maps_dir: str | None = None  # write each image's report files here (the names `exiflang detect --out` writes)
    compile: bool = False  # torch.compile each worker's image encoder (`models.compiled`): ~1 min start, then faster
    precision: str = "float32"  # the encoder's arithmetic (forensics.grid.PRECISIONS)

    @property
    def device(self) -> str:
        """The torch device of the actors."""
        return "cuda" if self.gpus else "cpu"

    def method_kwargs(self) -> dict:
        """The keywords of `methods.build_method`."""
        return {"model": self.model, "device": self.device, "per_side": self.per_side,
                "batch_size": self.batch_size or (256 if self.gpus else 64), "seed": self.seed,
                "precision": self.precision}

    def on_cluster(self, cluster_gpus: float) -> "BatchOptions":
        """The options with the automatic choices made for the cluster Ray sees (GPU actors where it has GPUs)."""
        gpus = self.gpus if self.gpus is not None else (1.0 if cluster_gpus >= self.workers else 0.0)
        return replace(self, gpus=gpus, batch_size=self.batch_size or (256 if gpus else 64))


def _row(path: str, sha: str | None, method: Any, name: str, digest: str, **values: Any) -> dict:
    """One table row (every column present; None where not measured)."""
    row = dict.fromkeys(c for c, _ in batch_io.COLUMNS)
    row.update(path=path, sha256=sha, method=name, model_id=getattr(method, "method_id", None),
               settings_digest=digest, **values)
    return row


class BatchAnalyser:
    """The Ray Data actor: the method built once, then each path of a batch analysed (or skipped, or failed)."""

    def __init__(self, options: dict, digest: str, done: Any = None, unread: Any = None) -> None:
        import ray
        import torch

        from .methods import build_method, settings_digest

        self.options = BatchOptions(**options)
        torch.set_num_threads(self.options.threads)
        self.method = build_method(self.options.method, **self.options.method_kwargs())
        if self.options.compile:
            _compile(self.method, self.options.method_kwargs()["batch_size"])
        self.digest = digest
        if settings_digest(self.options.method, self.method) != digest:  # another exiflang on this node
            raise BatchError(f"this worker's settings digest {settings_digest(self.options.method, self.method)} is "
                             f"not the driver's {digest}: install the same exiflang version on every node")
        fetch = lambda v: ray.get(v) if isinstance(v, ray.ObjectRef) else v  # noqa: E731
        self.done = np.asarray(fetch(done) if done is not None else [], dtype=np.uint64)
        self.unread = set(fetch(unread) or ())

    def _finished(self, path: str, sha: str | None) -> bool:
        """Whether the table already holds this file for these settings."""
        if sha is None:
            return path in self.unread
        key = batch_io.hash_key(sha)
        i = np.searchsorted(self.done, key)
        return bool(i < len(self.done) and self.done[i] == key)

    def analyse(self, path: str) -> dict:
        """The row of one file; ``_skipped`` is True (and nothing is analysed) when the table already holds it."""
        from .analysis import analyse_file, input_sha256, verdict_fields

        sha = input_sha256(Path(path))
        name, digest = self.options.method, self.digest
        if self._finished(path, sha):
            return {**_row(path, sha, self.method, name, digest), "_skipped": True}
        try:
            done = analyse_file(self.method, Path(path))
            if self.options.maps_dir:
                _write_maps(done, self.method, name, path, Path(self.options.maps_dir), sha, digest)
        except ExiflangError as exc:
            return _row(path, sha, self.method, name, digest, error=str(exc) if path in str(exc) else f"{path}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one file must never stop a million-image run; the row says what
            return _row(path, sha, self.method, name, digest, error=f"{path}: {type(exc).__name__}: {exc}")
        a = done.analysis
        h, w = a.shape
        said = verdict_fields(a)
        return _row(path, sha, self.method, name, digest, width=w, height=h, score=float(a.score),
                    probability=said["probability"], verdict=said["verdict"],
                    flagged_fraction=float(a.flagged_fraction), seconds=round(done.seconds, 4))

    def __call__(self, batch: Any) -> Any:
        """A pyarrow batch of listing chunks -> one row for each of their paths, plus ``_skipped`` (the driver counts
        those and drops them)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths = [p for chunk in batch.column("chunk").to_pylist()
                 for p in pq.read_table(chunk).column("path").to_pylist()]
        rows = [self.analyse(p) for p in paths]
        flags = [bool(r.pop("_skipped", False)) for r in rows]
        table = pa.Table.from_pylist(rows, schema=batch_io.schema())
        return table.append_column("_skipped", pa.array(flags, pa.bool_()))


def _compile(method: Any, batch_size: int) -> None:
    """Compile the image encoder of a method built on a model (the learned one, or fusion's learned part)."""
    from ..models.compiled import compile_image_encoder

    detector = getattr(getattr(method, "learned", method), "detector", None)
    if detector is not None:
        say = lambda line: print(f"batch worker: {line}", file=sys.stderr)  # noqa: E731
        compile_image_encoder(detector.model, batch_size, log=say)


def maps_stem(path: str, sha: str | None) -> str:
    """The report files' stem of an image under --maps: its name and content-hash prefix (a folder of a million
    files cannot rely on names being unique; the same content under two names still gets two stems)."""
    return f"{Path(path).stem}-{(sha or 'unread')[:12]}"


def _write_maps(done: Any, method: Any, name: str, path: str, maps_dir: Path, sha: str | None, digest: str) -> None:
    """The image's report files, as `exiflang detect --out` writes them, named by `maps_stem`."""
    from ..forensics import write_report
    from .light_report import write_light_report

    stem = maps_stem(path, sha)
    extra = {"input_sha256": sha, "settings_digest": digest}
    a, info = done.analysis, done.info
    if a.result is not None:
        a.result.source, a.result.orientation, a.result.seconds = path, info.orientation, done.seconds
        write_report(a.result, done.pixels, maps_dir, stem, extra)
    else:
        write_light_report(a, done.pixels, maps_dir, stem, method.method_id,
                           info={"method": name, "image": path, "seconds": round(done.seconds, 4), **extra},
                           orientation=info.orientation)


@dataclass
class Progress:
    """The run's progress: images done now, skipped (done before), failed, rate and estimate."""

    total: int
    settings_digest: str = ""
    analysed: int = 0  # rows written by this run (failures included)
    failed: int = 0
    skipped: int = 0  # already in the table
    started: float = field(default_factory=time.time)
    first_rows_at: float | None = None  # when the first rows came back (the workers had started)
    first_rows: int = 0

    def add(self, rows: int, failed: int, skipped: int) -> None:
        if rows and self.first_rows_at is None:
            self.first_rows_at, self.first_rows = time.time(), rows
        self.analysed += rows
        self.failed += failed
        self.skipped += skipped

    def snapshot(self) -> dict:
        """JSON-ready: counts, images per second of this run (start-up included), seconds left (from the rate
        since the first rows came back; None until it is known)."""
        now = time.time()
        elapsed = max(now - self.started, 1e-9)
        left = max(self.total - self.analysed - self.skipped, 0)
        steady = (self.analysed - self.first_rows) / (now - self.first_rows_at) if self.first_rows_at and (
            now > self.first_rows_at) else 0.0
        return {**asdict(self), "elapsed_s": round(elapsed, 1), "rate_per_s": round(self.analysed / elapsed, 4),
                "eta_s": 0.0 if not left else (round(left / steady, 1) if steady > 0 else None), "updated": now}

    def line(self) -> str:
        s = self.snapshot()
        eta = "?" if s["eta_s"] is None else _duration(s["eta_s"])
        return (f"batch: {self.analysed + self.skipped}/{self.total} images ({self.analysed} analysed, "
                f"{self.skipped} done before, {self.failed} failed), {s['rate_per_s']:.2f} img/s, ETA {eta}")


def _duration(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class PartWriter:
    """Buffers finished rows and writes them as table parts: when `rows_per_part` rows are waiting, or when rows
    arrive `part_seconds` after the last part (rows still in the buffer are what a kill of the driver loses)."""

    def __init__(self, out_dir: Path, rows_per_part: int, part_seconds: float) -> None:
        self.out_dir, self.rows_per_part, self.part_seconds = out_dir, rows_per_part, part_seconds
        self.run_id, self.seq, self.buffer, self.last = uuid.uuid4().hex[:8], 0, [], time.time()

    def add(self, table: Any, progress: Progress) -> None:
        if table.num_rows:
            self.buffer.append(table)
        due = time.time() - self.last >= self.part_seconds
        if sum(t.num_rows for t in self.buffer) >= self.rows_per_part or (due and self.buffer):
            self.flush(progress)

    def flush(self, progress: Progress) -> None:
        import pyarrow as pa

        self.last = time.time()
        if not self.buffer:
            batch_io.write_progress(self.out_dir, progress.snapshot())
            return
        table = pa.concat_tables(self.buffer)
        self.buffer = []
        batch_io.write_part(self.out_dir, f"part-{self.run_id}-{self.seq:06d}.parquet", table, progress.snapshot())
        self.seq += 1


def connect(address: str | None, cpus: int) -> None:
    """ray.init: an existing cluster at ``address``, else a local one with ``cpus`` CPUs (kept when this process
    already has one, as tests and notebooks do)."""
    try:
        import ray
    except ImportError:
        raise BatchError("exiflang batch needs Ray: pip install 'ray[data]'") from None
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cpus, **kwargs)  # the GPUs this machine has, as Ray detects them
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BatchError(f"cannot start or reach a Ray cluster{f' at {address}' if address else ''}: {exc}") from None


def _pipeline(chunks: list[str], options: BatchOptions, digest: str, done: Any, unread: Any):
    """The Ray Data dataset: read the listing chunks, analyse them on an actor pool, as pyarrow batches."""
    import logging
    import warnings

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # "only received N input(s)": a short list has fewer chunks than workers, which is no problem worth a warning
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # our own progress line says what the run has done
    # One block per chunk, each its own actor call: read_parquet would merge small chunk files into one block,
    # which one actor would then analyse alone (and hand back only at its end).
    names = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
    return names.map_batches(
        BatchAnalyser, batch_size=1, batch_format="pyarrow", zero_copy_batch=True,
        fn_constructor_kwargs={"options": asdict(options), "digest": digest, "done": done, "unread": unread},
        compute=ray.data.ActorPoolStrategy(size=options.workers), num_cpus=options.threads,
        num_gpus=options.gpus or None)


def _consume(dataset: Any, writer: PartWriter, progress: Progress, log: Callable[[str], None]) -> None:
    """Rows as they finish -> table parts; the progress line every few seconds."""
    import pyarrow.compute as pc

    last_line = 0.0
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        skipped = table.column("_skipped")
        rows = table.filter(pc.invert(skipped)).drop_columns(["_skipped"])
        failed = rows.num_rows - rows.column("error").null_count
        progress.add(rows.num_rows, failed, table.num_rows - rows.num_rows)
        writer.add(rows, progress)
        if time.time() - last_line >= 2.0:
            log(progress.line())
            last_line = time.time()


def _check_cpus(options: BatchOptions) -> None:
    """Refuse a pool that would take every CPU slot: Ray Data then has none left for its read tasks and the run
    waits forever (ray-project/ray issue 44687). A local cluster is started with one slot more than the pool."""
    import ray

    have, want = ray.cluster_resources().get("CPU", 0), options.workers * options.threads
    if want + 1 > have:
        raise BatchError(f"{options.workers} worker(s) x {options.threads} CPU need {want + 1:g} CPU slots on the Ray "
                         f"cluster (one is left for Ray Data's own tasks), it has {have:g}: use fewer --workers")
    if options.gpus and ray.cluster_resources().get("GPU", 0) < options.workers * options.gpus:
        raise BatchError(f"{options.workers} worker(s) x {options.gpus:g} GPU need more GPUs than the Ray cluster has "
                         f"({ray.cluster_resources().get('GPU', 0):g})")


def run_batch(inputs: list[str], out_dir: Path, options: BatchOptions, *, address: str | None = None,
              overwrite: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Analyse every image the inputs name into the table in ``out_dir`` (skipping those already there for the
    same settings); return the final progress (counts, rate). See the module docstring."""
    from .methods import build_method, settings_digest

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for part in batch_io.part_files(out_dir):
            part.unlink()
    method = build_method(options.method, **{**options.method_kwargs(), "device": "cpu", "batch_size": 64})  # digest
    digest = settings_digest(options.method, method)
    del method
    chunks, total = batch_io.write_input_chunks(batch_io.iter_inputs(inputs), out_dir / ".inputs",
                                                 options.workers, options.images_per_call)
    if not total:
        raise BatchError(f"no images found in {' '.join(inputs)}")
    done, unread = batch_io.done_keys(out_dir, digest)
    connect(address, options.workers * options.threads + 1)
    import ray

    options = options.on_cluster(ray.cluster_resources().get("GPU", 0))
    _check_cpus(options)

    progress, writer = Progress(total, digest), PartWriter(out_dir, options.rows_per_part, options.part_seconds)
    log(f"batch: {total} images listed, {len(done) + len(unread)} rows already in {out_dir} for these settings "
        f"(digest {digest}); {options.workers} worker(s) x {options.threads} CPU")
    try:
        _consume(_pipeline(chunks, options, digest, ray.put(done), ray.put(sorted(unread))), writer, progress, log)
    except ray.exceptions.RayError as exc:  # a worker that cannot start (a digest mismatch, no model there)
        raise BatchError(f"the Ray pipeline stopped: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        writer.flush(progress)  # whatever finished is kept, also when the run stops
    log(progress.line())
    return progress.snapshot()
