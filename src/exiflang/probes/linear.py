"""Linear probes on frozen patch features, split by photo (no patch of a test photo is seen in training).

Labels are per photo (Make, Model, binned exposure/ISO/aperture/focal length, distortion bin, ...);
every patch of a photo carries its photo's label. A logistic regression is fitted on training patches;
accuracy is reported per patch and per photo (patch log-probabilities summed over the photo).
Chance is given two ways: the majority class of the training photos, and 1 / number of classes.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ExiflangError


class ProbeError(ExiflangError):
    """A probe cannot run on these labels/features; the message says why."""


# ---------------------------------------------------------------- EXIF value parsing
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_exposure_time(value: str) -> float | None:
    """Seconds from ExifTool forms like '1/500', '0.004', '2', '1/50 s'; None when unparseable."""
    text = str(value).strip()
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", text)
    if m:
        den = float(m.group(2))
        return float(m.group(1)) / den if den > 0 else None
    m = _NUMBER.search(text)
    return float(m.group()) if m and float(m.group()) > 0 else None


def parse_number(value: str) -> float | None:
    """First positive number in a string such as 'f/5.6', '5.6', '50.0 mm', '200' (None otherwise)."""
    m = _NUMBER.search(str(value))
    if not m:
        return None
    number = float(m.group())
    return number if number > 0 and math.isfinite(number) else None


# ---------------------------------------------------------------- label definitions
@dataclass
class LabelSpec:
    """How a probe task turns a photo's tags into a class label."""

    name: str
    tag: str
    kind: str  # "category" (value as is) or "bins" (numeric, log-spaced quantile bins)
    parse: Callable[[str], float | None] | None = None
    n_bins: int = 4


LABEL_SPECS = {
    "make": LabelSpec("make", "Make", "category"),
    "model": LabelSpec("model", "Model", "category"),
    "exposure": LabelSpec("exposure", "ExposureTime", "bins", parse_exposure_time),
    "iso": LabelSpec("iso", "ISO", "bins", parse_number),
    "fnumber": LabelSpec("fnumber", "FNumber", "bins", parse_number),
    "focal": LabelSpec("focal", "FocalLength", "bins", parse_number),
}


