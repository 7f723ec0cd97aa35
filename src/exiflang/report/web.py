"""The local web app of `exiflang serve`: upload photos, watch the analysis run, read the per-image report.

FastAPI on uvicorn, bound to 127.0.0.1 by default, so only this computer can reach it. Nothing leaves the
machine: the page loads no outside resource (inline CSS/JS; a Content-Security-Policy that allows only this
server), uploads are analysed here with the built-in (or given) model and kept in a temporary folder that is
deleted when the server stops. While bound to loopback, requests naming another host are refused (a guard
against DNS rebinding), and a request that changes state (an upload) is accepted from the app's own page only:
a browser's ``Origin`` must be the address the request was sent to (403 otherwise), so no other web page the
user visits can make this machine analyse.

Routes:
* ``GET /``: the upload page (one or several images; a progress bar for the upload, then for the analysis).
* ``POST /api/jobs``: multipart ``files``; 202 ``{"job": ID, ...}``. Limits, each refused with a clear message:
  the jobs waiting for the analyser (429 beyond ``max_queued``), the request size (413 over
  ``max_upload_bytes``; 411 without a Content-Length), the number of files (413 over ``max_files``), and the
  pixels per image (reported for that file, as a failed analysis).
* ``GET /api/jobs/ID``: state (queued / running / done / failed), done / total, the current file, per-file
  results (score, probability, verdict, or the error).
* ``GET /api/jobs/ID/report``: the report's HTML (the same per-image report as `detect --out`'s index.html),
  images under ``/jobs/ID/``; ``GET /jobs/ID/`` is that report as a page of its own.
"""
# No `from __future__ import annotations` here: FastAPI reads the route handlers' annotations (Request) at run time.

import ipaddress
import json
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExiflangError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_FILES = 20
DEFAULT_MAX_MEGAPIXELS = 50.0
DEFAULT_MAX_QUEUED = 4  # uploads waiting for the analyser (one runs at a time); more are refused with 429
JOBS_KEPT = 20  # older jobs' folders are deleted
SERVED_SUFFIXES = {".png", ".jpg", ".html", ".json"}
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class ServeError(ExiflangError):
    """The web app cannot start (a missing dependency, a bad option); the message says why."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """What the app analyses with, and its limits."""

    model: str = "default"
    device: str = "cpu"
    method: str = "fusion"  # as `exiflang detect`: the same file gets the same verdict from either
    per_side: int | None = None  # None: the density the method's verdict was calibrated at
    batch_size: int = 64
    exif_check: bool = True
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1_000_000)
    max_files: int = DEFAULT_MAX_FILES
    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1_000_000)
    max_queued: int = DEFAULT_MAX_QUEUED
    loopback_only: bool = True  # refuse requests whose Host header is not a loopback name
    work_dir: Path | None = None  # where uploads and reports go (default: a temporary folder)


@dataclass
class Job:
    """One upload: its files and how far their analysis got."""

    id: str
    folder: Path
    names: list[str]
    paths: list[Path]
    state: str = "queued"  # queued | running | done | failed
    stage: str = "waiting"  # waiting | detect | report | done
    done: int = 0
    current: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    created: float = field(default_factory=time.time)
    report: Any = None  # exiflang.report.html.Report once done
    fraction: float = 0.0  # share of the current image done (its analysis steps, metadata checks, report)
    image_started: float | None = None  # when the current image's analysis began
    seconds: list[float] = field(default_factory=list)  # how long each finished image took
    # `done` and `fraction` change together when an image finishes; a status request between the two assignments
    # would show the bar one image ahead, then going back.
    _progress_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def finish_image(self, seconds: float) -> None:
        """Count the current image as done (its time kept for the estimate) and start the next at 0."""
        with self._progress_lock:
            self.seconds.append(seconds)
            self.done, self.fraction = self.done + 1, 0.0

    def eta_seconds(self) -> float | None:
        """Seconds left: the mean time per finished image for those left, else this image's own rate so far."""
        total, now = len(self.names), time.time()
        spent = now - self.image_started if self.image_started else 0.0
        if self.seconds:
            per_image = sum(self.seconds) / len(self.seconds)
            return max(0.0, per_image * (total - self.done) - min(spent, per_image))
        if self.fraction > 0.05:  # the first image: extrapolate from its own progress
            per_image = spent / self.fraction
            return max(0.0, per_image * (total - self.done) - spent)
        return None

    def to_dict(self) -> dict[str, Any]:
        with self._progress_lock:
            eta = self.eta_seconds() if self.state == "running" else None
            done, fraction = self.done, self.fraction
        return {"job": self.id, "state": self.state, "stage": self.stage, "done": done,
                "total": len(self.names), "current": self.current, "files": self.names,
                "fraction": round(fraction, 4), "eta_s": None if eta is None else round(eta, 1),
                "results": list(self.results), "error": self.error,
                "report_url": f"/jobs/{self.id}/" if self.state == "done" else None}


