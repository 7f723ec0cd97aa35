"""Fit the image score's calibration (probability of manipulation + verdict bands) and measure it on new composites.

    .venv/bin/exiflang make-splices ../shared/data/photos --cameras heldout --n 40 --seed 1 --out runs/cal_fit
    .venv/bin/exiflang make-splices ../shared/data/photos --cameras heldout --n 30 --seed 2 --out runs/cal_eval
    nohup nice .venv/bin/python benchmarks/fit_calibration.py --fit runs/cal_fit --eval runs/cal_eval \
        --model default --write > runs/fit_calibration.log 2>&1 &

`--fit` is the validation set the fusion rule and the image score were chosen on (held-out cameras, seed 1);
`--eval` is a new seed, never used for any choice: the reliability table and the verdict bands' rates are
measured there only. For every image the score is `DetectionResult.score` of `exiflang.forensics.detect` with
the given model at `--per-side` (the command-line default, 30). Scores are cached in `--cache` (JSON Lines,
keyed by file and model), so a rerun only refits.

The method is Platt scaling (a 1-D logistic regression on the score), chosen before seeing any result: with 80
fitting images isotonic regression is a step function with flat 0 / 1 ends (over-confident). The isotonic fit
is printed beside it for comparison only. Verdict cut-points are fixed at probabilities 0.25 and 0.75.
With `--write` the calibration (with the evaluation's reliability table and band rates) goes to
`calibration.json` in the model's weights folder, i.e. it ships with the model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path


def collect_scores(folder: Path, model, per_side: int, cache: Path) -> tuple[list[float], list[int], list[str]]:
    """Image score and label of every image of a make-splices folder (cached by path + model + per-side)."""
    from exiflang.eval.datasets import load_dataset
    from exiflang.forensics import detect

    done: dict[str, float] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            rec = json.loads(line)
            done[rec["key"]] = rec["score"]
    samples = load_dataset(f"generic:{folder}").samples
    scores, labels, paths = [], [], []
    with cache.open("a") as fh:
        for i, sample in enumerate(samples):
            key = f"{Path(sample.image).resolve()}|{model.model_id}|{per_side}"
            if key not in done:
                t0 = time.perf_counter()
                done[key] = float(detect(sample.image, model, per_side=per_side).score)
                fh.write(json.dumps({"key": key, "score": done[key], "label": int(sample.label)}) + "\n")
                fh.flush()
                print(f"{folder.name} {i + 1}/{len(samples)} {Path(sample.image).name} label {sample.label} "
                      f"score {done[key]:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)
            scores.append(done[key])
            labels.append(int(sample.label))
            paths.append(str(sample.image))
    return scores, labels, paths


def markdown_reliability(rows: list[dict]) -> str:
    lines = ["| predicted-probability bin | images | mean predicted | observed share manipulated |", "|---|---|---|---|"]
    for r in rows:
        pred = "–" if r["predicted"] is None else f"{r['predicted']:.3f}"
        obs = "–" if r["observed"] is None else f"{r['observed']:.3f}"
        lines.append(f"| {r['bin']} | {r['count']} | {pred} | {obs} |")
    return "\n".join(lines)


def markdown_bands(cal) -> str:
    lines = ["| verdict | probability | authentic images given it (false-positive rate for 'likely manipulated') "
             "| manipulated images given it |", "|---|---|---|---|"]
    for b in cal.bands:
        hi = min(b.high, 1.0)
        lines.append(f"| {b.verdict} | [{b.low:.2f}, {hi:.2f}{']' if hi >= 1.0 else ')'} | "
                     f"{b.authentic_rate:.1%} ({b.n_authentic}) | {b.manipulated_rate:.1%} ({b.n_manipulated}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", type=Path, required=True, help="make-splices folder to fit on (validation seed)")
    parser.add_argument("--eval", type=Path, required=True, help="make-splices folder to measure on (a new seed)")
    parser.add_argument("--model", default="default", help="model name or weights folder (default: %(default)s)")
    parser.add_argument("--per-side", type=int, default=30, help="patch grid density, as `detect` (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=Path("runs/cal_scores.jsonl"), help="score cache (JSON Lines)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help="write calibration.json into the model's weights folder")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from exiflang.forensics import resolve_model
    from exiflang.forensics import calibration as C
    from exiflang.forensics.scores import IMAGE_SCORE
    from exiflang.models.factory import resolve_weights_dir

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fit_s, fit_y, _ = collect_scores(args.fit, model, args.per_side, args.cache)
    eval_s, eval_y, _ = collect_scores(args.eval, model, args.per_side, args.cache)
    print(f"scores: {len(fit_s)} fit + {len(eval_s)} eval images in {time.perf_counter() - t0:.0f} s", flush=True)

    command = " ".join(["benchmarks/fit_calibration.py", *(argv if argv is not None else sys.argv[1:])])
    meta = dict(model_id=model.model_id, score=IMAGE_SCORE, per_side=args.per_side, provenance={
        "fit_set": f"{args.fit.name} ({sum(fit_y)} spliced + {len(fit_y) - sum(fit_y)} authentic camera-disjoint composites)",
        "eval_set": f"{args.eval.name} ({sum(eval_y)} spliced + {len(eval_y) - sum(eval_y)} authentic, another seed)",
        "command": command,
        "prior": "the fit set's mix (half manipulated); probabilities assume that mix",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    })
    cals = {m: C.fit(fit_s, fit_y, method=m, **meta) for m in C.METHODS}
    for name, cal in cals.items():
        probs = [cal.probability(s) for s in eval_s]
        C.measure_bands(cal, eval_s, eval_y)
        cal.reliability = C.reliability_table(probs, eval_y)
        fit_probs = [cal.probability(s) for s in fit_s]
        print(f"\n## {name}{' (shipped)' if name == 'platt' else ' (comparison only)'}: params {cal.params if name == 'platt' else '(%d steps)' % len(cal.params['x'])}")
        print(f"Brier score: fit {C.brier(fit_probs, fit_y):.4f}, eval {C.brier(probs, eval_y):.4f} "
              f"(a constant 0.5 scores 0.25)")
        print(f"\nReliability on {meta['provenance']['eval_set']}:\n")
        print(markdown_reliability(cal.reliability))
        print(f"\nVerdict bands on the same evaluation composites:\n")
        print(markdown_bands(cal))
    auth = np.asarray([s for s, y in zip(eval_s, eval_y) if y == 0])
    man = np.asarray([s for s, y in zip(eval_s, eval_y) if y == 1])
    print(f"\neval score medians: authentic {np.median(auth):.4f}, manipulated {np.median(man):.4f}")
    if args.write:
        folder = resolve_weights_dir(args.model)
        path = cals["platt"].save(folder / C.CALIBRATION_FILE)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
