"""Fusion of the learned consistency map with the classical JPEG-grid and double-quantisation maps.

The three detectors fail in different places: the JPEG-grid detector is nearly perfect on lossless pastes
that kept another 8x8 grid and blind once the whole image is re-saved; double quantisation needs a re-saved
image; the learned camera-consistency map needs neither, but is weaker where the others are sure. The rule
(all its numbers chosen on validation composites by `benchmarks/tune_fusion.py`, never on test composites,
and stored in `fusion_rule.json` beside this file):

* **Per-image choice by the grid detector's own significance.** When the grid detector finds an off-grid
  region with -log10(NFA) >= ``grid_gate`` (an a-contrario detection), the map is
  ``grid_weight * grid + (1 - grid_weight) * rest``; otherwise it is ``rest``.
* ``rest = learned_weight * learned + (1 - learned_weight) * dq`` (dq's heat is "singly compressed", which
  is what a paste into a re-saved image is).
* **Image score**: each method's score is calibrated on the validation *authentic* images (robust z-score:
  (s - median) / (1.4826 MAD)); the fused score is the largest of the grid z-score and
  ``score_weight * z_learned + (1 - score_weight) * z_dq`` (``score_weight`` defaults to ``learned_weight``;
  with ``gated_grid_score`` the grid z-score counts only when the grid detector passes its gate),
  plus ``map_weight`` times the z-scored contrast of the fused map (`map_contrast`): an image is suspicious
  when the grid detector or the camera/compression evidence says so, more so when its map singles out a region.
* **Polarity of the map** (``flip_majority``): after the score is read, the map is flipped where its high side
  covers more than half of the image, as the learned map's is.
* **Smoothing of the map** (``smooth_px``): after the score is read, a Gaussian of that sigma in pixels. The dq
  map is made of 8-px blocks decided one by one and the learned map of 64-px cells; a paste is a region, and
  its blocks' evidence pooled over a neighbourhood outlines it better (validation p-mAP chose 8-24 px per band;
  docs/RESULTS.md has the test table, without and with it).

**Per condition (format 2).** One rule does not fit every file: the grid detector is blind once a file is
re-saved, double quantisation needs one, and the learned map weakens with compression and size. The shipped
file holds one rule per condition band (`forensics.condition`: lossless, JPEG high / mid / low quality, small
images), each tuned on the validation composites whose files fall in that band, with a calibration of the
fused score fitted there (`ConditionalFusion`, written by `benchmarks/tune_desk_fusion.py`). A band whose
validation composites show the score separating too little gives the reader "cannot judge", with the reason.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .cells import CellMap

RULE_FILE = Path(__file__).with_name("fusion_rule.json")
METHOD_ID = "fusion-v2"  # v2: one rule and calibration per condition band (fusion_bands)
SMOOTH_TRUNCATE = 3.0  # the fused map's smoothing kernel reaches 3 sigmas (0.3 % of its weight lies beyond)


@dataclass(frozen=True)
class FusionRule:
    """The fusion's numbers (see the module docstring), with where they came from."""

    grid_gate: float = 3.0
    grid_weight: float = 1.0
    learned_weight: float = 0.5
    score_weight: float | None = None  # the learned share of the score (None: learned_weight)
    map_weight: float = 0.0  # weight of the fused map's z-scored contrast in the score
    # The grid's z-score enters the score only where its map does (s_g >= grid_gate): on re-saved files the grid
    # detector's small scores against a near-zero authentic spread are noise, not evidence (format 1: always).
    gated_grid_score: bool = False
    calibration: dict = field(default_factory=dict)  # method -> {"median": m, "scale": s} on val authentic
    learned_score: str = "gap"  # the learned model's image score (forensics.scores), chosen on the same composites
    provenance: str = "untuned defaults"
    # Gaussian sigma (pixels of the full-resolution map) applied to the fused map after the score is read: the dq
    # map is made of 8-px blocks and the learned map of 64-px cells, both coarser and noisier than a paste's
    # outline. Chosen per band on validation p-mAP (0: none, as rules written before it).
    smooth_px: float = 0.0
    # Flip the fused map when its high side covers more than half of the image, as the learned map does
    # (heatmap.apply_polarity): a paste is the smaller region, and a map that lights up the host instead (dq marks
    # the side without the primary compression, which may be the host) shows the reader the wrong part. The
    # bench's p-mAP cannot see it (it takes the better polarity); chosen per band on validation strict p-mAP.
    flip_majority: bool = False

    def to_json(self) -> str:
        """JSON text of the rule."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: str | Path = RULE_FILE) -> "FusionRule":
        """Read a rule written by `to_json` (defaults when the file does not exist)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        return cls(**json.loads(path.read_text()))


