"""Which image-level score (and heatmap polarity rule) works best? Compares candidates on one dataset.

    .venv/bin/python benchmarks/detect_scores.py --dataset generic:runs/det_splices \
        --model default --cache-dir runs/det_cache [--limit N]

Embeddings come from (and go to) the same cache as `exiflang bench --cache-dir`, so after a bench
run this only re-does the post-processing. Candidates: `exiflang.forensics.scores.candidate_scores` (defined
there once; `benchmarks/tune_fusion.py` compares them per twin on validation composites).
For localisation it prints the p-mAP of the shipped heatmap (strict polarity and polarity-free) and
of the normalised-cut mask.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="KIND:PATH as for `exiflang bench`")
    parser.add_argument("--model", default="default", help="model name or weights folder")
    parser.add_argument("--cache-dir", default="runs/det_cache", help="embedding cache shared with `exiflang bench`")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images of each label (0 = all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch
    from pathlib import Path
    from tqdm import tqdm

    from exiflang.eval import metrics as M
    from exiflang.eval.bench import EmbeddingMethod
    from exiflang.eval.datasets import load_dataset, load_mask
    from exiflang.forensics import Detector, consistency_from_embeddings, resolve_model
    from exiflang.forensics.scores import candidate_scores
    from exiflang.imageio import load_rgb

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    method = EmbeddingMethod(Detector(model), cache_dir=Path(args.cache_dir))
    samples = load_dataset(args.dataset).samples
    if args.limit:
        samples = [s for s in samples if s.label == 1][: args.limit] + [s for s in samples if s.label == 0][: args.limit]
    labels, scores, heats, masks, cuts = [], {}, [], [], []
    for sample in tqdm(samples, desc="scores", unit="img"):
        image, _ = load_rgb(sample.image)
        emb, grid, _ = method._embeddings(image)
        result = consistency_from_embeddings(emb, grid)
        for name, value in candidate_scores(result).items():
            scores.setdefault(name, []).append(value)
        labels.append(sample.label)
        if sample.label == 1:
            heats.append(result.heatmap)
            cuts.append(result.mask.astype(np.float32))
            masks.append(load_mask(sample, image.shape[:2]))
    labels = np.array(labels)
    print(f"dataset {args.dataset}: {int(labels.sum())} manipulated / {int((1 - labels).sum())} authentic; model {model.model_id}")
    print(f"p-mAP heatmap: strict {M.pmap(heats, masks, polarity_free=False):.3f}, polarity-free {M.pmap(heats, masks):.3f}; "
          f"ncut mask (strict) {M.pmap(cuts, masks, polarity_free=False):.3f}; chance ~ mean mask area {np.mean([m.mean() for m in masks]):.3f}")
    if labels.min() != labels.max():
        print(f"{'score':<8} {'det AP':>7} {'det AUC':>8}   (chance AP = {labels.mean():.3f})")
        for name, values in scores.items():
            v = np.array(values)
            print(f"{name:<8} {M.average_precision(v, labels):>7.3f} {M.roc_auc(v, labels):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