def quantile_edges(values: Sequence[float], n_bins: int) -> np.ndarray:
    """Inner bin edges (n_bins - 1 or fewer) at quantiles of log(values), so bins are about equally full."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    edges = np.unique(np.quantile(logs, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.exp(edges)


def bin_label(value: float, edges: np.ndarray) -> str:
    """Readable label of the bin holding `value` (e.g. '[0.004, 0.0167)')."""
    i = int(np.searchsorted(edges, value, side="right"))
    lo = f"{edges[i - 1]:.4g}" if i > 0 else "0"
    hi = f"{edges[i]:.4g}" if i < len(edges) else "inf"
    return f"[{lo}, {hi})"


def photo_labels(tag_dicts: Sequence[dict], spec: LabelSpec) -> tuple[list[str | None], dict]:
    """Per-photo labels (None where the tag is missing/unparseable) and a description of the binning."""
    if spec.kind == "category":
        labels = [(str(t.get(spec.tag)).strip() or None) if t.get(spec.tag) is not None else None for t in tag_dicts]
        return labels, {"tag": spec.tag, "kind": "category"}
    raw = [spec.parse(t[spec.tag]) if t.get(spec.tag) is not None else None for t in tag_dicts]
    known = [v for v in raw if v is not None]
    if len(known) < 2:
        raise ProbeError(f"{spec.name}: fewer than two photos with a usable {spec.tag} value")
    edges = quantile_edges(known, spec.n_bins)
    labels = [None if v is None else bin_label(v, edges) for v in raw]
    return labels, {"tag": spec.tag, "kind": "bins", "edges": [float(e) for e in edges]}


# ---------------------------------------------------------------- splitting
def split_labels_by_photo(labels: Sequence[str | None], test_fraction: float = 0.3, seed: int = 0,
                   forced_test: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Photo indices (train, test): per class, about `test_fraction` of its photos go to test.

    Every test class keeps at least one training photo (a probe cannot predict a class it never saw);
    classes with a single photo stay in training. With `forced_test` (e.g. a model's held-out photos) the
    split is fixed instead: photo i is a test photo when `forced_test[i]` and its class has some photo
    outside the forced set, every other labelled photo trains.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        if lab is not None:
            by_class[lab].append(i)
    train, test = [], []
    for lab in sorted(by_class):
        idx = np.array(by_class[lab])
        if forced_test is not None:
            held = [i for i in idx if forced_test[i]]
            rest = [i for i in idx if not forced_test[i]]
            (test if rest else train).extend(held)
            train.extend(rest)
            continue
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(test), dtype=np.int64)


# ---------------------------------------------------------------- fitting
@dataclass
class ProbeResult:
    """Accuracy of one linear probe, with chance levels and sizes."""

    task: str
    patch_accuracy: float
    photo_accuracy: float
    majority_chance: float  # accuracy of always predicting the most common training class (per test photo)
    uniform_chance: float  # 1 / number of classes
    n_classes: int
    n_train_photos: int
    n_test_photos: int
    n_train_patches: int
    n_test_patches: int

    def to_dict(self) -> dict:
        """JSON-ready dict of all fields."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class SoftmaxProbe:
    """Multinomial logistic regression on standardised features, fitted with full-batch L-BFGS in torch.

    Same objective as scikit-learn's `LogisticRegression(C=c)` (sum of cross-entropies + ||W||^2 / (2C),
    bias unpenalised); torch float32 is several times faster than scikit-learn's float64 solver on the
    shared 2-core machines, which matters for dozens of fits with up to a hundred classes.
    """

    def __init__(self, c: float = 1.0, max_iter: int = 300):
        self.c, self.max_iter = float(c), int(max_iter)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "SoftmaxProbe":
        """Fit on features [N, D] and labels [N] (any hashable values)."""
        import torch

        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0) + 1e-6
        xt = torch.from_numpy(((x - self.mean_) / self.scale_).astype(np.float32))
        yt = torch.from_numpy(yi.astype(np.int64))
        n, d = xt.shape
        w = torch.zeros(d, len(self.classes_), requires_grad=True)
        b = torch.zeros(len(self.classes_), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=self.max_iter, history_size=20,
                                tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            # Mean CE + ||W||^2 / (2 C N): scikit-learn's objective divided by N.
            loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + (w * w).sum() / (2.0 * self.c * n)
            loss.backward()
            return loss

        opt.step(closure)
        self.coef_, self.intercept_ = w.detach().numpy(), b.detach().numpy()
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Class logits [N, C]."""
        return ((x - self.mean_) / self.scale_).astype(np.float32) @ self.coef_ + self.intercept_

    def predict_log_proba(self, x: np.ndarray) -> np.ndarray:
        """Log class probabilities [N, C] (columns in `classes_` order)."""
        z = self.decision_function(x)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class of each row."""
        return self.classes_[np.argmax(self.decision_function(x), axis=1)]


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, c: float = 1.0, max_iter: int = 300) -> SoftmaxProbe:
    """A fitted `SoftmaxProbe` (standardised multinomial logistic regression)."""
    return SoftmaxProbe(c, max_iter).fit(x_train, y_train)


