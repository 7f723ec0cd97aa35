"""The shipped fusion, per condition band: which rule fuses the maps of a file, and what its score means.

`fusion_rule.json` (format 2, written by `benchmarks/tune_desk_fusion.py`) holds, for each band of
`forensics.condition` (lossless, JPEG high / mid / low quality, small images): the fusion rule tuned on the
validation composites whose files fall in that band, a calibration of the fused score fitted on the same
composites (`forensics.calibration.Calibration`, Platt), how well the score separated spliced from authentic
there (AUC), and whether a verdict may be given at all. The verdict of an image is decided here, from the file's
own condition, so the reader is never shown a probability fitted on another kind of file.

A format-1 file (one rule, no calibration) is read as that rule for every band, with no verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..jsonfile import read_json
from .calibration import CANNOT_JUDGE, VERDICTS, Calibration, CalibrationError
from .condition import BAND_WORDS, BANDS, FileCondition
from .fusion import RULE_FILE, FusionRule
from .reliability import too_little_evidence

FORMAT = "exiflang-fusion-2"
# Below this validation AUC of the fused score in a band, the band gives "cannot judge": spliced and authentic
# files of that kind score too much alike for any verdict to be a promise (chosen before fitting).
MIN_AUC = 0.70
# "Likely authentic" also needs the learned map, read alone by its band's own calibration, not to lean towards
# manipulated (probability below one half). In the lossless band the fused score rests on the JPEG-grid detector,
# whose silence rules out only pastes with a shifted 8x8 grid; when the learned map dissents, the green badge would
# rest on that silence alone (measured with the rule on fresh test composites: docs/RESULTS.md).
DISSENT_PROBABILITY = 0.5


class FusionRuleError(CalibrationError):
    """The fusion rule file is missing fields or has wrong ones."""


@dataclass
class BandFusion:
    """One band's rule, calibration and the validation measurement behind them."""

    rule: FusionRule
    calibration: Calibration | None = None
    auc: float | None = None  # validation detection AUC of the fused score in this band
    n_authentic: int = 0
    n_manipulated: int = 0
    long_sides: tuple[int, int] | None = None  # shortest and longest long side of the band's fit images
    learned_calibration: Calibration | None = None  # the learned component's score alone, fitted on the same images

    @property
    def judges(self) -> bool:
        """Whether this band may give a verdict: calibrated, and its score separated on validation."""
        return self.calibration is not None and self.auc is not None and self.auc >= MIN_AUC

    def to_dict(self) -> dict:
        return {"rule": {f.name: getattr(self.rule, f.name) for f in fields(self.rule)},
                "calibration": self.calibration.to_dict() if self.calibration else None, "auc": self.auc,
                "n_authentic": self.n_authentic, "n_manipulated": self.n_manipulated,
                "long_sides": list(self.long_sides) if self.long_sides else None,
                "learned_calibration": self.learned_calibration.to_dict() if self.learned_calibration else None}

    @classmethod
    def from_dict(cls, data: dict) -> "BandFusion":
        known = {f.name for f in fields(FusionRule)}
        rule = FusionRule(**{k: v for k, v in dict(data["rule"]).items() if k in known})
        cal = Calibration.from_dict(data["calibration"]) if data.get("calibration") else None
        auc, sides, learned = data.get("auc"), data.get("long_sides"), data.get("learned_calibration")
        return cls(rule, cal, None if auc is None else float(auc), int(data.get("n_authentic", 0)),
                   int(data.get("n_manipulated", 0)), (int(sides[0]), int(sides[1])) if sides else None,
                   Calibration.from_dict(learned) if learned else None)


@dataclass
class Decision:
    """What the reader is told about one image: probability, verdict, and why or with what caveat."""

    probability: float | None = None
    verdict: str | None = None
    reason: str | None = None  # why "cannot judge", or why "inconclusive" where the learned map dissents
    caveat: str | None = None  # how this image differs from what the verdict was measured on


