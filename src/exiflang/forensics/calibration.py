"""A calibrated reading of the image score: probability of manipulation and a verdict band.

`DetectionResult.score` (the validation-chosen image score, `scores.IMAGE_SCORE`) is a raw number that means
nothing to a reader. A `Calibration` maps it to a probability of manipulation, fitted by Platt scaling
(1-D logistic regression on the score) or isotonic regression (scikit-learn) on camera-disjoint composites
against authentic photos (`benchmarks/fit_calibration.py`), and puts the probability into one of three verdict
bands, each carrying the false-positive rate measured on composites *not* used for the fit.

The calibration ships with the model: ``calibration.json`` beside ``config.json`` in the weights folder (plain
JSON, never pickle). The model loaders (`exiflang.models.load_model`, `forensics.encoder.load_image_encoder`)
attach its contents as ``model.calibration`` (a dict, or None when the folder has no calibration), and
`for_model(model)` turns that into a `Calibration`, checked against the model id.

What the probability means: among images like the calibration set (half spliced, half authentic, cameras the
model never trained on, lossless composites, the grid density it was fitted at), the share of images with this
score that were manipulated. A different mix of images (most real-world photos are authentic; recompressed
or resized files) changes it; it is evidence, not proof.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExiflangError
from ..jsonfile import read_json

CALIBRATION_FILE = "calibration.json"
FORMAT = "exiflang-calibration-1"
METHODS = ("platt", "isotonic")
VERDICTS = ("likely authentic", "inconclusive", "likely manipulated")
# Verdict cut-points on the probability, fixed before any data were seen: odds below 1:3 / above 3:1.
DEFAULT_THRESHOLDS = (0.25, 0.75)


# The fourth outcome, beside the three bands: the analysis had too little to go on for any verdict (issue 21).
CANNOT_JUDGE = "cannot judge"
# Fewer independent (non-overlapping) model patches than this: no verdict. Measured with the shipped default
# (docs/RESULTS.md, "Desk regime" and "CASIA"): camera-disjoint composites of 512x384 re-saved at q90 (12 patches
# of 128 px, measured at 15 patches per side) still separate (detection AUC 0.78, AP 0.79), while CASIA v1's 384x256
# splices (6 patches) do not (detection AUC 0.52, AP 0.63 against a base rate of 0.60); 8 sits between the two.
MIN_INDEPENDENT_PATCHES = 8


def too_little_to_judge(height: int, width: int, patch: int) -> str | None:
    """Why an image is too small for a verdict ("too small: 6 independent 128-px patches ..."), or None."""
    n = (int(height) // int(patch)) * (int(width) // int(patch))
    if n >= MIN_INDEPENDENT_PATCHES:
        return None
    return (f"too small: {n} independent {patch}-px patches (a verdict needs at least {MIN_INDEPENDENT_PATCHES}; "
            f"on images this small spliced and authentic scores overlap)")


# What the shipped calibrations were fitted and measured on (benchmarks/fit_calibration.py): lossless composites of
# the held-out cameras' 1024x768 photos. A probability shown for another kind of image was not measured there.
FITTED_LONG_SIDE = 1024


def unmeasured_conditions(cal: "Calibration", height: int, width: int, per_side: int,
                          lossy: bool | None) -> str | None:
    """Why this image is unlike the calibration's fit set (JPEG, another size, another grid), in plain words, or None."""
    reasons = []
    if lossy:
        reasons.append("it is a JPEG (the calibration saw only lossless images)")
    long_side = max(int(height), int(width))
    if not 0.8 * FITTED_LONG_SIDE <= long_side <= 1.25 * FITTED_LONG_SIDE:
        reasons.append(f"its longer side is {long_side} px (the calibration saw {FITTED_LONG_SIDE} px)")
    if cal.per_side and int(per_side) != int(cal.per_side):
        reasons.append(f"it was analysed at {per_side} patches per side (the calibration at {cal.per_side})")
    return "; ".join(reasons) or None


class CalibrationError(ExiflangError):
    """A calibration file is missing fields, has the wrong format or belongs to another model."""


