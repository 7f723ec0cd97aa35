"""Progress within one image (issue 22): the detector reports patches embedded as it goes, and the web page's job
turns that and the finished images' times into a moving bar and a time estimate."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from exiflang.forensics import Detector
from exiflang.imageio import load_rgb
from exiflang.report.web import Job


def test_the_detector_reports_every_batch_of_patches(photos_dir):
    image, _ = load_rgb(sorted(photos_dir.rglob("*.jpg"))[0])
    calls = []
    detector = Detector.load("default", per_side=6, batch_size=8)
    detector.progress = lambda done, total: calls.append((done, total))
    result = detector.detect(image)
    n = result.grid.n_patches
    assert len(calls) == math.ceil(n / 8) and calls[-1] == (n, n)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and all(t == n for _, t in calls)


def _job(**kw) -> Job:
    return Job(id="x", folder=Path("."), names=["a", "b", "c"], paths=[Path("a"), Path("b"), Path("c")],
               state="running", **kw)


def test_the_estimate_uses_finished_images_then_the_first_images_own_rate():
    later = _job(done=1, seconds=[2.0], image_started=time.time() - 0.5)
    assert later.eta_seconds() == pytest.approx(2.0 * 2 - 0.5, abs=0.2)
    first = _job(fraction=0.5, image_started=time.time() - 1.0)
    assert first.eta_seconds() == pytest.approx(2.0 * 3 - 1.0, abs=0.3)  # 1 s for half an image: 2 s each
    assert _job(image_started=time.time()).eta_seconds() is None  # nothing to go on yet: no estimate
    status = first.to_dict()
    assert status["fraction"] == 0.5 and status["eta_s"] == pytest.approx(5.0, abs=0.3)
