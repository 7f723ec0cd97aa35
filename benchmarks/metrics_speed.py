"""Why eval.metrics keeps its own threshold sweep: time it against scikit-learn on the same maps.

One 1024x768 score map per trial (smooth blob + noise, a 10 % mask). Library path: average_precision_score and
roc_auc_score on the map and on its inverse (4 sorts) and precision_recall_curve for the best F1 (2 more);
it still lacks best MCC and class IoU. Own path: `image_localization_metrics`, all of them from two sorts.
    .venv/bin/python benchmarks/metrics_speed.py [--trials 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def library_metrics(score_map: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """AP, AUC (both polarities) and best F1 with scikit-learn only."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    s, y = score_map.ravel(), mask.ravel()
    out = {"ap": max(average_precision_score(y, s), average_precision_score(y, -s)),
           "pixel_auc_pf": max(roc_auc_score(y, s), roc_auc_score(y, -s))}
    f1 = []
    for sign in (1, -1):
        p, r, _ = precision_recall_curve(y, sign * s)
        f1.append(np.max(2 * p * r / np.maximum(p + r, 1e-12)))
    out["f1_best"] = float(max(f1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    from exiflang.eval.metrics import image_localization_metrics

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:768, :1024]
    t_lib = t_own = 0.0
    for _ in range(args.trials):
        mask = (yy - 300) ** 2 + (xx - 500) ** 2 < 160 ** 2
        score = mask * 0.4 + rng.random(mask.shape)
        t0 = time.perf_counter()
        lib = library_metrics(score, mask)
        t1 = time.perf_counter()
        own = image_localization_metrics(score, mask)
        t2 = time.perf_counter()
        t_lib, t_own = t_lib + t1 - t0, t_own + t2 - t1
        for key, value in lib.items():
            assert abs(own[key] - value) < 1e-9, (key, own[key], value)
    print(f"{args.trials} maps of 1024x768: scikit-learn (AP, AUC, best F1 only) {t_lib / args.trials:.3f} s/map, "
          f"exiflang sweep (all 15 metrics) {t_own / args.trials:.3f} s/map; ratio {t_lib / t_own:.2f}x; "
          "values agree to 1e-9")


if __name__ == "__main__":
    main()
