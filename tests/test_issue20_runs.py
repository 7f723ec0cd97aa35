"""Issue 20, the rows about training runs, child processes and the web server, each reproduced on real files.

* 3: `train --text-features FILE` overwrites only a text-feature cache (never a model's weights or another file).
* 7: `train --out RUN` refuses a folder that holds a run unless --resume or --overwrite says what to do.
* 9: a killed `index` takes its ExifTool children along; SIGTERM leaves no temporary file; the next run removes
  those of a run killed outright.
* 10: `serve` accepts uploads from its own page only (Origin, Host) and bounds its queue and jobs.
* 16 (part): `serve --port 0` prints the real port; a cut `records.jsonl` trains with a warning, a damaged one
  is refused.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_helpers import run_cli, stop_process
from exiflang.cli import main

from photo_helpers import shared_photos
from train_helpers import make_small_index

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
TRAIN = ["--photos-per-batch", "4", "--crops-per-photo", "2", "--val-fraction", "0.25", "--eval-crops", "2",
         "--threads", "1", "--no-progress", "--warmup", "1", "--steps", "2", "--eval-every", "100"]


def _cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    return run_cli(capsys, argv)


def _one_line(err: str) -> str:
    """The only line on stderr (no traceback, nothing else)."""
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder (hidden ones included) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def index(photos_dir, tmp_path_factory) -> Path:
    return make_small_index(photos_dir, tmp_path_factory.mktemp("issue20-runs"), n_photos=12)


@pytest.fixture(scope="module")
def frozen_tiny(tmp_path_factory) -> Path:
    """The tiny config with its text tower frozen: the configuration that reads and writes the feature cache."""
    from exiflang.models.factory import resolve_config

    config = resolve_config("tiny").to_dict()
    config["name"], config["text"]["train_backbone"] = "tiny-frozen-text", False
    path = tmp_path_factory.mktemp("config") / "tiny-frozen.json"
    path.write_text(json.dumps(config))
    return path


# ---------------------------------------------------------------- 3: --text-features names another file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A real model folder's weights file (what the issue's user overwrote)."""
    from exiflang.models import create_model, save_model

    folder = save_model(create_model("tiny", seed=3), tmp_path_factory.mktemp("model") / "tiny")
    return Path(folder) / "model.safetensors"


def test_text_features_refuses_a_model_weights_file(index, frozen_tiny, model_file, tmp_path, capsys):
    before = model_file.read_bytes()
    out = tmp_path / "run"
    code, _, err = _cli(capsys, ["train", "--index", str(index), "--config", str(frozen_tiny), *TRAIN,
                                 "--out", str(out), "--text-features", str(model_file)])
    line = _one_line(err)
    assert code == 2 and str(model_file) in line and "not a text-feature cache" in line and "model tiny-" in line
    assert "refusing to overwrite it" in line
    assert model_file.read_bytes() == before  # the weights are untouched
    assert not out.exists()  # refused before the run started


def test_text_features_refuses_a_file_that_is_not_safetensors(index, frozen_tiny, photos_dir, tmp_path, capsys):
    photo = tmp_path / "photo.safetensors"  # a real JPEG under a misleading name
    shutil.copy(shared_photos(photos_dir, 1)[0], photo)
    before = photo.read_bytes()
    code, _, err = _cli(capsys, ["train", "--index", str(index), "--config", str(frozen_tiny), *TRAIN,
                                 "--out", str(tmp_path / "run"), "--text-features", str(photo)])
    line = _one_line(err)
    assert code == 2 and str(photo) in line and "not a safetensors file" in line
    assert photo.read_bytes() == before and not (tmp_path / "run").exists()


