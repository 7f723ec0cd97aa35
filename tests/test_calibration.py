"""The image score's calibration: fitting (Platt, isotonic), JSON round trip, the shipped calibration.json."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from exiflang.forensics import calibration as C


def _toy(seed: int = 0, n: int = 40):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(0.3, 0.06, n), rng.normal(0.5, 0.08, n)]
    return scores, np.r_[np.zeros(n, int), np.ones(n, int)]


@pytest.mark.parametrize("method", C.METHODS)
def test_fit_is_monotone_and_round_trips(method, tmp_path):
    scores, labels = _toy()
    cal = C.fit(scores, labels, method=method, model_id="m-1", score="dissim", per_side=30)
    grid = np.linspace(-0.5, 1.5, 201)
    probs = np.array([cal.probability(s) for s in grid])
    assert np.all((probs >= 0) & (probs <= 1)) and np.all(np.diff(probs) >= -1e-12)
    assert cal.probability(0.2) < 0.25 < 0.75 < cal.probability(0.7)
    assert cal.verdict(cal.probability(0.2)) == "likely authentic"
    assert cal.verdict(cal.probability(0.7)) == "likely manipulated"
    assert math.isnan(cal.probability(float("nan")))
    C.measure_bands(cal, scores, labels)
    assert sum(b.n_authentic for b in cal.bands) == 40 and sum(b.n_manipulated for b in cal.bands) == 40
    cal.reliability = C.reliability_table([cal.probability(s) for s in scores], labels)
    assert sum(r["count"] for r in cal.reliability) == 80
    back = C.Calibration.load(cal.save(tmp_path / "calibration.json"))
    assert back.to_dict() == cal.to_dict()
    assert all(back.probability(s) == cal.probability(s) for s in grid)


def test_platt_recovers_a_logistic_law():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < 1 / (1 + np.exp(-(10 * scores - 5)))).astype(int)
    cal = C.fit(scores, labels, "platt")
    assert cal.params["a"] == pytest.approx(10, rel=0.2) and cal.params["b"] == pytest.approx(-5, rel=0.2)


def test_reliability_bins_and_band_edges():
    rows = C.reliability_table([0.0, 0.19, 0.2, 0.99, 1.0], [0, 0, 1, 1, 1], n_bins=5)
    assert [r["count"] for r in rows] == [2, 1, 0, 0, 2] and rows[4]["bin"] == "[0.8, 1.0]"
    assert rows[2]["predicted"] is None and rows[0]["observed"] == 0.0
    cal = C.fit(*_toy(), "platt")
    assert cal.verdict(0.0) == "likely authentic" and cal.verdict(0.25) == "inconclusive"
    assert cal.verdict(0.75) == "likely manipulated" and cal.verdict(1.0) == "likely manipulated"


def test_bad_calibrations_are_refused(tmp_path):
    with pytest.raises(C.CalibrationError, match="both classes"):
        C.fit([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0])
    with pytest.raises(C.CalibrationError, match="unknown calibration method"):
        C.fit(*_toy(), method="beta")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(C.CalibrationError, match="calibration.json.*not an exiflang calibration"):
        C.Calibration.load(path)
    path.write_text("{not json")
    with pytest.raises(C.CalibrationError, match="calibration.json: invalid JSON"):
        C.Calibration.load(path)


def test_for_model_checks_the_model_id():
    cal = C.fit(*_toy(), model_id="grid-aaa")

    class M:
        model_id = "grid-aaa"
        calibration = cal.to_dict()

    assert C.for_model(M()).params == cal.params
    M.model_id = "grid-bbb"  # a calibration fitted for another model means nothing here
    assert C.for_model(M()) is None
    M.calibration = None
    assert C.for_model(M()) is None


def test_the_default_model_ships_its_calibration():
    from exiflang.forensics import resolve_model
    from exiflang.forensics.scores import IMAGE_SCORE
    from exiflang.models.factory import CALIBRATION_FILE, resolve_weights_dir

    folder = resolve_weights_dir("default")
    assert (folder / CALIBRATION_FILE).is_file()
    model = resolve_model("default")  # the loader attaches it; no second loader
    cal = C.for_model(model)
    assert cal is not None and cal.model_id == model.model_id and cal.score == IMAGE_SCORE
    assert cal.method == "platt" and cal.per_side == 30
    # measured on composites not used for the fit: every band has its rates, the reliability table its 60 images
    assert all(b.authentic_rate is not None and b.manipulated_rate is not None for b in cal.bands)
    assert sum(r["count"] for r in cal.reliability) == sum((b.n_authentic or 0) + (b.n_manipulated or 0) for b in cal.bands)
    assert "eval_set" in cal.provenance and "command" in cal.provenance
    assert cal.probability(0.1) < cal.probability(0.4) < cal.probability(0.7)


def test_detect_reports_probability_and_verdict(photos_dir):
    from exiflang.forensics import detect, write_report
    from exiflang.imageio import load_rgb
    from photo_helpers import shared_photos

    pixels, _ = load_rgb(shared_photos(photos_dir, 1)[0])
    result = detect(pixels[:768, :1024], "default", per_side=6)  # 48 independent patches: a verdict is given
    assert 0.0 <= result.probability <= 1.0 and result.verdict in C.VERDICTS
    cal = C.for_model(__import__("exiflang.forensics", fromlist=["resolve_model"]).resolve_model("default"))
    assert result.probability == pytest.approx(cal.probability(result.score))


def test_docs_carry_the_reliability_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "RESULTS.md").read_text()
    assert "fit_calibration.py" in text and "predicted-probability bin" in text and "likely manipulated" in text
