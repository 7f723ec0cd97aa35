"""Do the pixels match the file's own EXIF? Own-text similarity against a reference set of other cameras.

Raw similarities are not comparable across images (a flat sky scores lower against every text than
a textured wall), so the own-text score is calibrated against the same image's scores for reference
texts of *other* cameras:

* `percentile`: fraction of reference texts that score strictly below the own text (1.0 = best of all);
* `z`: (own - mean(reference)) / std(reference);
* `probability`: softmax over [own, references...] with the model's logit scale, i.e. the probability
  the contrastive model assigns to "this is the right caption" among these candidates.

The explanation is a leave-one-tag-out: for each tag, the change in score when it is dropped from the
own text. A tag whose removal *raises* the score (negative effect) is one the pixels disagree with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from exiflang.probes.ranking import AUTO_CACHE, Candidate, encode_texts, patch_text_scores

from ..errors import ExiflangError

# Verdict thresholds on `percentile` (see `verdict_for`): chosen so that "inconsistent" means the own
# EXIF is in the bottom quarter of other cameras' descriptions.
CONSISTENT_AT = 0.75
INCONSISTENT_BELOW = 0.25

REFERENCE_FILE = Path(__file__).resolve().parent / "reference_texts.json"


class CheckError(ExiflangError):
    """The EXIF check cannot run; the message names the input and the cause."""


class TooLittleExifError(CheckError):
    """The file's EXIF does not say enough (no tags, or no Make/Model) for a verdict."""


@dataclass
class TagEffect:
    """Score change when one tag is left out of the own text (negative: the pixels disagree with it)."""

    tag: str
    value: str
    effect: float


@dataclass
class CheckResult:
    """Calibrated agreement between an image's pixels and its own EXIF text."""

    own_text: str
    own_score: float
    reference_scores: np.ndarray
    percentile: float
    z: float
    probability: float
    verdict: str
    best_reference: Candidate | None
    best_reference_score: float
    tag_effects: list[TagEffect] = field(default_factory=list)

    def to_dict(self, n_tags: int = 5) -> dict:
        """JSON-ready summary (the `n_tags` least-agreeing tags)."""
        ref = self.reference_scores
        return {
            "verdict": self.verdict,
            "percentile": round(self.percentile, 4),
            "z": round(self.z, 4),
            "probability": round(self.probability, 4),
            "own_score": round(self.own_score, 6),
            "n_references": int(ref.size),
            "reference_mean": round(float(ref.mean()), 6),
            "reference_std": round(float(ref.std()), 6),
            "best_reference": None if self.best_reference is None else {
                "make": self.best_reference.make, "model": self.best_reference.model,
                "score": round(self.best_reference_score, 6)},
            "least_agreeing_tags": [
                {"tag": t.tag, "value": t.value, "effect": round(t.effect, 6)} for t in self.tag_effects[:n_tags]],
            "own_text": self.own_text,
        }


def logit_scale_value(model) -> float:
    """The model's similarity multiplier (`ExifModel.logit_scale`, e.g. 100), as a float."""
    raw = getattr(model, "logit_scale", None)
    if raw is None:
        return 1.0 / 0.07  # CLIP's initial temperature
    return float(raw.detach().float().item()) if hasattr(raw, "detach") else float(raw)


def percentile_of(own: float, references: np.ndarray) -> float:
    """Fraction of references scoring strictly below `own`, ties counted half."""
    references = np.asarray(references, dtype=np.float64)
    if references.size == 0:
        raise CheckError("the reference set is empty")
    below = np.sum(references < own) + 0.5 * np.sum(references == own)
    return float(below / references.size)


def softmax_probability(own: float, references: np.ndarray, scale: float) -> float:
    """Softmax probability of the own score among [own, references] at temperature 1/scale."""
    logits = scale * np.concatenate([[own], np.asarray(references, dtype=np.float64)])
    logits -= logits.max()
    p = np.exp(logits)
    return float(p[0] / p.sum())


def verdict_for(percentile: float) -> str:
    """'consistent', 'uncertain' or 'inconsistent' from the percentile thresholds above."""
    if percentile >= CONSISTENT_AT:
        return "consistent"
    if percentile < INCONSISTENT_BELOW:
        return "inconsistent"
    return "uncertain"


def other_camera_references(references: Sequence[Candidate], make: str, model_name: str,
                            own_text: str) -> list[Candidate]:
    """Drop references of the image's own camera (same Make and Model) and copies of its own text."""
    key = (make.strip().lower(), model_name.strip().lower())
    return [r for r in references
            if r.text != own_text and (r.make.strip().lower(), r.model.strip().lower()) != key]


