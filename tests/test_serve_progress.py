"""`exiflang serve`'s progress bar in a real browser (issue 22): while the first of two shared photos is analysed the
bar stands strictly between 0 and that image's share, the status line gives a time estimate, and the bar ends at
100 % with the job done; no console error, and every request the page sends goes to the server on this machine.

The default analysis (the fusion) of two shared photos enlarged to 2048x1536, so that each image takes a few seconds
on two shared CPU cores and the page (which polls every 0.4 s) sees several of its steps: the learned map on a
coarse grid (--per-side 8) embedded 4 patches at a time, the grid and dq analyses, the metadata checks and the
report's files, each moving the bar by its share of the image's time."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from browser import chrome, console_errors, requested_urls
from cli_helpers import stop_process
from photo_helpers import shared_photos
from test_serve import ROOT, _free_port, _get

STATE_JS = """var bar = document.getElementById("progress");
return [bar.value, bar.max, document.getElementById("status").textContent, document.body.getAttribute("data-state")];"""


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """`exiflang serve` on a free loopback port with small batches, so each image reports its progress many times."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve-progress") / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exiflang", "serve", "--port", str(port), "--per-side", "8", "--batch-size", "4",
             "--no-exif-check", "--device", "cpu"],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _answers(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"exiflang serve did not start (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)


def _answers(base: str) -> bool:
    try:
        return _get(base + "/", timeout=2)[0] == 200
    except OSError:
        return False


def _watch(driver, timeout: float = 120.0) -> list[tuple[float, float, str, str]]:
    """The bar's (value, max), the status line and the page's state, sampled every 0.1 s until done or error."""
    samples, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        value, maximum, text, state = driver.execute_script(STATE_JS)
        samples.append((float(value), float(maximum), text, state or ""))
        if state in ("done", "error"):
            return samples
        time.sleep(0.1)
    pytest.fail(f"the analysis did not finish in {timeout:.0f} s; last state {samples[-1]}")


def _enlarged(src: Path, dst: Path, factor: int = 2) -> Path:
    """src upscaled `factor` times (JPEG q92, its EXIF kept): a photo whose analysis takes a few seconds."""
    with Image.open(src) as im:
        exif = im.info.get("exif")
        big = im.convert("RGB").resize((im.width * factor, im.height * factor), Image.Resampling.BICUBIC)
        big.save(dst, quality=92, **({"exif": exif} if exif else {}))
    return dst


def test_the_bar_moves_within_the_first_image_and_ends_at_100(slow_server, photos_dir, tmp_path):
    first, second = (_enlarged(p, tmp_path / p.name) for p in shared_photos(photos_dir, 2))
    driver = chrome(network_log=True)
    try:
        driver.get(slow_server + "/")
        driver.find_element("id", "files").send_keys(f"{first}\n{second}")
        driver.find_element("id", "analyse").click()
        samples = _watch(driver)
        urls = requested_urls(driver)
        errors = console_errors(driver)
    finally:
        driver.quit()
    value, maximum, text, state = samples[-1]
    assert state == "done" and text == "Done: 2 analysed.", samples[-1]
    assert maximum == 2 and value == maximum  # 100 %
    analysing = [(v / m, t) for v, m, t, _ in samples if t.startswith("Analysing")]
    in_first = [(share, t) for share, t in analysing if t.startswith(f"Analysing 1 of 2: {first.name}")]
    moving = [share for share, _ in in_first if 0 < share < 0.5]  # above 0, below the first image's half
    assert len(moving) >= 2 and len(set(moving)) >= 2, in_first  # it moved (and more than once) within the image
    estimates = [t for _, t in in_first if re.search(r"\(about \d+ (s|min) left\)$", t)]
    assert estimates, in_first  # the first image's own rate gives an estimate before any image has finished
    assert any(0.5 <= share < 1 for share, t in analysing if t.startswith("Analysing 2 of 2")), analysing
    shares = [share for share, _ in analysing]
    assert shares == sorted(shares), shares  # never goes back
    assert not errors, errors
    assert any(u.startswith(slow_server + "/api/jobs/") for u in urls), urls  # the log did see the page's polling
    outside = [u for u in urls if not (u.startswith(slow_server + "/") or u.startswith("data:"))]
    assert not outside, outside
