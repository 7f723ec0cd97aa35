"""The k1 probe of the radial protocol: k1 bins (logistic regression) on ring features, k1 from the posterior.

Fitted on `exiflang.probes.radial` ring features of synthetically distorted frames. The k1 estimate is the
posterior mean over the bins (each bin at its training frames' mean k1), its uncertainty the posterior std:
a ridge regression of k1 on the same features did no better than predicting the mean (the cues wrap: a warp
shifts the JPEG block grid by its displacement mod 8), the bins did. Evaluation splits by camera (no camera on
both sides), and the regularisation is chosen inside the training cameras (grouped inner folds), never on the
test cameras. `shipped_calibrator` fits the probe that ships (exiflang.probes.calibrator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ExiflangError

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)  # logistic regression: inverse L2 strength on standardised features


class K1ProbeError(ExiflangError):
    """A k1 probe cannot be fitted, read or applied; the message says why."""


def group_folds(groups: Sequence[str], n_folds: int, seed: int) -> list[np.ndarray]:
    """Item indices of each fold, whole groups (cameras) per fold, folds filled in turn by random group order."""
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = {g: 0 for g in uniq}
    for g in groups:
        sizes[g] += 1
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    totals = [0] * n_folds
    for j in order:  # the next camera goes to the fold with fewest photos so far: balanced folds
        k = int(np.argmin(totals))
        folds[k].append(uniq[j])
        totals[k] += sizes[uniq[j]]
    return [np.array([i for i, g in enumerate(groups) if g in set(f)], dtype=np.int64) for f in folds]


def _flatten(feats: np.ndarray, labels: np.ndarray, k1: np.ndarray, photos: np.ndarray):
    """Versions of the chosen photos as rows: (x [n*V, F], bin [n*V], k1 [n*V])."""
    return (feats[photos].reshape(-1, feats.shape[-1]), labels[photos].reshape(-1), k1[photos].reshape(-1))


@dataclass
class Heads:
    """Standardisation + the bin head (multinomial logistic regression); k1 comes from its posterior."""

    mean: np.ndarray
    scale: np.ndarray
    cls_w: np.ndarray
    cls_b: np.ndarray
    c: float = 1.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Bin logits [N, n_bins]."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.cls_w + self.cls_b


def fit_heads(x: np.ndarray, bins: np.ndarray, c: float, n_bins: int) -> Heads:
    """The bin head on rows x [N, F]; every bin 0..n_bins-1 gets a logit column."""
    from .linear import fit_logistic

    clf = fit_logistic(x, bins, c=c)
    cls_w = np.zeros((x.shape[1], n_bins))
    cls_b = np.full(n_bins, -1e4)  # a bin absent from training is never predicted
    for j, cls in enumerate(clf.classes_):
        cls_w[:, int(cls)], cls_b[int(cls)] = clf.coef_[:, j], clf.intercept_[j]
    return Heads(clf.mean_.astype(np.float64), clf.scale_.astype(np.float64), cls_w, cls_b, c)


def _inner_choice(feats, labels, groups, photos, n_bins, seed) -> float:
    """C with the best bin accuracy over 3 grouped inner folds of the training photos (cameras kept whole)."""
    folds = group_folds([groups[i] for i in photos], 3, seed + 1000)
    acc = {c: [] for c in C_GRID}
    for fold in folds:
        te, tr = photos[fold], np.setdiff1d(photos, photos[fold])
        for c in C_GRID:
            heads = fit_heads(feats[tr].reshape(-1, feats.shape[-1]), labels[tr].reshape(-1), c, n_bins)
            acc[c].append(np.mean(np.argmax(heads.logits(feats[te].reshape(-1, feats.shape[-1])), 1)
                                  == labels[te].reshape(-1)))
    return max(C_GRID, key=lambda c: np.mean(acc[c]))


def fit_probe(feats: np.ndarray, labels: np.ndarray, groups: Sequence[str], photos: np.ndarray, n_bins: int,
              seed: int = 0) -> Heads:
    """The bin head fitted on every version of `photos`, its C chosen by grouped inner folds over them."""
    c = _inner_choice(feats, labels, groups, photos, n_bins, seed)
    return fit_heads(feats[photos].reshape(-1, feats.shape[-1]), labels[photos].reshape(-1), c, n_bins)


def posterior_k1(heads: Heads, x: np.ndarray, bin_mean: np.ndarray, bin_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(posterior mean of k1, posterior std) [N] each: every bin at its training frames' k1 mean and variance."""
    p = softmax(heads.logits(x))
    mean = p @ bin_mean
    var = p @ bin_var + np.sum(p * (bin_mean[None, :] - mean[:, None]) ** 2, axis=1)
    return mean, np.sqrt(var)


def band_by_mass(post: np.ndarray, bin_mean: np.ndarray, band_edges) -> np.ndarray:
    """The band [N] holding most posterior mass, each bin counted in the band of its mean k1."""
    bin_band = np.searchsorted(np.asarray(band_edges), bin_mean, side="right")
    mass = np.stack([post[:, bin_band == j].sum(axis=1) for j in range(len(band_edges) + 1)], axis=1)
    return np.argmax(mass, axis=1)


