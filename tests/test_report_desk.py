"""The report as a verification desk reads it (issue 22): each metadata check's line in the JSON, the CLI output
and the page; the batch summary beside index.html; and in headless Chromium: no overflow at 1024, 1280 and
1920 px, click to enlarge, the opacity slider, sorting from the keyboard, printing to PDF with every image, no
console error and no request leaving the machine."""
from __future__ import annotations

import base64
import csv
import html
import json
import re

import pytest

from browser import check_images_loaded, chrome, console_errors
from exiflang.cli import main
from test_forensics_support import NoiseStatsModel
from test_provenance import IPHONE, SPLICE, _test_signer


@pytest.fixture(scope="module")
def desk(tmp_path_factory, casia_dir, photos_dir):
    """detect --out over a CASIA splice and a shared photo signed with Content Credentials then changed after
    signing (the hand-made noise-statistics encoder stands in for the model; the EXIF check is off)."""
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (./setup.sh installs it)")
    import exiflang.forensics.api as det

    root = tmp_path_factory.mktemp("desk")
    inputs = root / "in"
    inputs.mkdir()
    (inputs / "splice.jpg").write_bytes((casia_dir / SPLICE).read_bytes())
    chain, key, _ = _test_signer()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    manifest = {"claim_generator_info": [{"name": "exiflang-tests", "version": "1.0"}], "title": "signed.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created",
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}
    c2pa.Builder(manifest).sign_file(photos_dir / IPHONE, inputs / "signed.jpg", signer)
    data = bytearray((inputs / "signed.jpg").read_bytes())
    data[-5000] ^= 0x55
    (inputs / "signed.jpg").write_bytes(bytes(data))
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        model = NoiseStatsModel()
        mp.setattr(det, "_load_named_model", lambda name, device: model)
        import io
        from contextlib import redirect_stdout

        buf = io.StringIO()
        with redirect_stdout(buf):
            status = main(["detect", str(inputs), "--out", str(out), "--no-exif-check", "--per-side", "8"])
    assert status == 0
    return out, buf.getvalue()


def test_each_check_in_the_json_the_cli_and_the_page(desk):
    out, stdout = desk
    page = (out / "index.html").read_text()
    splice = {c["id"]: c for c in json.loads((out / "splice.json").read_text())["provenance"]}
    signed = {c["id"]: c for c in json.loads((out / "signed.json").read_text())["provenance"]}
    assert set(splice) == set(signed) == {"software", "camera", "dimensions", "dates", "thumbnail", "credentials"}
    assert "Adobe Photoshop CS2 Windows" in splice["software"]["text"] and splice["software"]["status"] == "warning"
    assert signed["credentials"]["status"] == "warning" and "INVALID" in signed["credentials"]["text"]
    assert signed["dimensions"]["status"] == "warning" and signed["thumbnail"]["evidence"]["outcome"] == "crop"
    for checks in (splice, signed):
        for c in checks.values():
            if c["status"] != "ok":  # the CLI prints the checks that are not ok, one line each
                assert re.search(rf"^  {re.escape(c['status'])}\s+{c['id']}\s+{re.escape(c['text'])}$", stdout, re.M)
            assert html.escape(c["text"], quote=False) in page  # the page shows every check
    # the checks come before the pixel analysis in each image's section
    section = page[page.index('id="img-splice"'):]
    assert section.index("Metadata checks") < section.index("Pixel analysis") < section.index('class="views"')


def test_batch_summary_beside_index(desk):
    out, _ = desk
    rows = list(csv.DictReader((out / "batch-summary.csv").open()))
    summary = json.loads((out / "batch-summary.json").read_text())["images"]
    assert sorted(r["file"].rsplit("/", 1)[-1] for r in rows) == ["signed.jpg", "splice.jpg"]
    assert [r["file"] for r in rows] == [r["file"] for r in summary]  # the same order: most suspicious first
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in summary}
    assert by_name["splice.jpg"]["metadata_warnings"] >= 2 and "Photoshop" in by_name["splice.jpg"]["metadata_notes"]
    assert float(rows[0]["score"]) >= float(rows[1]["score"])