def _safe_name(name: str, index: int) -> str:
    """The upload's base name, without directories or odd characters (kept readable for the report)."""
    base = Path(name.replace("\\", "/")).name.strip() or f"upload-{index}"
    base = re.sub(r"[^\w.\- ()+,]", "_", base)[:120]
    return base if base not in (".", "..") else f"upload-{index}"


class QueueFullError(ExiflangError):
    """As many uploads as allowed are already waiting for the analyser."""


class Analyser:
    """Runs jobs one at a time on a worker thread (one model in memory, one analysis at a time)."""

    def __init__(self, config: ServeConfig, root: Path) -> None:
        self.config = config
        self.root = root
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="exiflang-serve-analyser", daemon=True)
        self._thread.start()

    def waiting(self) -> int:
        """Jobs queued and not started yet."""
        with self._lock:
            return sum(job.state == "queued" for job in self.jobs.values())

    def check_room(self) -> None:
        """QueueFullError when `max_queued` jobs are waiting already."""
        if self.waiting() >= self.config.max_queued:
            raise QueueFullError(f"the queue is full: {self.config.max_queued} upload(s) already wait for the "
                                 f"analysis; try again when one has finished (exiflang serve --max-queued)")

    def submit(self, names: list[str], blobs: list[bytes]) -> Job:
        self.check_room()
        job_id = uuid.uuid4().hex[:12]
        folder = self.root / job_id
        paths = []
        for i, (name, blob) in enumerate(zip(names, blobs), 1):
            sub = folder / "uploads" / str(i)
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / _safe_name(name, i)
            path.write_bytes(blob)
            paths.append(path)
        job = Job(job_id, folder, [p.name for p in paths], paths)
        with self._lock:
            self.jobs[job_id] = job
            for old in sorted(self.jobs.values(), key=lambda j: j.created)[:-JOBS_KEPT]:
                if old.state in ("done", "failed"):
                    self.jobs.pop(old.id, None)
                    shutil.rmtree(old.folder, ignore_errors=True)
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def stop(self) -> None:
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception as exc:  # noqa: BLE001 - a job must never kill the worker; the page shows the cause
                job.state, job.error = "failed", f"the analysis stopped: {type(exc).__name__}: {exc}"

    def _run(self, job: Job) -> None:
        from exiflang.eval.file_analysis import analyse_and_report
        from exiflang.eval.methods import build_method, default_per_side
        from exiflang.report.html import build_report, save_page

        cfg = self.config
        job.state, job.stage = "running", "detect"
        method = build_method(cfg.method, cfg.model, None, cfg.device, cfg.per_side or default_per_side(cfg.method),
                              cfg.batch_size)
        items = []
        for i, (name, path) in enumerate(zip(job.names, job.paths), 1):
            job.current, job.fraction, job.image_started = name, 0.0, time.time()
            stem = f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', path.stem)[:60]}"
            record: dict[str, Any] = {"name": name, "ok": False}
            try:
                row = analyse_and_report(method, cfg.method, path, job.folder, stem, max_pixels=cfg.max_pixels,
                                         progress=lambda fraction: setattr(job, "fraction", fraction))
                row["seconds"] = round(row["seconds"], 3)
                record.update(ok=True, error=None, model_id=method.method_id, **row)
            except ExiflangError as exc:  # one file's problem (unreadable, too small, unwritable): the job goes on
                record["error"] = str(exc).replace(str(path), name)
            items.append((str(path), stem, record.get("error")))
            job.results.append(record)
            job.finish_image(time.time() - job.image_started)
        job.stage, job.current = "report", None
        report = build_report(job.folder, items, model=cfg.model, device=cfg.device, exif_check=cfg.exif_check)
        save_page(report, job.folder, title=f"exiflang report: {len(items)} uploaded image{'s' * (len(items) != 1)}",
                  show_paths=False)
        job.report = report
        job.state, job.stage = "done", "done"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1_000_000:.1f} MB"


