"""`exiflang detect ... --out DIR` writes DIR/index.html: one offline page, checked as text and in a real browser."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from browser import check_images_loaded, chrome, console_errors, full_screenshot
from exiflang.cli import main
from photo_helpers import resized_copy, shared_photos


class _Page(HTMLParser):
    """Image sources, links, scripts and the results table's rows of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs, self.hrefs, self.rows, self.scripts_src = [], [], [], []
        self._in_results = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if tag in ("a", "link"):
            self.hrefs.append(a.get("href", ""))
        if tag == "script" and a.get("src"):
            self.scripts_src.append(a["src"])
        if tag == "table" and "results" in (a.get("class") or ""):
            self._in_results = True
        if tag == "tr" and self._in_results and a.get("data-stem"):
            self.rows.append((a.get("class"), a["data-stem"]))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_results = False


@pytest.fixture(scope="module")
def report(tmp_path_factory, photos_dir):
    """A detect run over two small real photos (EXIF kept), one without EXIF (PNG) and one broken file."""
    root = tmp_path_factory.mktemp("html_report")
    photos = root / "in"
    photos.mkdir()
    a, b = shared_photos(photos_dir, 2)
    resized_copy(a, photos / "first photo.jpg", 512)  # a space in the name: links must be URL-encoded
    resized_copy(b, photos / "second.jpg", 512)
    resized_copy(a, photos / "no_exif.png", 384)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = root / "out"
    status = main(["detect", str(photos), "--out", str(out), "--per-side", "6", "--method", "exiflang"])  # built-in model; EXIF check on
    assert status == 1  # the broken file failed; the rest ran
    return out


def test_index_html_lists_every_image_offline(report):
    page = (report / "index.html").read_text()
    parsed = _Page()
    parsed.feed(page)
    ok_rows = [stem for cls, stem in parsed.rows if cls == "ok"]
    assert sorted(ok_rows) == ["first photo", "no_exif", "second"]
    assert [stem for cls, stem in parsed.rows if cls == "failed"] == ["broken"]
    # sorted by score, highest first
    scores = [json.loads((report / f"{stem}.json").read_text())["score"] for stem in ok_rows]
    assert scores == sorted(scores, reverse=True)
    # offline: no outside URL anywhere, no external script; every image a relative file that exists here
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page) and not parsed.scripts_src
    assert "<style>" in page and "<script>" in page
    for src in parsed.srcs:  # the reliability map is drawn inline (a data: PNG); every other image a file here
        assert src.startswith("data:image/png;base64,") or (
            not src.startswith(("/", "http")) and (report / unquote(src)).is_file()), src[:80]
    assert "first%20photo.view.jpg" in page
    # per image: original, overlay with its meaning, mask, PCA; a plain-language paragraph; probability + verdict
    for stem in ok_rows:
        for kind in ("view.jpg", "overlay.png", "mask.png", "pca.png", "thumb.jpg"):
            assert f"{stem}.{kind}".replace(" ", "%20") in page
    assert "high (yellow) = inconsistent with the rest of the image" in page
    assert page.count('class="plain"') == 3 and "evidence, not proof" in page
    assert "probability of manipulation" in page and "false-positive rate" in page
    # EXIF: the check's verdict for the JPEGs with EXIF, a clear line for the PNG without
    assert page.count("check-exif verdict") == 2 and "The file has no EXIF metadata" in page
    assert "EXIF text the model reads" in page
    # the failed file with its reason
    failed = page[page.index('id="failed"'):]
    assert "broken.jpg" in failed and "cannot decode image" in failed


def test_overlay_png_carries_a_colour_bar(report):
    from exiflang.forensics.report import colour_bar_height

    with Image.open(report / "second.overlay.png") as ov, Image.open(report / "second.mask.png") as mask:
        assert ov.width == mask.width and ov.height == mask.height + colour_bar_height(mask.width)
        strip = ov.convert("RGB").crop((0, mask.height, ov.width, ov.height))
    # the bar runs from inferno's black (left) to its pale yellow (right)
    y = strip.height // 4
    left, right = strip.getpixel((int(ov.width * 0.05), y)), strip.getpixel((int(ov.width * 0.95), y))
    assert sum(left) < 120 and right[0] > 200 and right[1] > 200


def test_json_reports_probability_and_verdict(report):
    meta = json.loads((report / "second.json").read_text())
    assert 0 <= meta["probability"] <= 1
    assert meta["verdict"] in ("likely authentic", "inconclusive", "likely manipulated", "cannot judge")
    assert (meta["verdict"] == "cannot judge") == bool(meta["verdict_reason"])  # the reason comes with it
    assert "dissim" in meta["score_definition"] or "score" in meta["score_definition"]


def test_index_html_in_a_real_browser(report, tmp_path):
    driver = chrome()
    try:
        driver.get((report / "index.html").as_uri())
        assert driver.title.startswith("exiflang report")
        rows = driver.find_elements("css selector", "table.results tbody tr")
        assert len(rows) == 4  # three analysed + the failed file
        names = [r.find_elements("css selector", "td")[2].text for r in rows]
        assert sorted(names) == ["broken.jpg", "first photo.jpg", "no_exif.png", "second.jpg"]
        n_images = check_images_loaded(driver)
        assert n_images == 3 * 6  # per analysed image: thumbnail, original, overlay, mask, PCA, reliability
        # sorting by a column works and keeps the failed row last
        driver.find_element("css selector", "table.results th:nth-child(3)").click()
        names = [r.find_elements("css selector", "td")[2].text for r in driver.find_elements("css selector", "table.results tbody tr")]
        assert names[-1] == "broken.jpg" and names[:3] == sorted(names[:3], key=str.lower, reverse=True)
        full_screenshot(driver, tmp_path / "index.png")
        errors = console_errors(driver)
        assert not errors, errors
    finally:
        driver.quit()


def test_grid_note_only_when_the_grid_differs_from_the_calibrated_one():
    """A small image's stride floors at 8 px (33 patches at per_side 30): that is the calibrated grid, no note."""
    from exiflang.forensics import make_grid
    from exiflang.report.html import _grid_as_calibrated

    def meta(per_side, origin=(0, 0)):
        g = make_grid(256, 384, 128, per_side, origin)
        return {"grid": {"height": 256, "width": 384, "patch": 128, "gy": g.gy, "gx": g.gx, "origin": list(g.origin)}}

    assert max(make_grid(256, 384, 128, 30, (0, 0)).gy, make_grid(256, 384, 128, 30, (0, 0)).gx) == 33
    assert _grid_as_calibrated(meta(30), 30) and _grid_as_calibrated(meta(30, (3, 5)), 30)
    assert not _grid_as_calibrated(meta(10), 30)
