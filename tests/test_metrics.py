"""Metrics: hand-computed cases and scikit-learn cross-checks."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, matthews_corrcoef, roc_auc_score

from exiflang.eval import metrics as M


def test_average_precision_hand_computed():
    # Ranking: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg).
    # Recall steps: 1/2 at precision 1, then 1/2 at precision 2/3 -> AP = 0.5 + 1/3.
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    labels = np.array([1, 0, 1, 0])
    assert M.average_precision(scores, labels) == pytest.approx(0.5 + 1 / 3)
    # AUC: of 4 (pos, neg) pairs, 3 are ordered correctly.
    assert M.roc_auc(scores, labels) == pytest.approx(0.75)


def test_ties_are_decided_together():
    # All scores equal: precision = prevalence at the only threshold, AUC = 0.5.
    scores = np.zeros(10)
    labels = np.array([1] * 3 + [0] * 7)
    assert M.average_precision(scores, labels) == pytest.approx(0.3)
    assert M.roc_auc(scores, labels) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_ap_auc_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.3
    scores = np.round(rng.random(500) + 0.4 * labels, 1)  # coarse values -> many ties
    assert M.average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert M.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_best_f1_mcc_match_sklearn_sweep(seed):
    rng = np.random.default_rng(100 + seed)
    mask = np.zeros((30, 40), bool)
    mask[5:15, 10:25] = True
    score = np.round(rng.random(mask.shape) * 0.7 + 0.3 * mask, 2)
    best_f1 = max(f1_score(mask.ravel(), score.ravel() >= t, zero_division=0) for t in np.unique(score))
    best_mcc = max(matthews_corrcoef(mask.ravel(), score.ravel() >= t) for t in np.unique(score))
    assert M.best_f1(score, mask) == pytest.approx(best_f1, abs=1e-12)
    assert M.best_mcc(score, mask) == pytest.approx(max(best_mcc, 0.0), abs=1e-12)
    assert M.f1_at(score, mask, 0.5) == pytest.approx(f1_score(mask.ravel(), score.ravel() >= 0.5))
    assert M.mcc_at(score, mask, 0.5) == pytest.approx(matthews_corrcoef(mask.ravel(), score.ravel() >= 0.5))


def test_ciou_hand_computed():
    # 1x4 image, mask = [1, 1, 0, 0]; map = [0.9, 0.2, 0.5, 0.1].
    mask = np.array([[1, 1, 0, 0]], bool)
    score = np.array([[0.9, 0.2, 0.5, 0.1]])
    # Threshold 0.5 -> pred [1,0,1,0]: IoU+ = 1/3, IoU- = 1/3 -> 1/3.
    assert M.ciou_at(score, mask, 0.5) == pytest.approx(1 / 3)
    # Single threshold sweep: t=0.9 -> pred [1,0,0,0]: IoU+ = 1/2, IoU- = 2/3 -> 7/12 (best).
    assert M.ciou_single(score, mask) == pytest.approx(7 / 12)
    # Per class: best IoU+ over t: t=0.9 -> 1/2, t=0.2 -> pred [1,1,1,0] -> 2/3 (best);
    # best IoU- : t=0.9 -> 2/3 (best). -> (2/3 + 2/3) / 2.
    assert M.ciou_per_class(score, mask) == pytest.approx(2 / 3)
    assert M.ciou_per_class(score, mask) >= M.ciou_single(score, mask)


def test_polarity_free_takes_the_better_of_map_and_inverse():
    mask = np.zeros((20, 20), bool)
    mask[:5] = True
    perfect_inverted = np.where(mask, 0.1, 0.9)  # the map flags the background
    m = M.image_localization_metrics(perfect_inverted, mask)
    assert m["ap"] == pytest.approx(1.0)
    assert m["ap_strict"] == pytest.approx(mask.mean())  # strict AP: everything tied or wrong
    assert m["ciou"] == pytest.approx(1.0)
    # Strict per-class cIoU of a fully wrong map sits at its floor: 'predict all' gives IoU+ = 1/4,
    # 'predict none' gives IoU- = 3/4 -> 0.5 (any map scores at least this; see the metrics doc).
    assert m["ciou_strict"] == pytest.approx(0.5)
    assert m["f1_best"] == pytest.approx(1.0) and m["mcc_best"] == pytest.approx(1.0)
    assert m["pixel_auc"] == pytest.approx(0.0) and m["pixel_auc_pf"] == pytest.approx(1.0)
    assert m["f1_fixed"] == 0.0  # fixed threshold trusts the declared polarity
    assert M.pmap([perfect_inverted], [mask]) == pytest.approx(1.0)
    assert M.pmap([perfect_inverted], [mask], polarity_free=False) == pytest.approx(ap_strict := mask.mean())
    assert ap_strict == m["ap_strict"]


def test_detection_metrics_and_input_errors():
    d = M.detection_metrics(np.array([0.2, 0.8, 0.6, 0.4]), np.array([0, 1, 0, 1]))
    assert d["det_auc"] == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4]))
    assert d["det_ap"] == pytest.approx(average_precision_score([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4]))
    with pytest.raises(M.MetricInputError, match="shape"):
        M.average_precision(np.zeros(3), np.zeros(4))
    with pytest.raises(M.MetricInputError, match="NaN"):
        M.average_precision(np.array([np.nan, 1.0]), np.array([0, 1]))
    with pytest.raises(M.MetricInputError, match="at least one spliced"):
        M.image_localization_metrics(np.zeros((4, 4)), np.zeros((4, 4), bool))
    assert np.isnan(M.roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))
