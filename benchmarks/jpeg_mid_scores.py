"""Why a fine-tune's jpeg_mid band detects worse: every score setting of the band's grid, its detection AP on each
validation root, on them pooled, and on the test root, in one table (a diagnosis: nothing here is chosen on test).

    .venv/bin/python benchmarks/jpeg_mid_scores.py --model runs/ft_long/model --val runs/deskval --val runs/deskval2

The map part of the band's rule is tuned by `tune_desk_fusion.tune_map`, as `tune_band` does (on the pooled validation roots);
then each (learned share of the score, weight of the map's contrast, grid in score gated or not) is scored by the
mean over the band's twins of detection AP. Components come from the tune script's caches (run it first).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tune_desk_fusion as T  # noqa: E402


def band_rows(rows_by_twin: dict, band: str) -> dict:
    """The rows of one band per twin, twins with both classes only."""
    out = {t: [r for r in rows if r["band"] == band] for t, rows in rows_by_twin.items()}
    return {t: rows for t, rows in out.items() if len({r["label"] for r in rows}) == 2}


def mean_det_ap(rule, rows_by_twin: dict) -> float:
    return float(np.mean([T.measure(lambda r: rule, rows, maps=False)[1] for rows in rows_by_twin.values()]))


def main(argv: list[str] | None = None) -> int:
    from exiflang.eval.bench import FusionMethod, build_method
    from exiflang.forensics.fusion import FusionRule

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--val", type=Path, action="append", required=True)
    p.add_argument("--test", type=Path, default=Path("runs/desk"))
    p.add_argument("--band", default="jpeg_mid")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/emb_cache15"))
    args = p.parse_args(argv)
    old_rule = FusionRule.load(Path(__file__).parent / "configs" / "fusion_rule_v1.json")
    method = FusionMethod(build_method("exiflang", args.model, args.cache_dir, per_side=15), rule=old_rule)
    vals = [band_rows(T.collect(root, method, 15), args.band) for root in args.val]
    pooled = T.pooled_roots(vals)
    test = band_rows(T.collect(args.test, method, 15), args.band)
    best = T.tune_map(old_rule, pooled)
    names = [str(v) for v in args.val]
    print(f"model {args.model}, band {args.band}; map: gate {best.grid_gate:g}, grid {best.grid_weight}, learned "
          f"{best.learned_weight}; mean det AP over the band's twins\n")
    print("| score learned | contrast | grid in score | " + " | ".join(names) + " | pooled | test |")
    print("|---" * (len(names) + 5) + "|")
    for sw, mw, gated in itertools.product(T.GRID["score"], T.GRID["map"], T.GRID["gated"]):
        rule = replace(best, score_weight=sw, map_weight=mw, gated_grid_score=gated)
        cells = [mean_det_ap(rule, v) for v in vals] + [mean_det_ap(rule, pooled), mean_det_ap(rule, test)]
        print(f"| {sw} | {mw} | {'gated' if gated else 'always'} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
