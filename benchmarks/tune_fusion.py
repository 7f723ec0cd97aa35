"""Choose, on VALIDATION composites only, the learned model's image score and the fusion rule.

    .venv/bin/python benchmarks/tune_fusion.py --splices runs/cd_val --model default \
        --cache-dir runs/emb_cache [--write]

`--splices` is a make-splices folder with twins (held-out cameras, another seed than the test composites).
For every image of every twin it runs the learned model (embeddings cached), the grid and the dq detectors
once, then
1. prints the detection AP of each candidate image score of the learned model (`forensics.scores`), per twin
   and on average: the best on average is the one to ship (`forensics.scores.IMAGE_SCORE`);
2. calibrates each method's score on the validation authentic images (median, 1.4826 MAD);
3. grid-searches the fusion rule (`forensics.fusion`: grid gate, grid weight, learned weight) for the best
   mean over twins of p-mAP + detection AP, and prints the best rule and the single methods beside it.
With `--write` the rule goes to src/exiflang/forensics/fusion_rule.json (with its provenance).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

TWINS = [("lossless", "."), ("jpeg90", "jpeg90"), ("jpeg75", "jpeg75"), ("resized75_jpeg90", "resized75_jpeg90")]
STEP = 4  # maps are compared every 4th pixel: the same ranking, 16x less work


def _ap(heat: np.ndarray, mask: np.ndarray) -> float:
    """Polarity-free AP of one map (the p-mAP convention)."""
    from exiflang.eval.metrics import average_precision

    return max(average_precision(heat.ravel(), mask.ravel()), average_precision(1.0 - heat.ravel(), mask.ravel()))


def collect(folder: Path, method) -> list[dict]:
    """Component maps (subsampled), scores and candidate learned scores of every image of one twin."""
    from tqdm import tqdm

    from exiflang.eval.datasets import load_dataset, load_mask
    from exiflang.forensics.scores import candidate_scores
    from exiflang.imageio import load_rgb

    dataset = load_dataset(f"generic:{folder}")
    rows = []
    for sample in tqdm(dataset.samples, desc=folder.name or "lossless", unit="img"):
        image, _ = load_rgb(sample.image)
        mask = load_mask(sample, image.shape[:2])
        parts = method.components(image, sample.image)
        rows.append({
            "label": int(sample.label), "mask": mask[::STEP, ::STEP],
            "heat": {k: np.asarray(v.heatmap, np.float32)[::STEP, ::STEP] for k, v in parts.items()},
            "score": {k: float(v.score) for k, v in parts.items()},
            "candidates": candidate_scores(parts["learned"].result),
        })
    return rows


def det_ap(rows: list[dict], scores: list[float]) -> float:
    """Detection AP of image scores over a twin."""
    from exiflang.eval.metrics import detection_metrics

    return float(detection_metrics(np.asarray(scores), np.asarray([r["label"] for r in rows]))["det_ap"])


def robust_calibration(values: list[float]) -> dict:
    """Median and 1.4826 MAD (floored) of authentic-image scores."""
    v = np.asarray(values, dtype=np.float64)
    med = float(np.median(v))
    return {"median": med, "scale": max(1.4826 * float(np.median(np.abs(v - med))), 1e-3)}


def evaluate(rule, twins: dict[str, list[dict]], learned_key: str) -> dict[str, tuple[float, float]]:
    """(p-mAP, det AP) per twin of a fusion rule."""
    from exiflang.forensics.fusion import fuse

    out = {}
    for twin, rows in twins.items():
        aps, scores = [], []
        for r in rows:
            heat, score = fuse(rule, (r["heat"]["learned"], r["candidates"][learned_key]),
                               (r["heat"]["grid"], r["score"]["grid"]), (r["heat"]["dq"], r["score"]["dq"]))
            scores.append(score)
            if r["label"] == 1 and r["mask"].any():
                aps.append(_ap(heat, r["mask"]))
        out[twin] = (float(np.mean(aps)), det_ap(rows, scores))
    return out


def main(argv: list[str] | None = None) -> int:
    """Collect, choose the score, tune the rule, print (and optionally write) it."""
    from dataclasses import replace

    from exiflang.eval.bench import FusionMethod, build_method
    from exiflang.forensics.fusion import RULE_FILE, FusionRule
    from exiflang.forensics.scores import CANDIDATES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splices", required=True, type=Path)
    p.add_argument("--model", default="default")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/emb_cache"))
    p.add_argument("--write", action="store_true", help=f"write the chosen rule to {RULE_FILE}")
    p.add_argument("--twins", default=",".join(t for t, _ in TWINS), help="which twins (default: all)")
    args = p.parse_args(argv)
    learned = build_method("exiflang", args.model, args.cache_dir)
    method = FusionMethod(learned, rule=FusionRule())
    wanted = args.twins.split(",")
    twins = {name: collect(args.splices / sub, method) for name, sub in TWINS
             if name in wanted and (args.splices / sub / "manifest.csv").is_file()}

    print(f"## Learned image score candidates, detection AP on validation composites `{args.splices}` "
          f"(model {learned.method_id})\n")
    print("| score | " + " | ".join(twins) + " | mean |\n|" + "---|" * (len(twins) + 2))
    best_key, best_mean = None, -1.0
    for key in CANDIDATES:
        vals = [det_ap(rows, [r["candidates"][key] for r in rows]) for rows in twins.values()]
        mean = float(np.mean(vals))
        print(f"| {key} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {mean:.3f} |")
        if mean > best_mean:
            best_key, best_mean = key, mean
    print(f"\nbest learned score on validation: {best_key} (mean det AP {best_mean:.3f})\n")

    authentic = [r for rows in twins.values() for r in rows if r["label"] == 0]
    calibration = {"learned": robust_calibration([r["candidates"][best_key] for r in authentic]),
                   "grid": robust_calibration([r["score"]["grid"] for r in authentic]),
                   "dq": robust_calibration([r["score"]["dq"] for r in authentic])}
    base = FusionRule(calibration=calibration)
    best, best_value, results = None, -1.0, None
    for gate, gw, lw in itertools.product((1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 1e9), (0.5, 0.75, 1.0),
                                          (0.0, 0.25, 0.5, 0.75, 1.0)):
        rule = replace(base, grid_gate=gate, grid_weight=gw, learned_weight=lw)
        res = evaluate(rule, twins, best_key)
        value = float(np.mean([a + d for a, d in res.values()]))
        if value > best_value:
            best, best_value, results = rule, value, res
    def single(key: str) -> dict[str, tuple[float, float]]:
        """(p-mAP, det AP) per twin of one method alone (its own map and score)."""
        out = {}
        for twin, rows in twins.items():
            score_of = (lambda r: r["candidates"][best_key]) if key == "learned" else (lambda r: r["score"][key])
            aps = [_ap(r["heat"][key], r["mask"]) for r in rows if r["label"] == 1 and r["mask"].any()]
            out[twin] = (float(np.mean(aps)), det_ap(rows, [score_of(r) for r in rows]))
        return out

    print(f"## Fusion rule search on validation (objective: mean over twins of p-mAP + det AP)\n")
    print("| rule | " + " | ".join(f"{t} p-mAP / det AP" for t in twins) + " |\n|" + "---|" * (len(twins) + 1))
    for name, res in [("learned only", single("learned")), ("grid only", single("grid")), ("dq only", single("dq")),
                      ("fusion (best)", results)]:
        print(f"| {name} | " + " | ".join(f"{a:.3f} / {d:.3f}" for a, d in res.values()) + " |")
    print(f"\nbest rule: gate {best.grid_gate}, grid weight {best.grid_weight}, learned weight "
          f"{best.learned_weight}; learned score {best_key}")
    if args.write:
        rule = replace(best, learned_score=best_key, provenance=(
            f"benchmarks/tune_fusion.py on {args.splices} (validation composites, held-out cameras), model "
            f"{learned.method_id}, learned score {best_key}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"))
        RULE_FILE.write_text(rule.to_json())
        print(f"wrote {RULE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