def _page(cfg: ServeConfig) -> str:
    from .render import render_app

    limits = (f"Up to {cfg.max_files} images per upload, {_mb(cfg.max_upload_bytes)} in all, "
              f"{cfg.max_pixels / 1_000_000:g} megapixels each. JPEG, PNG, TIFF, WebP, HEIC/HEIF, …")
    return render_app(limits, cfg.max_upload_bytes, cfg.max_files)


def create_app(config: ServeConfig | None = None):
    """The FastAPI application (uploads, progress, reports) for `config`."""
    try:
        from fastapi import FastAPI
    except ImportError as exc:  # pragma: no cover - fastapi is a dependency
        raise ServeError(f"exiflang serve needs FastAPI and uvicorn ({exc}); run ./setup.sh") from exc
    from contextlib import asynccontextmanager

    cfg = config or ServeConfig()
    own_dir = cfg.work_dir is None
    root = Path(tempfile.mkdtemp(prefix="exiflang-serve-")) if own_dir else Path(cfg.work_dir)
    root.mkdir(parents=True, exist_ok=True)
    analyser = Analyser(cfg, root)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        analyser.stop()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(title="exiflang", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.analyser, app.state.config = analyser, cfg
    _add_middleware(app, cfg)
    _add_page_routes(app, cfg)
    _add_upload_route(app, cfg, analyser)
    _add_job_routes(app, analyser)
    return app


def _add_middleware(app, cfg: ServeConfig) -> None:
    """Same-origin guard (Host on loopback, Origin on uploads), and headers that keep the page from loading
    anything else."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        problem = request_problem(request.method, request.headers, cfg.loopback_only)
        if problem:
            return JSONResponse({"detail": problem}, status_code=403)
        return await call_next(request)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def request_problem(method: str, headers, loopback_only: bool) -> str | None:
    """Why a request must be refused (403), or None.

    * DNS rebinding: while bound to loopback the Host header must name a loopback address (a page of
      evil.example re-pointed at 127.0.0.1 still sends `Host: evil.example`).
    * Cross-site requests: a request that changes state (POST, ...) sent by a browser must come from this app's
      own page, i.e. its `Origin` is the very address the request went to (`http://` + Host: the served host and
      port, or the local end of a port forward). `Sec-Fetch-Site` is checked where a browser sends no Origin.
      Clients that are not browsers (curl, scripts) send neither and are let through: a web page cannot.
    """
    host = headers.get("host", "")
    if loopback_only and not is_loopback(_host_name(host)):
        return f"this server answers requests for its loopback address only, not for host {host!r}"
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        return f"requests from other web pages are refused (Origin {origin!r} is not http://{host})"
    fetch_site = headers.get("sec-fetch-site", "same-origin")
    if origin is None and fetch_site.lower() not in ("same-origin", "none"):
        return f"requests from other web pages are refused (Sec-Fetch-Site: {fetch_site})"
    return None


def _host_name(host: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _add_page_routes(app, cfg: ServeConfig) -> None:
    from fastapi.responses import HTMLResponse, Response

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(_page(cfg))

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)


async def _drain(request, cap: int) -> None:
    """Read and drop a refused body (up to cap bytes) so the client gets to read the answer."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            break


def _add_upload_route(app, cfg: ServeConfig, analyser: Analyser) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse

    def refuse(status: int, detail: str) -> JSONResponse:
        retry = {"Retry-After": "10"} if status == 429 else None  # the queue empties as jobs finish
        return JSONResponse({"detail": detail}, status_code=status, headers=retry)

    @app.post("/api/jobs")
    async def create_job(request: Request):
        try:
            analyser.check_room()  # before reading the body: a full queue costs no upload
        except QueueFullError as exc:
            await _drain(request, 4 * cfg.max_upload_bytes + 1_000_000)
            return refuse(429, str(exc))
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return refuse(411, "uploads need a Content-Length header (chunked uploads are refused)")
        if int(length) > cfg.max_upload_bytes:
            await _drain(request, 4 * cfg.max_upload_bytes + 1_000_000)
            return refuse(413, f"the upload is {_mb(int(length))}, over the limit of {_mb(cfg.max_upload_bytes)} "
                               f"per upload (exiflang serve --max-upload-mb)")
        try:
            form = await request.form(max_files=cfg.max_files + 1, max_fields=20)
        except Exception as exc:  # noqa: BLE001 - a malformed multipart body: say so instead of a 500
            if "too many files" in str(exc).lower():  # the parser stops counting past the limit
                return refuse(413, f"more than {cfg.max_files + 1} files uploaded; at most {cfg.max_files} per "
                                   f"upload (exiflang serve --max-files)")
            return refuse(400, f"cannot read the upload as multipart form data ({exc})")
        uploads = [f for f in form.getlist("files") if hasattr(f, "read")]
        if not uploads:
            return refuse(400, "choose at least one image to upload (form field 'files')")
        if len(uploads) > cfg.max_files:
            return refuse(413, f"{len(uploads)} files uploaded; at most {cfg.max_files} per upload "
                               f"(exiflang serve --max-files)")
        names, blobs = [], []
        for i, up in enumerate(uploads, 1):
            names.append(up.filename or f"upload-{i}")
            blobs.append(await up.read())
            await up.close()
        try:
            job = analyser.submit(names, blobs)
        except QueueFullError as exc:  # filled up while this upload was read
            return refuse(429, str(exc))
        return JSONResponse(job.to_dict(), status_code=202)


def _add_job_routes(app, analyser: Analyser) -> None:
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    def find(job_id: str) -> Job | None:
        return analyser.get(job_id) if re.fullmatch(r"[0-9a-f]{12}", job_id) else None

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str):
        job = find(job_id)
        if job is None:
            return JSONResponse({"detail": f"no job {job_id} (jobs are forgotten when the server stops)"},
                                status_code=404)
        return JSONResponse(json.loads(json.dumps(job.to_dict(), default=float)))

    @app.get("/api/jobs/{job_id}/report", response_class=HTMLResponse)
    def job_report(job_id: str):
        job = find(job_id)
        if job is None or job.report is None:
            return HTMLResponse("<p>No report (yet) for this job.</p>", status_code=404)
        return HTMLResponse(job.report.body(prefix=f"/jobs/{job.id}/", show_paths=False))

    @app.get("/jobs/{job_id}/{name}")
    def job_file(job_id: str, name: str):
        job = find(job_id)
        bad = "/" in name or "\\" in name or name.startswith(".") or Path(name).suffix not in SERVED_SUFFIXES
        path = None if job is None or bad else job.folder / name
        if path is None or not path.is_file():
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(path)

    @app.get("/jobs/{job_id}/")
    def job_page(job_id: str):
        return job_file(job_id, "index.html")


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: ServeConfig | None = None,
          log=print) -> None:
    """Run the app with uvicorn until interrupted (port 0: a free port, printed)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - uvicorn is a dependency
        raise ServeError(f"exiflang serve needs uvicorn ({exc}); run ./setup.sh") from exc
    cfg = config or ServeConfig()
    cfg.loopback_only = is_loopback(host)
    listener = _listen(host, port)  # bound here: a taken port is one clear error, and port 0 gets its number
    try:
        app = create_app(cfg)
        shown = f"[{host}]" if ":" in host else host
        log(f"exiflang serve: open http://{shown}:{listener.getsockname()[1]}/ in a browser (Ctrl+C stops the server)")
        if cfg.loopback_only:
            log("exiflang serve: listening on the loopback address only: nobody else can reach this page")
        else:
            log(f"exiflang serve: WARNING: listening on {host}: other machines on the network can upload photos here")
        threading.Thread(target=_warm_up, args=(cfg,), daemon=True).start()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[listener])
    finally:
        listener.close()


def _listen(host: str, port: int):
    """A socket listening on host:port, or ServeError saying why not (port taken, host not on this machine)."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server running "
                         f"there? Choose another --port") from exc
    return sock


def _warm_up(cfg: ServeConfig) -> None:
    """Load the model in the background so the first upload does not wait for it."""
    try:
        from exiflang.forensics import resolve_model

        resolve_model(cfg.model, cfg.device)
    except ExiflangError:
        pass  # the first job reports the problem


__all__ = ["Analyser", "DEFAULT_HOST", "DEFAULT_PORT", "Job", "QueueFullError", "ServeConfig", "ServeError",
           "create_app", "is_loopback", "request_problem", "serve"]