def calibrated(rule: FusionRule, method: str, score: float) -> float:
    """Robust z-score of a method's image score against the validation authentic images."""
    cal = rule.calibration.get(method) or {"median": 0.0, "scale": 1.0}
    return (float(score) - cal["median"]) / max(cal["scale"], 1e-9)


def map_contrast(heat: np.ndarray) -> float:
    """How much a map singles out a region: the mean of its hottest 5 % minus its median (0 for a flat map)."""
    v = np.asarray(heat, dtype=np.float32).ravel()
    if v.size == 0:
        return 0.0
    # One partition gives both (np.median would partition a second copy: 96 MB more at 24 MP): the 95 % rank and
    # the middle rank(s) land in place, and the median is np.median of the middle one or two values.
    k, lo, hi = int(0.95 * (v.size - 1)), (v.size - 1) // 2, v.size // 2
    part = np.partition(v, sorted({lo, hi, k}))
    return float(part[k:].mean() - np.median(part[lo:hi + 1]))


def _add_scaled(heat: np.ndarray, weight: float, other) -> None:
    """heat += weight * other, 256 rows at a time (a full-resolution temporary is 96 MB at 24 MP; a `CellMap`, as
    the classical detectors give, is expanded one band of rows at a time)."""
    if not isinstance(other, CellMap):
        other = np.asarray(other, np.float32)
    for y in range(0, heat.shape[0], 256):
        band = other.rows(y, y + 256) if isinstance(other, CellMap) else other[y:y + 256]
        heat[y:y + 256] += weight * band


def fuse(rule: FusionRule, learned: tuple[np.ndarray, float], grid: tuple[np.ndarray, float],
         dq: tuple[np.ndarray, float], pixel_step: int = 1) -> tuple[np.ndarray, float]:
    """(heatmap, score) of the fusion from the (heatmap, score) of the learned, grid and dq methods
    (``pixel_step``: the maps hold every k-th pixel of the image, as the tuning scripts keep them)."""
    (h_l, s_l), (h_g, s_g), (h_d, s_d) = learned, grid, dq
    # In place on one copy: at 24 MP each full-resolution map is 96 MB, and the plain expression held six of them.
    heat = np.array(h_l, dtype=np.float32)  # a copy (expanded from its cells when the learned map is a CellMap)
    heat *= rule.learned_weight
    _add_scaled(heat, 1 - rule.learned_weight, h_d)
    if s_g >= rule.grid_gate:
        heat *= 1 - rule.grid_weight
        _add_scaled(heat, rule.grid_weight, h_g)
    np.clip(heat, 0.0, 1.0, out=heat)
    sw = rule.learned_weight if rule.score_weight is None else rule.score_weight
    z_rest = sw * calibrated(rule, "learned", s_l) + (1 - sw) * calibrated(rule, "dq", s_d)
    z_grid = calibrated(rule, "grid", s_g) if s_g >= rule.grid_gate or not rule.gated_grid_score else -np.inf
    score = max(z_grid, z_rest)
    if rule.map_weight:
        score += rule.map_weight * calibrated(rule, "contrast", map_contrast(heat))
    if rule.flip_majority and np.count_nonzero(heat >= 0.5) > 0.5 * heat.size:  # the map only, as smoothing
        np.subtract(1.0, heat, out=heat)
    if rule.smooth_px > 0:  # the map only, after the score: the verdict is what it was without smoothing
        # in place: no second full-resolution map
        ndimage.gaussian_filter(heat, rule.smooth_px / pixel_step, output=heat, mode="nearest", truncate=SMOOTH_TRUNCATE)
    return heat, float(score)


__all__ = ["FusionRule", "RULE_FILE", "METHOD_ID", "SMOOTH_TRUNCATE", "calibrated", "fuse", "map_contrast"]