@dataclass
class ConditionalFusion:
    """The per-band rules (see the module docstring)."""

    bands: dict[str, BandFusion]
    learned_score: str = "dissim"
    model_id: str = ""
    per_side: int | None = None
    provenance: str = ""
    extra: dict = field(default_factory=dict)

    def rule_for(self, condition: FileCondition) -> FusionRule:
        """The rule of the file's band."""
        return self.rule_for_band(condition.band)

    def rule_for_band(self, band: str) -> FusionRule:
        """The band's rule (the lossless one where the band has none, else the first)."""
        found = self.bands.get(band) or self.bands.get("lossless") or next(iter(self.bands.values()))
        return found.rule

    def decide(self, score: float, condition: FileCondition, model_id: str, per_side: int, patch: int,
               reliability=None, learned_score: float | None = None) -> Decision:
        """Probability and verdict of a fused score for a file in `condition`, or "cannot judge" and why
        (`reliability`: a forensics.reliability.Reliability of its pixels, when measured; `learned_score`: the
        learned component's own score, which may withhold "likely authentic", see DISSENT_PROBABILITY)."""
        band = self.bands.get(condition.band)
        if band is None or band.calibration is None:
            return Decision(caveat=f"no calibration was fitted for {BAND_WORDS[condition.band]}: no verdict")
        if self.model_id and model_id and not model_id.endswith(self.model_id):
            return Decision(caveat=f"the fusion was calibrated with model {self.model_id}, not {model_id}: no verdict")
        p = band.calibration.probability(score)
        caveat = _unlike_the_fit_set(condition, per_side, self.per_side, band.long_sides or FITTED_LONG_SIDES)
        small = too_little_evidence(condition.height, condition.width, patch, reliability)
        if small:
            return Decision(p, CANNOT_JUDGE, small, caveat)
        if not band.judges:
            return Decision(p, CANNOT_JUDGE, (
                f"on {BAND_WORDS[condition.band]} spliced and authentic images score too much alike (validation "
                f"AUC {band.auc:.2f} on {band.n_manipulated} + {band.n_authentic} composites; a verdict needs "
                f"{MIN_AUC:.2f})"), caveat)
        verdict = band.calibration.verdict(p)
        if verdict == VERDICTS[0] and band.learned_calibration is not None and learned_score is not None:
            alone = band.learned_calibration.probability(learned_score)
            if alone >= DISSENT_PROBABILITY:
                return Decision(p, VERDICTS[1], (
                    f"the combined evidence leans authentic ({p:.0%}), but the learned map alone leans manipulated "
                    f"({alone:.0%}), so no 'likely authentic'"), caveat)
        return Decision(p, verdict, None, caveat)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "learned_score": self.learned_score, "model_id": self.model_id,
                "per_side": self.per_side, "provenance": self.provenance, "extra": self.extra,
                "bands": {name: band.to_dict() for name, band in self.bands.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "ConditionalFusion":
        if data.get("format") != FORMAT:  # format 1: one rule for every file, no calibration
            known = {f.name for f in fields(FusionRule)}
            rule = FusionRule(**{k: v for k, v in data.items() if k in known})
            return cls({band: BandFusion(rule) for band in BANDS}, rule.learned_score, provenance=rule.provenance)
        try:
            bands = {str(k): BandFusion.from_dict(v) for k, v in dict(data["bands"]).items() if k in BANDS}
            per_side = data.get("per_side")
            return cls(bands, str(data.get("learned_score", "dissim")), str(data.get("model_id", "")),
                       None if per_side is None else int(per_side), str(data.get("provenance", "")),
                       dict(data.get("extra") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise FusionRuleError(f"fusion rule file lacks a field or has a wrong one ({str(exc)[:200]})") from None

    @classmethod
    def load(cls, path: str | Path = RULE_FILE) -> "ConditionalFusion":
        """Read the rule file (the shipped one by default); built-in defaults when it does not exist."""
        path = Path(path)
        if not path.is_file():
            return cls({band: BandFusion(FusionRule()) for band in BANDS}, "gap")
        data = read_json(path, FusionRuleError)
        if not isinstance(data, dict) or not (data.get("bands") or "grid_gate" in data):
            raise FusionRuleError(f"{path}: not a fusion rule file")
        return cls.from_dict(data)


# The long sides of the validation desk composites, for a rule file that does not record each band's own (written
# before the tune script recorded them): the held-out cameras' 1024x768 photos, as they are or downscaled (social
# chain 0.5-0.8x, small images 512 px). A file outside its band's range (with the 0.8-1.25 tolerance of
# `calibration.unmeasured_conditions`) gets a probability that was not measured there.
FITTED_LONG_SIDES = (512, 1024)


def _unlike_the_fit_set(condition: FileCondition, per_side: int, fitted_per_side: int | None,
                        long_sides: tuple[int, int] = FITTED_LONG_SIDES) -> str | None:
    """How a file and its analysis differ from what the band was calibrated on, in plain words, or None."""
    reasons = []
    long_side, (low, high) = max(condition.height, condition.width), long_sides
    if not 0.8 * low <= long_side <= 1.25 * high:
        seen = f"{low}" if low == high else f"{low}-{high}"
        reasons.append(f"its longer side is {long_side} px (the calibration saw {seen} px)")
    if fitted_per_side and per_side != fitted_per_side:
        reasons.append(f"analysed at {per_side} patches per side, calibrated at {fitted_per_side}")
    return "; ".join(reasons) or None


def fuse_file(fusion: ConditionalFusion, learned: tuple, grid: tuple, dq: tuple, condition: FileCondition,
              model_id: str, per_side: int, patch: int = 128, reliability=None) -> tuple:
    """(heatmap, score, Decision) of one file: its band's rule fuses the (heatmap, score) of the three methods,
    its band's calibration reads the fused score."""
    from .fusion import fuse

    heat, score = fuse(fusion.rule_for(condition), learned, grid, dq)
    return heat, score, fusion.decide(score, condition, model_id, per_side, patch, reliability, float(learned[1]))


__all__ = ["BandFusion", "ConditionalFusion", "DISSENT_PROBABILITY", "Decision", "FORMAT", "FusionRuleError", "MIN_AUC",
           "fuse_file"]