def run_probe(task: str, features: np.ndarray, photo_index: np.ndarray, labels: Sequence[str | None],
              train_photos: np.ndarray, test_photos: np.ndarray, c: float = 1.0) -> ProbeResult:
    """Fit on the patches of `train_photos`, evaluate on those of `test_photos` (photo-disjoint)."""
    train_set, test_set = set(train_photos.tolist()), set(test_photos.tolist())
    if train_set & test_set:
        raise ProbeError(f"{task}: train and test photos overlap")
    if not test_set:
        raise ProbeError(f"{task}: no test photo (every class has a single photo?)")
    tr = np.isin(photo_index, train_photos)
    te = np.isin(photo_index, test_photos)
    y_all = np.array(["" if lab is None else lab for lab in labels], dtype=object)
    y_tr, y_te = y_all[photo_index[tr]], y_all[photo_index[te]]
    if len(set(y_tr)) < 2:
        raise ProbeError(f"{task}: fewer than two classes among the training photos")
    clf = fit_logistic(features[tr], y_tr, c=c)
    patch_acc = float(np.mean(clf.predict(features[te]) == y_te))

    # Photo-level decision: sum of patch log-probabilities (product of independent patch votes).
    logp = clf.predict_log_proba(features[te])
    classes = clf.classes_
    te_owner = photo_index[te]
    correct = []
    for p in np.unique(te_owner):
        pred = classes[int(np.argmax(logp[te_owner == p].sum(axis=0)))]
        correct.append(pred == y_all[p])

    train_counts = Counter(y_all[train_photos].tolist())
    majority = train_counts.most_common(1)[0][0]
    n_classes = len(set(y_all[train_photos].tolist()) | set(y_all[test_photos].tolist()))
    return ProbeResult(
        task=task, patch_accuracy=patch_acc, photo_accuracy=float(np.mean(correct)),
        majority_chance=float(np.mean(y_all[test_photos] == majority)), uniform_chance=1.0 / n_classes,
        n_classes=n_classes, n_train_photos=len(train_photos), n_test_photos=len(test_photos),
        n_train_patches=int(tr.sum()), n_test_patches=int(te.sum()),
    )


def repeated_probe(task: str, features: np.ndarray, photo_index: np.ndarray, labels: Sequence[str | None],
                   seeds: Sequence[int] = (0, 1, 2), test_fraction: float = 0.3,
                   forced_test: Sequence[bool] | None = None, c: float = 1.0) -> dict:
    """Run the probe over several photo splits; mean and std of each accuracy, plus every run."""
    runs = []
    for seed in seeds if forced_test is None else seeds[:1]:  # a fixed held-out split needs one run
        train, test = split_labels_by_photo(labels, test_fraction, seed, forced_test)
        runs.append(run_probe(task, features, photo_index, labels, train, test, c))
    summary = {"task": task, "n_runs": len(runs), "runs": [r.to_dict() for r in runs]}
    for key in ("patch_accuracy", "photo_accuracy", "majority_chance", "uniform_chance"):
        vals = np.array([getattr(r, key) for r in runs])
        summary[key] = round(float(vals.mean()), 4)
        summary[key + "_std"] = round(float(vals.std()), 4)
    for key in ("n_classes", "n_train_photos", "n_test_photos"):
        summary[key] = getattr(runs[0], key)
    summary["photo_accuracy_se"] = binomial_se(summary["photo_accuracy"], summary["n_test_photos"])
    summary["warning"] = split_warning(summary["n_test_photos"], summary["n_classes"], summary["majority_chance"])
    return summary


MIN_TEST_PHOTOS = 20  # below this, one photo moves the accuracy by more than 5 points


def split_warning(n_test_photos: int, n_classes: int, majority_chance: float) -> str | None:
    """Why a probe's split is too small to mean anything (few test photos, one class, chance at 1), or None."""
    problems = []
    if n_classes < 2:
        problems.append(f"{n_classes} class")
    if n_test_photos < MIN_TEST_PHOTOS:
        problems.append(f"{n_test_photos} test photo{'s' if n_test_photos != 1 else ''} (fewer than {MIN_TEST_PHOTOS})")
    if majority_chance >= 0.999:
        problems.append("every test photo is in the training-majority class")
    if not problems:
        return None
    return (f"degenerate probe: {', '.join(problems)}; its chance level ({majority_chance:.3f}) and accuracies "
            "mean little: use more photos or another --test-fraction")


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p measured on n independent test photos (sampling noise of one split)."""
    return round(float(np.sqrt(max(p * (1.0 - p), 0.0) / max(n, 1))), 4)


__all__ = [
    "ProbeError", "parse_exposure_time", "parse_number", "LabelSpec", "LABEL_SPECS", "quantile_edges",
    "bin_label", "photo_labels", "split_labels_by_photo", "ProbeResult", "SoftmaxProbe", "fit_logistic", "run_probe",
    "repeated_probe", "binomial_se", "split_warning", "MIN_TEST_PHOTOS",
]
