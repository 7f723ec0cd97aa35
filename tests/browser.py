"""A real headless browser for the page tests: Debian's Chromium + chromedriver, driven by selenium.

`setup.sh` installs `chromium` and `chromium-driver` when it runs as root; where no browser could be installed
the tests skip with a message that says so (and how to install one).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find(names) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def chrome(network_log: bool = False):
    """A headless Chromium WebDriver that records the console (and, with ``network_log``, every request it sends:
    `requested_urls`); skips the test where none can be started."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("EXIFLANG_CHROMIUM") or _find(CHROMIUM_NAMES)
    driver_path = os.environ.get("EXIFLANG_CHROMEDRIVER") or _find(("chromedriver",))
    if not binary or not driver_path:
        pytest.skip("no Chromium/chromedriver installed: run ./setup.sh as root (apt-get install chromium "
                    "chromium-driver) to run the browser tests")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    prefs = {"browser": "ALL", **({"performance": "ALL"} if network_log else {})}
    options.set_capability("goog:loggingPrefs", prefs)
    try:
        return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium is installed but could not start headless ({str(exc).splitlines()[0]})")


def console_errors(driver) -> list[str]:
    """The browser console's SEVERE entries since the last call."""
    return [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (DevTools' Network.requestWillBeSent events), in order;
    needs a driver made by ``chrome(network_log=True)``."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_for(condition, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    """Poll until condition() is truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def check_images_loaded(driver, timeout: float = 30.0) -> int:
    """Wait until every <img> finished loading; assert each has a natural width > 0; return how many."""
    wait_for(lambda: driver.execute_script(
        "return Array.prototype.every.call(document.images, function (i) { return i.complete; });"),
        timeout, what="every image to finish loading")
    broken = driver.execute_script(
        "return Array.prototype.filter.call(document.images, function (i) { return !(i.naturalWidth > 0); })"
        ".map(function (i) { return i.getAttribute('src'); });")
    assert not broken, f"images that did not load: {broken}"
    return int(driver.execute_script("return document.images.length;"))


def full_screenshot(driver, path: Path) -> Path:
    """Resize the window to the page's height and save a PNG screenshot."""
    height = int(driver.execute_script("return Math.min(document.documentElement.scrollHeight, 8000);"))
    driver.set_window_size(1280, max(height, 800))
    driver.save_screenshot(str(path))
    assert path.is_file() and path.stat().st_size > 1000
    return path
