"""`exiflang serve`: the local web app over real HTTP (a server process on a free port) and in a real browser."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from browser import check_images_loaded, chrome, console_errors, full_screenshot, wait_for
from cli_helpers import stop_process
from photo_helpers import shared_photos

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 2.0
MAX_MEGAPIXELS = 0.9  # the shared photos are at most 1024x768 = 0.79 MP; a 1000x1000 image is refused
BROKEN = b"\xff\xd8\xff\xe0 definitely not a JPEG"
# Never go through a proxy to reach the server on this machine.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _post_files(url: str, files: list[tuple[str, bytes]]) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with OPENER.open(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_done(base: str, job: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    seen_progress = set()
    while time.monotonic() < deadline:
        status, _, body = _get(f"{base}/api/jobs/{job}")
        assert status == 200
        state = json.loads(body)
        seen_progress.add((state["state"], state["done"]))
        if state["state"] in ("done", "failed"):
            state["progress_seen"] = seen_progress
            return state
        time.sleep(0.3)
    pytest.fail(f"job {job} did not finish in {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`exiflang serve` with its defaults (loopback) on a free port, small limits and a coarse grid."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exiflang", "serve", "--port", str(port), "--per-side", "6",
             "--max-upload-mb", str(LIMIT_MB), "--max-megapixels", str(MAX_MEGAPIXELS)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"exiflang serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if _get(base + "/", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"exiflang serve did not answer within 90 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield SimpleNamespace(base=base, port=port, proc=proc, log=log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def photo(photos_dir) -> Path:
    return shared_photos(photos_dir, 1)[0]


def test_upload_a_real_photo_and_a_broken_file(server, photo):
    status, answer = _post_files(server.base + "/api/jobs", [(photo.name, photo.read_bytes()), ("broken.jpg", BROKEN)])
    assert status == 202, answer
    assert answer["total"] == 2 and answer["files"] == [photo.name, "broken.jpg"]
    job = _wait_done(server.base, answer["job"])
    assert job["state"] == "done" and job["done"] == 2, job
    good, bad = job["results"]
    assert good["ok"] and good["name"] == photo.name and good["size"] == "{}x{}".format(*Image.open(photo).size)
    assert 0 <= good["probability"] <= 1 and good["verdict"] in ("likely authentic", "inconclusive", "likely manipulated")
    assert not bad["ok"] and bad["name"] == "broken.jpg"
    assert "broken.jpg" in bad["error"] and "cannot decode image" in bad["error"]
    assert "exiflang-serve-" not in bad["error"]  # the message names the upload, not a temporary path
    # the same per-image report as detect --out: fragment for the page, and a page of its own
    status, headers, body = _get(f"{server.base}/api/jobs/{job['job']}/report")
    fragment = body.decode()
    assert status == 200 and photo.name in fragment and "broken.jpg" in fragment and "check-exif verdict" in fragment
    srcs = [s.split('"')[0] for s in fragment.split('src="')[1:]]
    assert len(srcs) == 5  # thumbnail, original, overlay, mask, reliability (inline); the fusion has no PCA view
    assert sum(src.startswith("data:image/png;base64,") for src in srcs) == 1  # the reliability map, inline
    for src in (s for s in srcs if not s.startswith("data:")):
        status, headers, data = _get(server.base + src)
        assert status == 200 and headers["content-type"].startswith("image/") and len(data) > 100, src
        Image.open(io.BytesIO(data)).verify()
    status, headers, body = _get(f"{server.base}/jobs/{job['job']}/")
    assert status == 200 and b"<table" in body and "default-src 'none'" in headers["content-security-policy"]


def test_the_page_and_detect_give_a_file_the_same_verdict(server, photo, tmp_path):
    """The web app runs detect's default method (the fusion per file condition), not another detector."""
    import json

    from exiflang.cli import main

    status, answer = _post_files(server.base + "/api/jobs", [(photo.name, photo.read_bytes())])
    assert status == 202, answer
    page = _wait_done(server.base, answer["job"])["results"][0]
    assert main(["detect", str(photo), "--per-side", "6", "--out", str(tmp_path), "--no-exif-check"]) == 0
    cli = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert page["model_id"].startswith("fusion") and page["verdict"] == cli["verdict"]
    assert abs(page["probability"] - cli["probability"]) < 1e-6 and abs(page["score"] - cli["score"]) < 1e-6


