"""One long-lived ExifTool process (`-stay_open`) that reads many files, with a per-file time limit."""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from .errors import ExifReadError

_READY = b"{ready}"
# -G0: family-0 group prefix ("EXIF:Make"), so EXIF, MakerNotes and XMP tags stay apart.
# -charset filename=utf8: file names are passed as UTF-8. -api LargeFileSupport: no 2 GB limit.
_COMMON_ARGS = ["-j", "-G0", "-charset", "filename=utf8", "-api", "LargeFileSupport=1"]
# What we ask for: all EXIF tags, the editing-software fields used to reject edited photos,
# ExifTool's own Error/Warning, and the detected file type. IFD1 (the thumbnail's IFD) is skipped: its
# Compression/resolution describe the thumbnail, not the photo.
_TAG_ARGS = ["-EXIF:all", "--IFD1:all", "-XMP:CreatorTool", "-XMP:HistorySoftwareAgent", "-XMP:HistoryAction",
             "-ExifTool:Error", "-ExifTool:Warning", "-File:FileType", "-File:MIMEType"]


def find_exiftool() -> str | None:
    """Path of the exiftool executable ($EXIFTOOL, else PATH), or None."""
    override = os.environ.get("EXIFTOOL")
    if override:
        return override if Path(override).is_file() else None
    return shutil.which("exiftool")


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_spawner: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, its one thread)
_spawner_lock = threading.Lock()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn (Linux) that makes the child receive SIGKILL when its parent dies, even by kill -9.

    ExifTool in -stay_open mode does not exit when its stdin pipe closes: it polls for more input (about
    100 times a second) forever. None where prctl is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent, kill = os.getpid(), int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect: nobody would ever read us
            os._exit(1)

    return preexec


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """Start a child with pipes on stdin/stdout/stderr that dies with this process (on Linux)."""
    preexec = _die_with_parent()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=preexec)

    return start() if preexec is None else _spawner_thread().submit(start).result()


def _spawner_thread() -> ThreadPoolExecutor:
    """The one thread that forks every ExifTool of this process.

    Linux sends the parent-death signal when the *thread* that forked the child ends, not the process: an
    ExifTool started on a short-lived worker thread would be killed with that thread. This thread lives as long
    as the process (a forked child makes its own).
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            _spawner = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="exiflang-exiftool-spawn"))
        return _spawner[1]


class ExifToolProcess:
    """A batch ExifTool process: `read(path)` returns ExifTool's JSON object for that file."""

    def __init__(self, executable: str | None = None, makernotes: bool = False, timeout: float = 10.0,
                 tag_args: list[str] | None = None):
        self.executable = executable or find_exiftool()
        if not self.executable:
            raise FileNotFoundError("exiftool not found (install libimage-exiftool-perl or set $EXIFTOOL)")
        self.timeout = timeout
        # -fast2 skips MakerNote parsing and trailer scans (about 30% less CPU, identical EXIF output on the
        # shared photos); with MakerNotes requested only -fast (no trailer scan) is safe.
        self.tag_args = _TAG_ARGS + (["-MakerNotes:all", "-fast"] if makernotes else ["-fast2"])
        if tag_args is not None:  # another selection (exif.provenance reads XMP, IPTC and the thumbnail's IFD too)
            self.tag_args = list(tag_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: deque[bytes] = deque(maxlen=200)
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        """Start the ExifTool process if it is not running."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = _spawn([self.executable, "-stay_open", "True", "-@", "-", "-common_args", *_COMMON_ARGS])
            os.set_blocking(self._proc.stdout.fileno(), False)
            # stderr is drained by a thread so that a chatty file can never block ExifTool.
            threading.Thread(target=self._drain, args=(self._proc,), daemon=True).start()
        return self._proc

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the last lines of stderr for error messages."""
        for line in proc.stderr:
            self._stderr.append(line)

    def version(self) -> str:
        """ExifTool's version string ("unknown" when it does not answer within the time limit)."""
        try:
            out = subprocess.run([self.executable, "-ver"], capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return out.stdout.strip() or "unknown"

    def read(self, path: str | Path) -> dict[str, Any]:
        """Read one file; raise ExifReadError on a time-out or when ExifTool reports no result."""
        path = str(path)
        if "\n" in path or "\r" in path:
            raise ExifReadError(path, "file names containing line breaks cannot be passed to ExifTool")
        # A relative name starting with "-" would be taken for an option.
        arg = f"./{path}" if path.startswith("-") else path
        with self._lock:
            proc = self._start()
            args = "\n".join([*self.tag_args, arg, "-execute", ""])
            try:
                proc.stdin.write(args.encode("utf-8", "surrogateescape"))
                proc.stdin.flush()
                raw = self._read_until_ready(proc, path)
            except (BrokenPipeError, OSError) as exc:
                self._kill()
                raise ExifReadError(path, f"ExifTool died ({exc}); {self._last_stderr()}") from exc
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            raise ExifReadError(path, f"ExifTool returned nothing; {self._last_stderr()}")
        try:
            data = json.loads(text, parse_float=str, parse_int=str)  # keep numbers as ExifTool printed them
        except json.JSONDecodeError as exc:
            raise ExifReadError(path, f"ExifTool output is not JSON ({exc})") from exc
        if not data:
            raise ExifReadError(path, "ExifTool returned no record")
        return data[0]

    def _read_until_ready(self, proc: subprocess.Popen[bytes], path: str) -> bytes:
        """Collect stdout up to the "{ready}" line, killing ExifTool when the time limit passes."""
        deadline = time.monotonic() + self.timeout
        chunks: list[bytes] = []
        tail = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise ExifReadError(path, f"ExifTool took longer than {self.timeout:g} s (killed, restarting)")
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    self._kill()
                    raise ExifReadError(path, f"ExifTool exited unexpectedly; {self._last_stderr()}")
                chunks.append(chunk)
                tail = (tail + chunk)[-64:]
                if tail.rstrip().endswith(_READY):
                    break
        out = b"".join(chunks).rstrip()
        return out[: -len(_READY)]

    def _last_stderr(self) -> str:
        """The last stderr line, for error messages."""
        return self._stderr[-1].decode("utf-8", "replace").strip() if self._stderr else "no message"

    def _kill(self) -> None:
        """Kill the process (a hung read); the next read starts a fresh one."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        """Ask ExifTool to exit, killing it if it does not."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.write(b"-stay_open\nFalse\n")
            proc.stdin.flush()
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to clean up safely
            pass