def test_text_feature_cache_is_marked_and_reused_old_caches_too(index, frozen_tiny, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "features.safetensors"
    common = ["train", "--index", str(index), "--config", str(frozen_tiny), *TRAIN, "--text-features", str(cache)]
    assert _cli(capsys, [*common, "--out", str(tmp_path / "a")])[0] == 0
    with safe_open(str(cache), framework="pt") as f:
        metadata = f.metadata()
    assert metadata["exiflang"] == "text-features" and "backbone" in metadata
    # A cache written before the marker existed (backbone metadata only) is still ours: used, and marked again.
    save_file(load_file(str(cache)), str(cache), metadata={"backbone": metadata["backbone"]})
    assert _cli(capsys, [*common, "--out", str(tmp_path / "b")])[0] == 0
    assert (tmp_path / "b" / "model").is_dir()


# ---------------------------------------------------------------- 7: --out an existing run


def test_train_refuses_to_replace_a_finished_run(index, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--index", str(index), "--config", "tiny", *TRAIN, "--out", str(run)]
    assert _cli(capsys, base)[0] == 0
    before = _snapshot(run)
    assert "model/model.safetensors" in before and "checkpoint.safetensors" in before

    code, _, err = _cli(capsys, [*base, "--seed", "1"])
    line = _one_line(err)
    assert code == 2 and f"{run} already holds a training run" in line
    assert "checkpoint.safetensors and model/" in line and "--resume" in line and "--overwrite" in line
    assert _snapshot(run) == before  # nothing replaced, not even the metrics

    code, _, err = _cli(capsys, [*base, "--resume", "--overwrite"])
    assert code == 2 and "give one of them" in _one_line(err) and _snapshot(run) == before

    assert _cli(capsys, [*base, "--seed", "1", "--overwrite"])[0] == 0  # asked for: a new run replaces it
    after = _snapshot(run)
    assert after["model/model.safetensors"] != before["model/model.safetensors"]


def test_train_refuses_a_killed_run_without_resume(index, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--index", str(index), "--config", "tiny", *TRAIN, "--out", str(run), "--steps", "3"]
    assert _cli(capsys, [*base, "--stop-at", "1"])[0] == 0  # a run 'killed' after step 1: a checkpoint, no model
    before = _snapshot(run)
    code, _, err = _cli(capsys, base)
    line = _one_line(err)
    assert code == 2 and "(checkpoint.safetensors)" in line and "continue it with --resume" in line
    assert _snapshot(run) == before
    code, out, _ = _cli(capsys, [*base, "--resume"])
    assert code == 0 and "model saved" in out


# ---------------------------------------------------------------- 16: a cut records.jsonl


def _index_copy(index: Path, dest: Path) -> tuple[Path, list[str]]:
    shutil.copytree(index, dest)
    return dest, (dest / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def test_a_cut_last_record_line_trains_with_a_warning(index, tmp_path, capsys):
    copy, lines = _index_copy(index, tmp_path / "index")
    (copy / "records.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")
    before = _snapshot(copy)
    code, out, err = _cli(capsys, ["train", "--index", str(copy), "--config", "tiny", *TRAIN,
                                   "--out", str(tmp_path / "run")])
    assert code == 0 and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {copy / 'records.jsonl'}: 1 unreadable line (the last, cut short): that photo "
                        f"is left out, {len(lines) - 1} are used"]
    counts = out.split("exiflang train: ")[1].split(" skipped")[0]  # "N training photos, M held out, K"
    n_train, n_val = int(counts.split()[0]), int(counts.split(", ")[1].split()[0])
    assert n_train + n_val == len(lines) - 1
    assert _snapshot(copy) == before


def test_a_broken_record_line_before_others_is_refused(index, tmp_path, capsys):
    copy, lines = _index_copy(index, tmp_path / "index")
    lines[1] = lines[1][:40] + "\n"
    (copy / "records.jsonl").write_text("".join(lines), encoding="utf-8")
    code, _, err = _cli(capsys, ["train", "--index", str(copy), "--config", "tiny", *TRAIN,
                                 "--out", str(tmp_path / "run")])
    line = _one_line(err)
    assert code == 2 and "records.jsonl: line 2 is not JSON and more lines follow" in line and "exiflang index" in line
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 9: a killed index


def _exiftool_children(pid: int) -> list[int]:
    """Live ExifTool processes whose parent is pid (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
        if ppid == pid and b"exiftool" in cmdline and b"-stay_open" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie has died; only its entry is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _index_until_exiftool_runs(photos_dir: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    """`exiflang index` of the shared photos as a child process, once its ExifTool processes are running."""
    proc = subprocess.Popen([sys.executable, "-m", "exiflang", "index", str(photos_dir), "--out", str(out), "--quiet"],
                            env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        children = _exiftool_children(proc.pid)
        if children:
            return proc, children
        if proc.poll() is not None:
            pytest.fail(f"index ended ({proc.returncode}) before its ExifTool started: {proc.stderr.read()!r}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("index started no ExifTool within 120 s")


def _wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


needs_linux_exiftool = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("exiftool") is None,
    reason="needs Linux (/proc, prctl) and exiftool on PATH")


@needs_linux_exiftool
def test_kill_9_of_index_takes_its_exiftool_along_and_the_next_run_tidies_up(photos_dir, tmp_path):
    out = tmp_path / "index"
    proc, children = _index_until_exiftool_runs(photos_dir, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert _wait_gone(children) == [], "ExifTool outlived the killed index"
    left = sorted(p.name for p in out.glob(".*.tmp"))
    assert left == [f".records.jsonl.{proc.pid}.tmp", f".rejects.jsonl.{proc.pid}.tmp"]  # SIGKILL can't be caught
    # The next run into the folder (here of two photos: quick) deletes what the killed one left.
    small = tmp_path / "two"
    small.mkdir()
    for photo in shared_photos(photos_dir, 2):
        shutil.copy(photo, small / photo.name)
    done = subprocess.run([sys.executable, "-m", "exiflang", "index", str(small), "--out", str(out), "--quiet"],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "records.jsonl", "rejects.jsonl",
                                                     "tag_counts.json"]


@needs_linux_exiftool
def test_sigterm_of_index_leaves_no_tmp_and_the_previous_index_intact(photos_dir, tmp_path):
    out = tmp_path / "index"
    small = tmp_path / "two"
    small.mkdir()
    for photo in shared_photos(photos_dir, 2):
        shutil.copy(photo, small / photo.name)
    assert main(["index", str(small), "--out", str(out), "--quiet"]) == 0  # the previous index
    before = _snapshot(out)
    proc, children = _index_until_exiftool_runs(photos_dir, out)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # it still dies of the signal, after cleaning up
    assert b"Traceback" not in proc.stderr.read()
    assert _wait_gone(children) == []
    assert _snapshot(out) == before  # no .tmp left, the previous index as it was


# ---------------------------------------------------------------- 10 and 16: serve


def _request(url: str, *, method: str = "GET", data: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _upload(base: str, files: list[Path], headers: dict | None = None) -> tuple[int, dict, dict]:
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{p.name}"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n".encode() + p.read_bytes() + b"\r\n" for p in files)
    body += f"--{boundary}--\r\n".encode()
    status, answer_headers, answer = _request(
        base + "/api/jobs", method="POST", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})})
    return status, answer_headers, json.loads(answer)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`exiflang serve --port 0` (loopback), one upload allowed to wait, at most 3 images per upload."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "exiflang", "serve", "--port", "0", "--per-side", "6",
                                 "--max-queued", "1", "--max-files", "3"],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV)
    try:
        deadline = time.monotonic() + 90
        while "open http://" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"exiflang serve did not start ({proc.poll()}):\n{log.read_text()}")
            time.sleep(0.2)
        first = log.read_text().splitlines()[0]
        base = first.split("open ")[1].split("/ in a browser")[0]
        yield SimpleNamespace(base=base, port=int(base.rsplit(":", 1)[1]), log=log, proc=proc)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def photos(photos_dir) -> list[Path]:
    return shared_photos(photos_dir, 4)


def test_serve_port_0_prints_the_port_it_listens_on(server):
    assert server.port != 0 and server.base == f"http://127.0.0.1:{server.port}"
    status, _, body = _request(server.base + "/")
    assert status == 200 and b"upload-form" in body


def test_serve_refuses_uploads_from_other_origins(server, photos):
    own = f"http://127.0.0.1:{server.port}"
    for headers, says in [({"Origin": "https://evil.example"}, "Origin 'https://evil.example' is not " + own),
                          ({"Origin": "null"}, "Origin 'null'"),
                          ({"Origin": f"http://localhost:{server.port}"}, "is not " + own),  # another origin
                          ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
                          ({"Host": "evil.example", "Origin": "http://evil.example"}, "host 'evil.example'")]:
        status, _, answer = _upload(server.base, photos[:1], headers)
        assert status == 403 and says in answer["detail"] and "\n" not in answer["detail"], (headers, answer)
    # DNS rebinding: a page of another host re-pointed at this address cannot even read the page
    status, _, body = _request(server.base + "/", headers={"Host": "evil.example:%d" % server.port})
    assert status == 403 and "loopback address only" in json.loads(body)["detail"]
    # the app's own page, and a client that is no browser (no Origin), are served
    status, _, answer = _upload(server.base, photos[:1], {"Origin": own})
    assert status == 202 and answer["files"] == [photos[0].name]
    _jobs_seen.append(answer["job"])
    _wait_idle(server)


def _wait_idle(server, timeout: float = 240) -> None:
    """Until no job is queued or running (the next test starts from an idle analyser)."""
    deadline = time.monotonic() + timeout
    for job in _jobs_seen:
        while time.monotonic() < deadline:
            state = json.loads(_request(f"{server.base}/api/jobs/{job}")[2])["state"]
            if state in ("done", "failed"):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"job {job} did not finish in {timeout:.0f} s")
    _jobs_seen.clear()


_jobs_seen: list[str] = []


def test_serve_bounds_its_queue_and_the_images_per_upload(server, photos):
    status, _, answer = _upload(server.base, photos)  # 4 images, --max-files 3
    assert status == 413 and "4 files uploaded; at most 3 per upload (exiflang serve --max-files)" == answer["detail"]
    status, _, running = _upload(server.base, photos[:3])
    assert status == 202
    _jobs_seen.append(running["job"])
    deadline = time.monotonic() + 60
    while json.loads(_request(f"{server.base}/api/jobs/{running['job']}")[2])["state"] == "queued":
        assert time.monotonic() < deadline, "the first upload never started"
        time.sleep(0.05)
    status, _, waiting = _upload(server.base, photos[:1])  # waits while the first is analysed
    assert status == 202 and waiting["state"] == "queued"
    _jobs_seen.append(waiting["job"])
    status, headers, answer = _upload(server.base, photos[:1])  # a second one waiting: refused
    assert status == 429 and headers.get("retry-after") == "10"
    assert answer["detail"] == ("the queue is full: 1 upload(s) already wait for the analysis; try again when one "
                                "has finished (exiflang serve --max-queued)")
    first = json.loads(_request(f"{server.base}/api/jobs/{running['job']}")[2])
    assert first["state"] == "running", "the first upload finished before the queue filled: make it longer"
    _wait_idle(server)
    status, _, answer = _upload(server.base, photos[:1])  # room again once the queue emptied
    assert status == 202
    _jobs_seen.append(answer["job"])
    _wait_idle(server)