@dataclass
class Band:
    """One verdict band: probabilities in [low, high), with its measured error rates."""

    verdict: str
    low: float
    high: float
    # Share of the evaluation set's authentic images that got this verdict (for "likely manipulated": its
    # false-positive rate), and the share of its manipulated images that did (for "likely authentic": the miss rate).
    authentic_rate: float | None = None
    manipulated_rate: float | None = None
    n_authentic: int | None = None
    n_manipulated: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Calibration:
    """Score -> probability of manipulation (Platt or isotonic), plus the verdict bands."""

    method: str  # "platt" | "isotonic"
    params: dict[str, Any]  # platt: {"a", "b"} with p = 1 / (1 + exp(-(a * score + b))); isotonic: {"x", "y"}
    bands: list[Band]
    model_id: str = ""
    score: str = ""  # name of the image score it calibrates (scores.IMAGE_SCORE when it was fitted)
    per_side: int | None = None  # patch-grid density it was fitted at
    provenance: dict[str, Any] = field(default_factory=dict)
    reliability: list[dict[str, Any]] = field(default_factory=list)  # measured on the evaluation composites

    def __post_init__(self) -> None:
        # A calibration.json comes with a model folder, i.e. from anyone: every value is checked here, once, so
        # that applying it can never fail (or print a verdict that is not one of the three) on a user's photo.
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibration method {str(self.method)[:40]!r} (expected one of {METHODS})")
        if self.method == "platt":
            if not {"a", "b"} <= set(self.params) or not all(_finite(self.params[k]) for k in ("a", "b")):
                raise CalibrationError("a Platt calibration needs finite numbers 'a' and 'b'")
        if self.method == "isotonic":
            x, y = self.params.get("x"), self.params.get("y")
            ok = (isinstance(x, list) and isinstance(y, list) and 0 < len(x) == len(y) <= MAX_KNOTS
                  and all(map(_finite, x)) and all(_finite(v) and 0 <= v <= 1 for v in y))
            if not ok or np.any(np.diff(np.asarray(x, float)) < 0):
                raise CalibrationError(f"an isotonic calibration needs increasing finite 'x' and 'y' in [0, 1] "
                                       f"of the same length (at most {MAX_KNOTS})")
        if not self.bands or any(b.verdict not in VERDICTS or not (_finite(b.low) and _finite(b.high))
                                 for b in self.bands):
            raise CalibrationError(f"calibration bands must be {list(VERDICTS)} with finite limits")
        if self.per_side is not None and (isinstance(self.per_side, bool) or not isinstance(self.per_side, int)
                                          or not 1 <= self.per_side <= 1024):
            raise CalibrationError(f"calibration per_side must be an integer in [1, 1024], got {self.per_side!r:.40}")

    # -- applying it -------------------------------------------------------------------------------------------
    def probability(self, score: float) -> float:
        """Calibrated probability of manipulation for one image score."""
        s = float(score)
        if not math.isfinite(s):
            return float("nan")
        if self.method == "platt":
            z = float(self.params["a"]) * s + float(self.params["b"])
            return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0
        return float(np.interp(s, self.params["x"], self.params["y"]))  # clipped at both ends, like sklearn's

    def band(self, probability: float) -> Band:
        """The verdict band a probability falls in."""
        p = float(probability)
        for b in self.bands:
            if b.low <= p < b.high:
                return b
        return self.bands[-1] if p >= self.bands[-1].low else self.bands[0]

    def verdict(self, probability: float) -> str:
        """'likely authentic', 'inconclusive' or 'likely manipulated'."""
        return self.band(probability).verdict

    def describe(self) -> str:
        """One line for reports: how the probability was calibrated."""
        prov = self.provenance
        where = prov.get("fit_set", "camera-disjoint composites")
        return (f"{'Platt scaling' if self.method == 'platt' else 'isotonic regression'} of the '{self.score}' "
                f"score on {where}" + (f", {self.per_side} patches per side" if self.per_side else ""))

    # -- storage -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "params": self.params,
            "model_id": self.model_id,
            "score": self.score,
            "per_side": self.per_side,
            "bands": [b.to_dict() for b in self.bands],
            "reliability": self.reliability,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"not an exiflang calibration (expected format {FORMAT!r})")
        try:
            bands = [Band(**b) for b in data["bands"]]
            return cls(method=data["method"], params=dict(data["params"]), bands=bands,
                       model_id=str(data.get("model_id", "")), score=str(data.get("score", "")),
                       per_side=data.get("per_side"), provenance=dict(data.get("provenance") or {}),
                       reliability=list(data.get("reliability") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"calibration lacks a field or has a wrong one ({str(exc)[:200]})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        from ..imageio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        data = read_json(path, CalibrationError)
        try:
            return cls.from_dict(data)
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc}") from exc


MAX_KNOTS = 100_000  # isotonic breakpoints; a real fit on a few hundred composites has fewer than 200


def _finite(value: Any) -> bool:
    """A real finite number (JSON booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def default_bands(thresholds: tuple[float, float] = DEFAULT_THRESHOLDS) -> list[Band]:
    """The three verdict bands at the given probability cut-points (rates not measured yet)."""
    lo, hi = thresholds
    return [Band(VERDICTS[0], 0.0, lo), Band(VERDICTS[1], lo, hi), Band(VERDICTS[2], hi, 1.0 + 1e-9)]


def fit(scores, labels, method: str = "platt", thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
        **meta: Any) -> Calibration:
    """Fit a calibration on image scores and labels (1 = manipulated, 0 = authentic) with scikit-learn."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.int64).ravel()
    if s.shape != y.shape or len(s) < 4 or not (0 < y.sum() < len(y)):
        raise CalibrationError("fitting needs scores and labels of the same length, with both classes present")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=10_000).fit(s[:, None], y)  # effectively unregularised
        params = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    elif method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        params = {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}
    else:
        raise CalibrationError(f"unknown calibration method {method!r} (expected one of {METHODS})")
    return Calibration(method=method, params=params, bands=default_bands(thresholds), **meta)