def bin_stats(bins: np.ndarray, k1: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of k1 in each bin (of the training frames)."""
    return (np.array([k1[bins == j].mean() for j in range(n_bins)]),
            np.array([k1[bins == j].var() for j in range(n_bins)]))


def _split_scores(heads: Heads, train: tuple, test: tuple, n_bins: int, band_edges) -> dict:
    """Bin / band accuracy and k1 errors of one split (train, test = (x, bin, k1) rows)."""
    (_, b_tr, k_tr), (x, b, k) = train, test
    bin_mean, bin_var = bin_stats(b_tr, k_tr, n_bins)
    mean, std = posterior_k1(heads, x, bin_mean, bin_var)
    band = lambda v: np.searchsorted(np.asarray(band_edges), v, side="right")  # noqa: E731
    return {"bin_accuracy": float(np.mean(np.argmax(heads.logits(x), 1) == b)),
            "band_accuracy": float(np.mean(band(mean) == band(k))),
            "band_accuracy_by_mass": float(np.mean(band_by_mass(softmax(heads.logits(x)), bin_mean, band_edges)
                                                   == band(k))),
            "band_chance": float(np.max(np.bincount(band(k_tr), minlength=3)) / len(k_tr)),
            "k1_rmse": float(np.sqrt(np.mean((mean - k) ** 2))), "k1_mae": float(np.mean(np.abs(mean - k))),
            "k1_rmse_mean_predictor": float(np.sqrt(np.mean((k - k_tr.mean()) ** 2))),
            "k1_mae_median_predictor": float(np.mean(np.abs(k - np.median(k_tr)))),
            "k1_corr": float(np.corrcoef(mean, k)[0, 1]) if np.std(mean) > 0 else 0.0,
            "coverage": float(np.mean(np.abs(mean - k) <= std)), "mean_k1_std": float(std.mean()),
            "confusion": np.bincount(b * n_bins + np.argmax(heads.logits(x), 1), minlength=n_bins ** 2)
            .reshape(n_bins, n_bins).tolist()}


def evaluate(feats: np.ndarray, labels: np.ndarray, k1: np.ndarray, groups: Sequence[str], n_bins: int,
             band_edges: tuple[float, float], seeds: Sequence[int] = (0, 1, 2), n_folds: int = 3) -> dict:
    """Camera-disjoint splits (a third of the photos, whole cameras, tested per split): bin accuracy, band
    accuracy, k1 error of the posterior mean, how often |error| <= k1_std, and the chance levels beside them."""
    runs = []
    for seed in seeds:
        test = group_folds(groups, n_folds, seed)[0]
        train = np.setdiff1d(np.arange(len(groups)), test)
        heads = fit_probe(feats, labels, groups, train, n_bins, seed)
        scores = _split_scores(heads, _flatten(feats, labels, k1, train), _flatten(feats, labels, k1, test),
                               n_bins, band_edges)
        scores.update(n_test_photos=int(len(test)), n_test_cameras=len({groups[i] for i in test}), c=heads.c)
        runs.append(scores)
    out = {"runs": runs}
    for key in ("bin_accuracy", "band_accuracy", "band_accuracy_by_mass", "band_chance", "k1_rmse", "k1_mae", "k1_rmse_mean_predictor",
                "k1_mae_median_predictor", "k1_corr", "coverage", "mean_k1_std"):
        vals = np.array([r[key] for r in runs])
        out[key], out[key + "_std"] = round(float(vals.mean()), 4), round(float(vals.std()), 4)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def shipped_calibrator(model, rset, feats: np.ndarray, evaluation: dict, command: str):
    """The probe that ships: fitted on every version of every photo of `rset`, C chosen by grouped inner folds,
    with its camera-disjoint `evaluation` (from `evaluate`) and provenance in the JSON."""
    import datetime

    from .calibrator import BANDS, PROBE_FORMAT, Calibrator
    from .radial import LAYOUT, RING_EDGES

    n_bins = len(rset.bin_edges) + 1
    labels, k1 = rset.bins, rset.coeffs[..., 0]
    heads = fit_probe(feats, labels, rset.groups, np.arange(len(rset.paths)), n_bins, seed=0)
    mean, var = bin_stats(labels.reshape(-1), k1.reshape(-1), n_bins)
    edges = rset.bin_edges
    labels_text = [f"k1 < {edges[0]:.4f}"] + [f"{edges[i]:.4f} <= k1 < {edges[i + 1]:.4f}"
                                               for i in range(n_bins - 2)] + [f"k1 >= {edges[-1]:.4f}"]
    keep = ("bin_accuracy", "band_accuracy", "band_accuracy_by_mass", "band_chance", "k1_rmse", "k1_mae", "k1_rmse_mean_predictor",
            "coverage")
    meta = {"format": PROBE_FORMAT, "model_id": model.model_id, "patch": int(model.patch_size), "layout": LAYOUT,
            "ring_edges": list(RING_EDGES), "bin_edges": [float(e) for e in edges], "bin_labels": labels_text,
            "band_edges": [float(edges[0]), float(edges[-1])], "bands": list(BANDS), "fit_frame": [1024, 768],
            "c": heads.c, "coefficient_source": rset.source,
            "fit_set": f"{len(rset.paths)} shared photos of {len(set(rset.groups))} cameras the model never trained "
                       f"on, {rset.coeffs.shape[1]} lensfun warps each",
            "accuracy": {k: [evaluation[k], evaluation[k + "_std"]] for k in keep},
            "accuracy_note": "mean and std over 3 camera-disjoint splits (docs/results/probes.md, section 2)",
            "command": command, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    tensors = {"mean": heads.mean, "scale": heads.scale, "cls_w": heads.cls_w, "cls_b": heads.cls_b,
               "bin_k1_mean": mean, "bin_k1_var": var}
    return Calibrator(tensors, meta)


__all__ = ["C_GRID", "K1ProbeError", "group_folds", "Heads", "fit_heads", "fit_probe", "posterior_k1", "band_by_mass", "bin_stats",
           "evaluate", "softmax", "shipped_calibrator"]