def test_caveat_once_per_page_and_method_terms_out_of_the_readers_text(desk):
    out, _ = desk
    page = (out / "index.html").read_text()
    assert page.count("evidence, not proof") == 1
    reader_text = " ".join(re.findall(r'<div class="plain">(.*?)</div>', page, re.S))
    for term in ("Platt", "dissim", "cal_fit", "z =", "normalised cut"):
        assert term not in reader_text
    assert page.count('class="colourbar"') == 0  # one colour bar: the one in the overlay PNG


def _overflowing(driver) -> list[str]:
    return driver.execute_script("""
      var w = document.documentElement.clientWidth, bad = [];
      if (document.documentElement.scrollWidth > w) { bad.push("page " + document.documentElement.scrollWidth); }
      document.querySelectorAll("body *").forEach(function (el) {
        var r = el.getBoundingClientRect();
        if (r.width && r.right > w + 1) { bad.push(el.tagName + "." + el.className + " " + Math.round(r.right)); }
      });
      return bad.slice(0, 10);""")


def test_the_page_in_a_real_browser(desk):
    from selenium.webdriver.common.keys import Keys

    out, _ = desk
    driver = chrome()
    try:
        for width in (1024, 1280, 1920):
            driver.set_window_size(width, 1000)
            driver.get((out / "index.html").as_uri())
            check_images_loaded(driver)
            assert not _overflowing(driver), (width, _overflowing(driver))
        # click to enlarge, Escape to go back
        figure = driver.find_element("css selector", 'figure[data-kind="overlay"]')
        small = figure.find_element("css selector", "img.base").size["width"]
        driver.execute_script("arguments[0].scrollIntoView();", figure)
        figure.find_element("css selector", ".compare").click()
        assert "enlarged" in figure.get_attribute("class")
        assert figure.find_element("css selector", "img.base").size["width"] > small
        driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        assert "enlarged" not in figure.get_attribute("class")
        # the opacity slider, from the keyboard: Home = all original, End = all heatmap
        slider = figure.find_element("css selector", "input.opacity")
        top = figure.find_element("css selector", "img.top")
        slider.send_keys(Keys.HOME)
        assert float(top.value_of_css_property("opacity")) == 1.0
        slider.send_keys(Keys.END)
        assert float(top.value_of_css_property("opacity")) == 0.0
        # sorting from the keyboard: Enter on the 'file' heading's button
        names = lambda: [r.find_elements("css selector", "td")[2].text  # noqa: E731
                         for r in driver.find_elements("css selector", "table.results tbody tr")]
        button = driver.find_element("css selector", "table.results th:nth-child(3) button")
        button.send_keys(Keys.ENTER)
        assert names() == sorted(names(), key=str.lower, reverse=True)
        assert button.find_element("xpath", "..").get_attribute("aria-sort") == "descending"
        button.send_keys(Keys.SPACE)
        assert names() == sorted(names(), key=str.lower)
        # printing to PDF keeps every image
        n_sources = len(set(driver.execute_script("return Array.from(document.images).map(i => i.src);")))
        pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
        assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Subtype\s*/Image", pdf)) >= n_sources
        # no console error; every address the page can load or open is a local file (no url() in its styles)
        assert not console_errors(driver)
        urls = driver.execute_script("return Array.from(document.querySelectorAll('[src],[href]'))"
                                     ".map(e => e.src || e.href);")
        assert len(urls) > 10 and all(u.startswith(("file://", "data:")) for u in urls), urls
        assert "url(" not in driver.execute_script(
            "return Array.from(document.styleSheets).map(s => Array.from(s.cssRules).map(r => r.cssText).join()).join();")
    finally:
        driver.quit()
