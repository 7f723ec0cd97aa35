"""The demo figures the docs quote are the ones the current code prints (issue 14, item 9).

Every "seed 0: p-AP X vs chance Y, mask IoU Z" in README.md, docs/RESULTS.md and docs/results/detection.md must
match a fresh `exiflang demo` (seed 0, the default size and model) to the precision quoted.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from exiflang.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/RESULTS.md", "docs/results/detection.md")
QUOTE = re.compile(r"seed 0: p-AP (\d+\.\d+) vs chance (\d+\.\d+), mask IoU (\d+\.\d+)")
PRINTED = {"p_ap": re.compile(r"^p-AP\s+(\d+\.\d+)", re.M), "chance": re.compile(r"chance = (\d+\.\d+)"),
           "iou": re.compile(r"^mask IoU\s+(\d+\.\d+)", re.M)}


@pytest.fixture(scope="module")
def demo_figures(tmp_path_factory) -> dict:
    """p-AP, chance and mask IoU that `exiflang demo --out DIR` (seed 0) prints now."""
    import contextlib
    import io

    out, folder = io.StringIO(), tmp_path_factory.mktemp("demo")
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--out", str(folder)]) == 0
    text = out.getvalue()
    return {**{key: float(rx.search(text).group(1)) for key, rx in PRINTED.items()}, "text": text, "folder": folder}


def test_the_demo_prints_the_verdict_its_report_holds(demo_figures):
    import json

    saved = json.loads((demo_figures["folder"] / "demo_composite.json").read_text())
    assert saved["verdict"] and f"verdict         {saved['verdict']}" in demo_figures["text"]
    assert f"probability of manipulation {saved['probability']:.0%}" in demo_figures["text"]


def _decimals(quoted: str) -> int:
    return len(quoted.split(".")[1])


@pytest.mark.parametrize("doc", DOCS)
def test_quoted_demo_figures_match_a_fresh_run(doc, demo_figures):
    text = (ROOT / doc).read_text(encoding="utf-8")
    quotes = QUOTE.findall(text)
    assert quotes, f"{doc} quotes no demo figure in the checked form"
    for quote in quotes:
        for key, quoted in zip(("p_ap", "chance", "iou"), quote):
            d = _decimals(quoted)
            assert round(demo_figures[key], d) == pytest.approx(float(quoted), abs=1e-12), (doc, key, quoted,
                                                                                         demo_figures[key])


def test_no_stale_demo_figure_left():
    """The p-AP the docs used to quote for the demo (0.17, the previous default's) is only quoted as history."""
    for doc in DOCS:
        for line in (ROOT / doc).read_text(encoding="utf-8").splitlines():
            if "demo" in line and "p-AP 0.17" in line:
                assert "previous default" in line, (doc, line)