def reliability_table(probabilities, labels, n_bins: int = 5) -> list[dict[str, Any]]:
    """Equal-width probability bins: count, mean predicted probability, observed share manipulated."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        rows.append({"bin": f"[{edges[b]:.1f}, {edges[b + 1]:.1f}{']' if b == n_bins - 1 else ')'}",
                     "count": n,
                     "predicted": float(p[sel].mean()) if n else None,
                     "observed": float(y[sel].mean()) if n else None})
    return rows


def measure_bands(cal: Calibration, scores, labels) -> list[Band]:
    """Each band's share of authentic and of manipulated images on a (held-out) set; updates cal.bands."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    verdicts = np.array([cal.verdict(cal.probability(s)) for s in np.asarray(scores, dtype=np.float64).ravel()])
    n_a, n_m = int((y == 0).sum()), int((y == 1).sum())
    for b in cal.bands:
        in_band = verdicts == b.verdict
        b.n_authentic, b.n_manipulated = int((in_band & (y == 0)).sum()), int((in_band & (y == 1)).sum())
        b.authentic_rate = b.n_authentic / n_a if n_a else None
        b.manipulated_rate = b.n_manipulated / n_m if n_m else None
    return cal.bands


def brier(probabilities, labels) -> float:
    """Mean squared error of the probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((p - np.asarray(labels, dtype=np.float64)) ** 2))


def for_model(model: Any) -> Calibration | None:
    """The calibration the loader attached to ``model`` (``model.calibration``), or None.

    A calibration fitted for another model id is refused (None): its probabilities would mean nothing here.
    """
    data = getattr(model, "calibration", None)
    if data is None:
        return None
    cal = data if isinstance(data, Calibration) else Calibration.from_dict(data)
    model_id = str(getattr(model, "model_id", "") or "")
    if cal.model_id and model_id and cal.model_id != model_id:
        return None
    return cal


__all__ = ["Band", "CANNOT_JUDGE", "FITTED_LONG_SIDE", "unmeasured_conditions", "MIN_INDEPENDENT_PATCHES", "too_little_to_judge", "CALIBRATION_FILE", "Calibration", "CalibrationError", "DEFAULT_THRESHOLDS", "VERDICTS",
           "brier", "default_bands", "fit", "for_model", "measure_bands", "reliability_table"]
