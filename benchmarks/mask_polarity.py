"""The normalised-cut mask's polarity rule: "the smaller side" (before issue 14) vs "the hotter side" (now).

    .venv/bin/python benchmarks/mask_polarity.py --dataset generic:runs/det_splices --cache-dir runs/det_cache

Both masks come from the same cut of the same embeddings (so only the rule differs): the new one is what
`detect` returns, the old one the smaller side of that cut (`ncut.pick_side` without heat). Printed per rule:
on every image, how often the mean heat inside the mask is below the mean heat outside it (mask and heatmap
pointing at opposite regions); on manipulated images, strict p-mAP of the binary mask and its mean IoU with
the true mask.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _inverted(heat: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the mean heat inside the mask is below the mean heat outside it."""
    if not mask.any() or mask.all():
        return False
    return float(heat[mask].mean()) < float(heat[~mask].mean())


def main() -> int:
    """Run both rules over a dataset and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="KIND:PATH as for `exiflang bench`")
    parser.add_argument("--model", default="default", help="model name or weights folder")
    parser.add_argument("--cache-dir", default="runs/det_cache", help="embedding cache shared with `exiflang bench`")
    args = parser.parse_args()
    from tqdm import tqdm

    from exiflang.eval import metrics as M
    from exiflang.eval.bench import EmbeddingMethod
    from exiflang.eval.datasets import load_dataset, load_mask
    from exiflang.forensics import Detector
    from exiflang.forensics.heatmap import cell_areas
    from exiflang.forensics.ncut import pick_side
    from exiflang.imageio import load_rgb

    detector = Detector.load(args.model)
    method = EmbeddingMethod(detector, cache_dir=Path(args.cache_dir))
    rows = {"smaller side (before)": {"inv": 0, "maps": [], "iou": []}, "hotter side (now)": {"inv": 0, "maps": [], "iou": []}}
    truths, n = [], 0
    for sample in tqdm(load_dataset(args.dataset).samples, desc="polarity", unit="img"):
        image, _ = load_rgb(sample.image)
        emb, grid, _ = method._embeddings(image)
        result = detector.analyse_embeddings(emb, grid)
        heat = result.heatmap
        old = grid.cells_to_pixels(pick_side(result.cell_mask, cell_areas(grid)).reshape(grid.cell_shape))
        truth = load_mask(sample, image.shape[:2]) if sample.label == 1 else None
        n += 1
        if truth is not None:
            truths.append(truth)
        for name, mask in (("smaller side (before)", old), ("hotter side (now)", result.mask)):
            rows[name]["inv"] += int(_inverted(heat, mask))
            if truth is not None:
                rows[name]["maps"].append(mask.astype(np.float32))
                rows[name]["iou"].append(float((mask & truth).sum() / max((mask | truth).sum(), 1)))
    print(f"dataset {args.dataset}: {n} images ({len(truths)} manipulated); model {detector.model_id}")
    print(f"{'rule':<24} {'heat inside < outside':>22} {'mask p-mAP strict':>18} {'mask mean IoU':>14}")
    for name, r in rows.items():
        print(f"{name:<24} {r['inv']:>15} of {n:<4} {M.pmap(r['maps'], truths, polarity_free=False):>18.3f} "
              f"{np.mean(r['iou']):>14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