def test_limits_are_enforced_with_clear_messages(server, photo):
    too_big = os.urandom(int(LIMIT_MB * 1_000_000) + 300_000)
    status, answer = _post_files(server.base + "/api/jobs", [("huge.jpg", too_big)])
    assert status == 413 and "over the limit of 2.0 MB" in answer["detail"]
    status, answer = _post_files(server.base + "/api/jobs", [])
    assert status == 400 and "at least one image" in answer["detail"]
    buf = io.BytesIO()
    Image.new("RGB", (1000, 1000), (90, 120, 150)).save(buf, "PNG")  # 1 MP > the 0.9 MP limit, a tiny file
    status, answer = _post_files(server.base + "/api/jobs", [("wide.png", buf.getvalue())])
    assert status == 202
    job = _wait_done(server.base, answer["job"])
    (result,) = job["results"]
    assert not result["ok"] and "wide.png" in result["error"] and "exceeds the limit of 900,000" in result["error"]
    assert _get(server.base + "/")[0] == 200  # still serving


def _non_loopback_addresses() -> list[str]:
    found = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for a UDP connect
            found.add(s.getsockname()[0])
    except OSError:
        pass
    try:
        found.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET))
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def test_answers_only_on_loopback_by_default(server):
    # the listening socket is bound to 127.0.0.1 (Linux: /proc/net/tcp, state 0A = LISTEN)
    tcp = Path("/proc/net/tcp")
    if tcp.is_file():
        listening = [line.split()[1] for line in tcp.read_text().splitlines()[1:]
                     if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == server.port]
        assert listening == ["0100007F:%04X" % server.port], listening
    # and a connection to this machine's other addresses is refused
    others = _non_loopback_addresses()
    for address in others:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            with pytest.raises(OSError):
                s.connect((address, server.port))
    # a request naming another host (DNS rebinding) is refused too
    status, _, body = _get(server.base + "/", headers={"Host": "attacker.example"})
    assert status == 403 and "loopback address only" in json.loads(body)["detail"]
    assert "loopback address only" in server.log.read_text()
    if not others and not tcp.is_file():
        pytest.skip("no non-loopback address and no /proc/net/tcp to check the bound address against")


def test_serve_page_in_a_real_browser(server, photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(BROKEN)
    driver = chrome()
    try:
        driver.get(server.base + "/")
        assert driver.find_element("id", "progress") is not None
        page = driver.page_source
        assert "http://" not in page.replace(server.base, "") and "https://" not in page  # nothing from outside
        driver.find_element("id", "files").send_keys(f"{photo}\n{broken}")
        driver.find_element("id", "analyse").click()
        wait_for(lambda: driver.execute_script("return document.body.getAttribute('data-state');") in ("done", "error"),
                 timeout=240, what="the analysis to finish in the page")
        status = driver.find_element("id", "status").text
        assert driver.execute_script("return document.body.getAttribute('data-state');") == "done", status
        assert "1 analysed, 1 failed" in status
        rows = driver.find_elements("css selector", "#report table.results tbody tr")
        assert [r.get_attribute("class") for r in rows] == ["ok", "failed"]
        assert photo.name in rows[0].text and "broken.jpg" in rows[1].text
        assert check_images_loaded(driver) == 5  # with the inline reliability map (the fusion has no PCA view)
        full_screenshot(driver, tmp_path / "serve.png")
        errors = console_errors(driver)
        assert not errors, errors
    finally:
        driver.quit()


def test_a_taken_port_is_one_clear_error(capsys):
    from exiflang.cli import main
    from exiflang.report.web import is_loopback

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "--port" in err and len(err.strip().splitlines()) == 1
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
