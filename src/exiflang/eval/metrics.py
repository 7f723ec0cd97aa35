"""Localisation and detection metrics for splice benchmarks: plain functions over numpy arrays.

Conventions (used by every function here):
* ``score_map`` is a float HxW map where **high = manipulated** (the declared polarity); ``mask`` is a
  bool HxW ground truth (True = spliced). A pixel is predicted manipulated when ``score >= t``.
* "strict" metrics trust the declared polarity. "Polarity-free" metrics take the better of the map and
  its inverse ``1 - map``, per image: a consistency map (as in Huh et al. 2018, "Fighting Fake News", and
  Zheng et al. 2023, "EXIF as Language") only says that two regions disagree, not which one is the splice,
  so both papers score the map and its inverse and keep the better one ("permuted").
* Per-image localisation metrics are averaged over the manipulated images only (an authentic image has no
  positive pixel, so AP, IoU of the spliced class etc. are undefined there).

Definitions:
* **AP** (average precision) is the step-wise area under the precision-recall curve,
  ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, identical to
  ``sklearn.metrics.average_precision_score``. **p-mAP** = mean over spliced images of
  ``max(AP(map), AP(1 - map))``; ``pmap_strict`` = mean of ``AP(map)``.
* **cIoU** (class-balanced IoU) averages the IoU of the two classes, spliced (pixels predicted manipulated
  vs. mask) and authentic (pixels predicted authentic vs. ~mask), so that a tiny splice and the large
  background count equally. The papers pick thresholds by oracle; we provide both readings:
  - ``ciou_per_class`` (the paper's version as we read it, and the ``ciou`` of the summary): each class gets
    its own best threshold on the image, ``(max_t IoU_spliced(t) + max_t IoU_authentic(t)) / 2``. It is an
    upper bound of the single-threshold version.
  - ``ciou_single``: one threshold for both classes, ``max_t (IoU_spliced(t) + IoU_authentic(t)) / 2``; a
    segmentation one could actually output.
  Either is reported polarity-free (``ciou``) or strict (``ciou_strict``).
* **F1 / MCC best**: the best value over all thresholds of the image (per-image oracle threshold, the
  protocol of the splice-localisation literature that the papers follow), polarity-free. **F1 / MCC fixed**: at
  a fixed threshold (default 0.5 on a [0, 1] map), declared polarity.
* **pixel AUC**: per-image ROC AUC of the map against the mask (strict), averaged over spliced images.
* **detection AP / AUC**: one score per image (high = manipulated) against the image label, over all images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ExiflangError

EPS = 1e-12


class MetricInputError(ExiflangError, ValueError):
    """Arrays passed to a metric have incompatible shapes or contents."""


@dataclass
class ThresholdCounts:
    """Confusion counts at every distinct threshold, from 'predict nothing' to 'predict everything'."""

    thresholds: np.ndarray  # descending; +inf first (nothing predicted positive)
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def fn(self) -> np.ndarray:
        """False negatives at each threshold."""
        return self.n_pos - self.tp

    @property
    def tn(self) -> np.ndarray:
        """True negatives at each threshold."""
        return self.n_neg - self.fp


def _check_pair(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a score array and a label array of the same shape; labels become bool."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise MetricInputError(f"score shape {scores.shape} does not match label/mask shape {labels.shape}")
    if scores.size == 0:
        raise MetricInputError("empty score array")
    if not np.all(np.isfinite(scores)):
        raise MetricInputError("scores contain NaN or infinity")
    return scores.ravel(), labels.ravel().astype(bool)


def threshold_counts(scores: np.ndarray, labels: np.ndarray) -> ThresholdCounts:
    """Cumulative TP/FP for 'score >= t' at each distinct score t (descending), plus t = +inf."""
    scores, labels = _check_pair(scores, labels)
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    y = labels[order]
    # The last index of each run of equal scores closes a threshold (ties are decided together).
    last_of_run = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last_of_run]
    fp = (last_of_run + 1) - tp
    return ThresholdCounts(
        thresholds=np.r_[np.inf, s[last_of_run]],
        tp=np.r_[0, tp].astype(np.float64),
        fp=np.r_[0, fp].astype(np.float64),
        n_pos=int(labels.sum()),
        n_neg=int(labels.size - labels.sum()),
    )


def _ap_from_counts(c: ThresholdCounts) -> float:
    """Step-wise average precision from threshold counts (sklearn's definition)."""
    if c.n_pos == 0:
        return float("nan")
    tp, fp = c.tp[1:], c.fp[1:]
    precision = tp / np.maximum(tp + fp, EPS)
    recall = tp / c.n_pos
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


def _auc_from_counts(c: ThresholdCounts) -> float:
    """ROC AUC by the trapezoid rule over the threshold counts (ties count one half)."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    tpr = c.tp / c.n_pos
    fpr = c.fp / c.n_neg
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of scores (high = positive) against binary labels; NaN without positives."""
    from sklearn.metrics import average_precision_score

    s, y = _check_pair(np.asarray(scores, dtype=np.float64), labels)
    return float(average_precision_score(y, s)) if y.any() else float("nan")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve; NaN when one class is absent."""
    from sklearn.metrics import roc_auc_score

    s, y = _check_pair(np.asarray(scores, dtype=np.float64), labels)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else float("nan")


def _f1_curve(c: ThresholdCounts) -> np.ndarray:
    """F1 at each threshold (0 where undefined)."""
    denom = 2 * c.tp + c.fp + c.fn
    return np.where(denom > 0, 2 * c.tp / np.maximum(denom, EPS), 0.0)


def _mcc_curve(c: ThresholdCounts) -> np.ndarray:
    """Matthews correlation at each threshold (0 where undefined, as in sklearn)."""
    tp, fp, fn, tn = c.tp, c.fp, c.fn, c.tn
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denom > 0, (tp * tn - fp * fn) / np.maximum(denom, EPS), 0.0)


def _iou_curves(c: ThresholdCounts) -> tuple[np.ndarray, np.ndarray]:
    """IoU of the spliced class and of the authentic class at each threshold (1 when both sets are empty)."""
    u_pos = c.tp + c.fp + c.fn
    u_neg = c.tn + c.fn + c.fp
    iou_pos = np.where(u_pos > 0, c.tp / np.maximum(u_pos, EPS), 1.0)
    iou_neg = np.where(u_neg > 0, c.tn / np.maximum(u_neg, EPS), 1.0)
    return iou_pos, iou_neg


def f1_at(score_map: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """F1 of 'score >= threshold' against the mask."""
    from sklearn.metrics import f1_score

    s, y = _check_pair(score_map, mask)
    return float(f1_score(y, s >= threshold, zero_division=0.0))


def mcc_at(score_map: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """Matthews correlation of 'score >= threshold' against the mask (0 when undefined)."""
    from sklearn.metrics import matthews_corrcoef

    s, y = _check_pair(score_map, mask)
    return float(matthews_corrcoef(y, s >= threshold))


def ciou_at(score_map: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """Class-balanced IoU of 'score >= threshold': mean of the spliced-class and authentic-class IoUs."""
    s, y = _check_pair(score_map, mask)
    pred = s >= threshold
    inter_pos, union_pos = np.sum(pred & y), np.sum(pred | y)
    inter_neg, union_neg = np.sum(~pred & ~y), np.sum(~pred | ~y)
    iou_pos = inter_pos / union_pos if union_pos else 1.0
    iou_neg = inter_neg / union_neg if union_neg else 1.0
    return float((iou_pos + iou_neg) / 2)


def ciou_per_class(score_map: np.ndarray, mask: np.ndarray) -> float:
    """Paper-style cIoU: each class's IoU at its own best threshold, averaged (declared polarity)."""
    iou_pos, iou_neg = _iou_curves(threshold_counts(score_map, mask))
    return float((iou_pos.max() + iou_neg.max()) / 2)


def ciou_single(score_map: np.ndarray, mask: np.ndarray) -> float:
    """Single-threshold cIoU: best over thresholds of the mean of both class IoUs (declared polarity)."""
    iou_pos, iou_neg = _iou_curves(threshold_counts(score_map, mask))
    return float(((iou_pos + iou_neg) / 2).max())


def best_f1(score_map: np.ndarray, mask: np.ndarray) -> float:
    """F1 at the image's best threshold (declared polarity)."""
    return float(_f1_curve(threshold_counts(score_map, mask)).max())


def best_mcc(score_map: np.ndarray, mask: np.ndarray) -> float:
    """MCC at the image's best threshold (declared polarity)."""
    return float(_mcc_curve(threshold_counts(score_map, mask)).max())


def _curves_metrics(c: ThresholdCounts) -> dict[str, float]:
    """All threshold-sweep metrics of one polarity from one set of counts.

    Hand-written on purpose: scikit-learn has no best-over-thresholds F1, MCC or class IoU, and one sort of a
    map gives all six numbers here (AP and AUC included) where the library would sort it once per metric and
    loop over thresholds for the rest (benchmarks/metrics_speed.py measures it).
    """
    iou_pos, iou_neg = _iou_curves(c)
    return {
        "ap": _ap_from_counts(c),
        "auc": _auc_from_counts(c),
        "f1_best": float(_f1_curve(c).max()),
        "mcc_best": float(_mcc_curve(c).max()),
        "ciou": float((iou_pos.max() + iou_neg.max()) / 2),
        "ciou_single": float(((iou_pos + iou_neg) / 2).max()),
    }


def image_localization_metrics(score_map: np.ndarray, mask: np.ndarray, fixed_threshold: float = 0.5) -> dict[str, float]:
    """Every per-image localisation metric of one spliced image, strict and polarity-free (see module doc)."""
    score_map = np.asarray(score_map, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        raise MetricInputError("localisation metrics need a mask with at least one spliced pixel")
    strict = _curves_metrics(threshold_counts(score_map, mask))
    # The inverse map 1 - s ranks pixels in reverse order; its counts are those of -s.
    inverse = _curves_metrics(threshold_counts(-score_map, mask))
    out = {
        "ap_strict": strict["ap"],
        "ap": max(strict["ap"], inverse["ap"]),
        "ciou_strict": strict["ciou"],
        "ciou": max(strict["ciou"], inverse["ciou"]),
        "ciou_single_strict": strict["ciou_single"],
        "ciou_single": max(strict["ciou_single"], inverse["ciou_single"]),
        "f1_best_strict": strict["f1_best"],
        "f1_best": max(strict["f1_best"], inverse["f1_best"]),
        "mcc_best_strict": strict["mcc_best"],
        "mcc_best": max(strict["mcc_best"], inverse["mcc_best"]),
        "pixel_auc": strict["auc"],
        "pixel_auc_pf": max(strict["auc"], inverse["auc"]),
        "f1_fixed": f1_at(score_map, mask, fixed_threshold),
        "mcc_fixed": mcc_at(score_map, mask, fixed_threshold),
        "ciou_fixed": ciou_at(score_map, mask, fixed_threshold),
    }
    return out


def pmap(score_maps: list[np.ndarray], masks: list[np.ndarray], polarity_free: bool = True) -> float:
    """Mean over spliced images of per-image AP (max over map and inverse when polarity_free)."""
    aps = []
    for s, m in zip(score_maps, masks, strict=True):
        s = np.asarray(s, dtype=np.float64)
        ap = average_precision(s, m)
        if polarity_free:
            ap = max(ap, average_precision(-s, m))
        aps.append(ap)
    return float(np.mean(aps)) if aps else float("nan")


def detection_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Image-level detection AP and ROC AUC of scores (high = manipulated) against labels (1 = manipulated)."""
    return {"det_ap": average_precision(scores, labels), "det_auc": roc_auc(scores, labels)}


__all__ = [
    "MetricInputError",
    "ThresholdCounts",
    "threshold_counts",
    "average_precision",
    "roc_auc",
    "f1_at",
    "mcc_at",
    "ciou_at",
    "ciou_per_class",
    "ciou_single",
    "best_f1",
    "best_mcc",
    "image_localization_metrics",
    "pmap",
    "detection_metrics",
]