def load_reference_set(path: str | Path | None = None, text_config=None) -> list[Candidate]:
    """The shipped reference texts (one per camera of the shared photos), or an index/JSON/text file."""
    from exiflang.probes.ranking import CandidateError, load_candidates

    path = Path(path) if path is not None else REFERENCE_FILE
    try:
        return load_candidates(path, text_config)
    except CandidateError as exc:
        raise CheckError(str(exc)) from exc


def leave_one_tag_out(patch_emb: np.ndarray, tags: dict[str, str], model, own_score: float,
                      text_config=None, device: str = "cpu") -> list[TagEffect]:
    """Effect of each rendered tag: own score minus the score of the text without it (ascending)."""
    from exiflang.exif import exif_to_text

    own_text = exif_to_text(tags, text_config)
    names, texts = [], []
    for tag in tags:
        reduced = {k: v for k, v in tags.items() if k != tag}
        text = exif_to_text(reduced, text_config)
        if text != own_text:  # tags the text format does not render cannot explain anything
            names.append(tag)
            texts.append(text)
    if not texts:
        return []
    scores = patch_text_scores(patch_emb, encode_texts(model, texts, device=device))
    effects = [TagEffect(tag, str(tags[tag]), float(own_score - s)) for tag, s in zip(names, scores)]
    return sorted(effects, key=lambda e: e.effect)


def too_little_exif(tags: dict[str, str]) -> str | None:
    """Why the tags cannot be checked (no tags; neither Make nor Model, the camera the check is about), or None."""
    if not tags:
        return "the file has no EXIF tags to check"
    if not str(tags.get("Make", "")).strip() and not str(tags.get("Model", "")).strip():
        return (f"too little EXIF to check: no Make or Model tag, so no camera to compare ({len(tags)} other "
                f"tag{'s' if len(tags) != 1 else ''})")
    return None


def check_exif(patch_emb: np.ndarray, tags: dict[str, str], references: Sequence[Candidate], model,
               text_config=None, explain: bool = True, device: str = "cpu", cache_dir: "Path | str | None" = AUTO_CACHE,
               progress: bool = False) -> CheckResult:
    """Calibrate the image's similarity to its own EXIF text against other cameras' reference texts.

    The reference texts' embeddings come from the text-embedding cache (`cache_dir`); the own text's do not.
    """
    from exiflang.exif import exif_to_text

    problem = too_little_exif(tags)
    if problem:
        raise TooLittleExifError(problem)
    own_text = exif_to_text(tags, text_config)
    refs = other_camera_references(references, str(tags.get("Make", "")), str(tags.get("Model", "")), own_text)
    if not refs:
        raise CheckError("no reference text of another camera is left to compare against")
    emb = np.concatenate([encode_texts(model, [own_text], device=device),
                          encode_texts(model, [r.text for r in refs], device=device, cache_dir=cache_dir,
                                       progress=progress)])
    scores = patch_text_scores(patch_emb, emb)
    own, ref_scores = float(scores[0]), scores[1:].astype(np.float64)
    pct = percentile_of(own, ref_scores)
    std = float(ref_scores.std())
    z = (own - float(ref_scores.mean())) / std if std > 0 else 0.0
    best = int(np.argmax(ref_scores))
    effects = leave_one_tag_out(patch_emb, tags, model, own, text_config, device) if explain else []
    return CheckResult(
        own_text=own_text, own_score=own, reference_scores=ref_scores, percentile=pct, z=float(z),
        probability=softmax_probability(own, ref_scores, logit_scale_value(model)), verdict=verdict_for(pct),
        best_reference=refs[best], best_reference_score=float(ref_scores[best]), tag_effects=effects,
    )




def build_reference_set(records: Sequence[dict]) -> list[dict]:
    """One entry per camera ({make, model, n_photos, source, tags}) from index-like records.

    Only the tags that the default text format renders are kept (no private or per-file tags), so the
    shipped file stays small and holds no pixels, only camera descriptions.
    """
    from exiflang.exif import TextConfig
    from exiflang.exif.text import selected_tags
    from exiflang.probes.ranking import camera_key, representative_record

    by_camera: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        by_camera.setdefault(camera_key(rec), []).append(rec)
    out = []
    for (make, model_name), recs in sorted(by_camera.items()):
        rep = representative_record(recs)
        tags = rep.get("tags") or {}
        keep = selected_tags(tags, TextConfig())
        out.append({"make": make, "model": model_name, "n_photos": len(recs),
                    "source": str(rep.get("relpath", "")), "tags": {t: str(tags[t]) for t in keep}})
    return out


__all__ = [
    "CheckError", "TagEffect", "CheckResult", "check_exif", "percentile_of", "softmax_probability",
    "verdict_for", "other_camera_references", "load_reference_set", "leave_one_tag_out", "logit_scale_value",
    "REFERENCE_FILE", "CONSISTENT_AT", "INCONSISTENT_BELOW", "build_reference_set",
]
