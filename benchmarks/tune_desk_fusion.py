"""Tune the fusion per condition band on VALIDATION desk composites, fit each band's calibration there, and
measure everything on the TEST desk composites (never used for a choice), old rule beside new, in one run.

    .venv/bin/python benchmarks/tune_desk_fusion.py --val runs/deskval --test runs/desk \
        --cache-dir runs/emb_cache15 --per-side 15 [--write]

`--val` (repeatable: several validation roots are pooled per twin) and `--test` are roots made by
`benchmarks/desk_regime.py` (or its `build_sets`): `composites/` with the
desk twins and `small_pastes/` with its q90 twin; the test root is the desk table's (held-out cameras, seed 0),
the validation root another seed (1) of the same held-out cameras. Every image is analysed once per root by
the learned model (embeddings cached), the JPEG-grid and the double-quantisation detectors; the component maps
(every 4th pixel) and scores are cached under ROOT/components_ps<per-side>_<model id>/, so a rerun only re-tunes
(and another `--model` gets its own components, never the default's).

For each band of `forensics.condition`, decided from each file itself (never from the twin's name):
1. robust z-scores of each method's score on the band's validation authentic images;
2. a grid search of the band's rule (grid gate and weight, learned share of the map and of the score, weight
   of the map's contrast) for the best mean over the band's twins of p-mAP + detection AP; then the Gaussian
   smoothing of the fused map (sigma 0, 8, 16 or 24 px) with the best mean p-mAP (it changes the map only); then
   whether to flip a map whose high side covers over half the image, by the mean *strict* p-mAP (the map's own
   polarity, as the reader sees it; the polarity-free p-mAP of the other choices cannot tell), flipping unless
   validation prefers the map unflipped;
3. Platt scaling of the fused score on the band's validation images, and of the learned component's score
   alone (it may withhold "likely authentic": `forensics.fusion_bands.DISSENT_PROBABILITY`); the "likely manipulated" cut is the
   larger of probability 0.75 and the probability of `authentic_cut`: for each kind of validation file in the
   band (twin), the larger of its highest authentic score and the 99th percentile of a normal fitted to its
   authentic scores, and the highest of those over the band's twins (the promise must hold for every kind of
   file the band mixes, e.g. resized social copies beside 1024-px re-saves); the band's validation AUC decides
   whether it judges at all (`forensics.fusion_bands.MIN_AUC`).
Then on the test root, per condition (twin): p-mAP / det AP of the learned map, the format-1 rule and the new
per-band rule, and the verdict counts of the learned default's calibration and of the new one. The
held-out cameras' own photos as the cameras wrote them, and after a social-media chain, are scored too
(`--photos`): authentic only, so only their false alarms are counted. With `--write` the per-band rule goes to
src/exiflang/forensics/fusion_rule.json.
"""
from __future__ import annotations

import argparse
import os
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_fusion import _ap, robust_calibration  # noqa: E402

STEP = 4
# The "likely manipulated" cut: above every validation authentic score of the band, and above the 99th percentile
# (z = 2.326) of a normal fitted to each twin's authentic scores. The maximum alone promises little with 16-40
# scores (about 1/(n + 1): a split-half check on the validation authentic scores gave 4-5 % false alarms in three
# bands), and one maximum over a band pools kinds of files whose authentic scores differ (docs/RESULTS.md shows
# the earlier rules: the 97.5th percentile, then the band's maximum).
TAIL_Z = 2.326
SETS = [("lossless", "composites", "."), ("jpeg95", "composites", "jpeg95"), ("jpeg90", "composites", "jpeg90"),
        ("jpeg75", "composites", "jpeg75"), ("social", "composites", "social"),
        ("small_image", "composites", "small_image"), ("small_pastes", "small_pastes", "."),
        ("small_pastes_jpeg90", "small_pastes", "jpeg90")]
GRID = dict(gate=(1.0, 3.0, 1e9), grid_weight=(0.75, 1.0), learned=(0.0, 0.25, 0.5, 0.75, 1.0),
            score=(0.0, 0.25, 0.5, 0.75, 1.0), map=(0.0, 0.5), gated=(False, True), smooth_px=(0, 8, 16, 24))


def components(method, image_path: Path, mask_path, label: int, cache: Path, learned: bool = True) -> dict | None:
    """One image's component maps (every STEP-th pixel), scores and file condition, cached as .npz: the learned
    part at ``cache`` (per model), the grid and dq parts, which no model changes, once per root beside it
    (`classical_cache`), so another model only embeds. ``learned=False``: the classical part only (returns None)."""
    from exiflang.forensics.jpeg_grid import votes_by_band
    from exiflang.imageio import load_rgb

    classical = classical_cache(cache, method)
    missing = [not classical.is_file(), learned and not cache.is_file()]
    if any(missing):  # decoded and its grid votes counted once for both parts
        image = load_rgb(image_path)[0]
        votes = votes_by_band(image)
    if missing[0]:
        _save_npz(classical, _classical_arrays(method, image, votes, image_path, mask_path, label))
    if not learned:
        return None
    if missing[1]:
        _save_npz(cache, _heat_and_score("learned", method.learned.analyse(image, votes=votes)))
    with np.load(classical) as c, np.load(cache) as m:
        return _row({**{k: c[k] for k in c.files}, **{k: m[k] for k in m.files}})


def classical_cache(cache: Path, method) -> Path:
    """The grid and dq part of the image whose learned part is at ``cache`` (ROOT/components_*/TWIN/NAME.npz):
    ROOT/components_classical_<grid id>_<dq id>/TWIN/NAME.npz."""
    return cache.parents[2] / f"components_classical_{method.grid.method_id}_{method.dq.method_id}" / cache.parent.name / cache.name


def _save_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # two collectors may meet on one image
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _heat_and_score(name: str, analysis) -> dict:
    """A component's map (every STEP-th pixel, float16) and score as .npz arrays."""
    heat = np.asarray(analysis.heatmap, np.float32)[::STEP, ::STEP].astype(np.float16)
    return {f"heat_{name}": heat, f"score_{name}": np.float64(analysis.score)}


def _classical_arrays(method, image: np.ndarray, votes: np.ndarray, image_path: Path, mask_path, label: int) -> dict:
    """Grid and dq maps and scores of one image (its grid votes counted already, as `FusionMethod.components`
    shares them), its mask and file condition."""
    from exiflang.eval.datasets import Sample, load_mask
    from exiflang.forensics.condition import read_condition

    h, w = image.shape[:2]
    cond = read_condition(h, w, image_path)
    mask = load_mask(Sample(image_path, mask_path, label), (h, w)) if mask_path else np.zeros((h, w), bool)
    arrays = {**_heat_and_score("grid", method.grid.analyse(image, votes=votes)),
              **_heat_and_score("dq", method.dq.analyse(image, path=image_path, votes=votes))}
    arrays.update(mask=mask[::STEP, ::STEP], label=np.int64(label), height=np.int64(h), width=np.int64(w),
                  quality=np.int64(cond.jpeg_quality or 0), lossy=np.int64(bool(cond.lossy)),
                  standard=np.int64(bool(cond.standard_tables)))
    return arrays


def _row(z) -> dict:
    from exiflang.forensics.condition import FileCondition

    h, w = int(z["height"]), int(z["width"])
    cond = FileCondition(h, w, (h // 128) * (w // 128), bool(z["lossy"]), int(z["quality"]) or None,
                         bool(z["standard"]) if int(z["lossy"]) else None)
    return {"label": int(z["label"]), "mask": z["mask"].astype(bool), "condition": cond, "band": cond.band,
            "heat": {k: z[f"heat_{k}"].astype(np.float32) for k in ("learned", "grid", "dq")},
            "score": {k: float(z[f"score_{k}"]) for k in ("learned", "grid", "dq")}}


def components_dir(root: Path, per_side: int, model_id: str) -> Path:
    """Where a root's component cache for this learned model and density lives."""
    return root / f"components_ps{per_side}_{model_id}"


def collect(root: Path, method, per_side: int, every: int = 1, learned: bool = True) -> dict[str, list[dict]]:
    """Rows per twin of a desk root, every `every`-th image of the loader's order (spliced, then authentic: a
    subsample keeps the class mix), analysing what the cache lacks, with progress on stderr."""
    from exiflang.eval.datasets import load_dataset

    out = {}
    for name, set_name, sub in SETS:
        folder = root / set_name / sub
        if not (folder / "manifest.csv").is_file():
            continue
        samples = load_dataset(f"generic:{folder}").samples[::every]
        rows, t0 = [], time.time()
        for i, s in enumerate(samples):
            cache = (components_dir(root, per_side, method.learned.method_id) / name
                     / f"{Path(s.image).parent.name}__{Path(s.image).stem}.npz")
            rows.append(components(method, Path(s.image), s.mask, int(s.label), cache, learned))
            if (i + 1) % 20 == 0:
                print(f"{root.name} {name}: {i + 1}/{len(samples)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        out[name] = rows
    return out


def fused(rule, r: dict) -> tuple[np.ndarray, float]:
    from exiflang.forensics.fusion import fuse

    return fuse(rule, *((r["heat"][k], r["score"][k]) for k in ("learned", "grid", "dq")), pixel_step=STEP)


def measure(rule_of, rows: list[dict], maps: bool = True, strict: bool = False) -> tuple[float, float, float]:
    """(p-mAP, det AP, det AUC) of a rule (a function row -> rule) over rows (p-mAP NaN unless `maps`; `strict`:
    the map's own polarity, what a reader sees, instead of the better of the map and its inverse)."""
    from exiflang.eval.metrics import average_precision, detection_metrics

    aps, scores = [], []
    for r in rows:
        heat, score = fused(rule_of(r), r)
        scores.append(score)
        if maps and r["label"] == 1 and r["mask"].any():
            aps.append(average_precision(heat.ravel(), r["mask"].ravel()) if strict else _ap(heat, r["mask"]))
    det = detection_metrics(np.asarray(scores), np.asarray([r["label"] for r in rows]))
    return float(np.mean(aps)) if aps else float("nan"), float(det["det_ap"]), float(det["det_auc"])


def tune_band(base, rows_by_twin: dict[str, list[dict]]):
    """The best rule for one band's validation rows. The map and the score are separate choices (the gate and
    the map weights change only the map; the score's weights only the score): first the map with the best mean
    p-mAP over the band's twins, then, on that map, the score with the best mean detection AP."""
    best = tune_map(base, rows_by_twin)
    best = _best((replace(best, score_weight=sw, map_weight=mw, gated_grid_score=gated)
                  for sw, mw, gated in itertools.product(GRID["score"], GRID["map"], GRID["gated"])),
                 rows_by_twin, maps=False)
    # then the smoothing of the fused map: it is applied after the score is read, so it changes the map only
    best = _best((replace(best, smooth_px=float(px)) for px in GRID["smooth_px"]), rows_by_twin, maps=True)
    # last its polarity, by the p-mAP of the map as the reader sees it (the other choices cannot see polarity). The
    # flip comes first, so it wins ties: a paste is the smaller region (the learned map always follows that rule),
    # and validation must prefer the unflipped map to keep a map that lights up most of the frame.
    return _best((replace(best, flip_majority=flip) for flip in (True, False)), rows_by_twin, maps=True, strict=True)


def tune_map(base, rows_by_twin: dict[str, list[dict]]):
    """The first choice of `tune_band`: the methods' score calibrations on the band's validation authentic images,
    the map part of the rule (gate, grid and learned weights) with the best mean p-mAP, and the calibration of that
    map's contrast, for the score choices that follow."""
    from exiflang.forensics.fusion import map_contrast

    authentic = [r for rows in rows_by_twin.values() for r in rows if r["label"] == 0]
    cal = {k: robust_calibration([r["score"][k] for r in authentic]) for k in ("learned", "grid", "dq")}
    base = replace(base, calibration=cal, map_weight=0.0)
    best = _best((replace(base, grid_gate=gate, grid_weight=gw, learned_weight=lw)
                  for gate, gw, lw in itertools.product(GRID["gate"], GRID["grid_weight"], GRID["learned"])),
                 rows_by_twin, maps=True)
    contrast = robust_calibration([map_contrast(fused(best, r)[0]) for r in authentic])
    return replace(best, calibration={**cal, "contrast": contrast})


def _best(rules, rows_by_twin: dict[str, list[dict]], maps: bool, strict: bool = False):
    """The rule with the best mean over the twins of p-mAP (maps; `strict`: in the map's own polarity) or detection
    AP (not maps); the first on ties."""
    best, best_value = None, -1.0
    for rule in rules:
        value = float(np.mean([measure(lambda r: rule, rows, maps=maps, strict=strict)[0 if maps else 1]
                               for rows in rows_by_twin.values()]))
        if value > best_value:
            best, best_value = rule, value
    return best


def authentic_cut(rule, rows_by_twin: dict[str, list[dict]]) -> tuple[float, str]:
    """(fused-score cut for "likely manipulated", the twin that set it): see step 3 of the module docstring."""
    cuts = []
    for twin, rows in rows_by_twin.items():
        scores = np.asarray([fused(rule, r)[1] for r in rows if r["label"] == 0])
        tail = scores.mean() + TAIL_Z * scores.std(ddof=1) if len(scores) > 1 else scores.max()
        cuts.append((float(max(scores.max(), tail)), twin))
    return max(cuts)


def fit_band(rule, rows_by_twin: dict[str, list[dict]], model_id: str, per_side: int):
    """Platt calibration of the band's fused score, its cuts, and the validation AUC."""
    from exiflang.eval.metrics import detection_metrics
    from exiflang.forensics.calibration import fit

    rows = [r for twin_rows in rows_by_twin.values() for r in twin_rows]
    scores = np.asarray([fused(rule, r)[1] for r in rows])
    labels = np.asarray([r["label"] for r in rows])
    auc = float(detection_metrics(scores, labels)["det_auc"])
    cal = fit(scores, labels, "platt", model_id=model_id, score="fusion", per_side=per_side)
    cut, twin = authentic_cut(rule, rows_by_twin)
    high = max(0.75, cal.probability(cut) + 1e-9)
    if high >= 1.0:
        raise SystemExit(f"the cut {cut:.3f} set by {twin} is beyond what the band's probability can express")
    cal = fit(scores, labels, "platt", thresholds=(0.25, high), model_id=model_id, score="fusion",
              per_side=per_side, provenance={"fit_set": "validation desk composites of this band"})
    return cal, auc, int((labels == 0).sum()), int((labels == 1).sum()), twin


def learned_calibration(rows: list[dict], model_id: str, per_side: int):
    """Platt scaling of the learned component's score alone on the band's validation images: the reading that may
    withhold "likely authentic" (`forensics.fusion_bands.DISSENT_PROBABILITY`)."""
    from exiflang.forensics.calibration import fit

    return fit(np.asarray([r["score"]["learned"] for r in rows]), np.asarray([r["label"] for r in rows]), "platt",
               model_id=model_id, score="learned", per_side=per_side,
               provenance={"fit_set": "validation desk composites of this band"})


def held_out_photos(photos: Path, out: Path) -> dict[str, list[dict]]:
    """Authentic rows for the held-out cameras' photos as the cameras wrote them, and after a social-media chain
    (bicubic downscale by a factor in 0.5-0.8 from the file name's hash, then q85)."""
    import hashlib

    from PIL import Image

    from exiflang.eval.splices import list_photos, select_cameras
    from exiflang.imageio import load_rgb

    chosen, _ = select_cameras(list_photos(photos), "heldout")
    social = out / "social_photos"
    social.mkdir(parents=True, exist_ok=True)
    pairs = {"camera files": [], "camera files, social chain": []}
    for p in chosen:
        path = Path(p.path)
        dst = social / (hashlib.sha256(str(path).encode()).hexdigest()[:16] + ".jpg")
        if not dst.is_file():
            image, _ = load_rgb(path)
            f = 0.5 + 0.3 * int(hashlib.sha256(path.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            small = Image.fromarray(image).resize((round(image.shape[1] * f), round(image.shape[0] * f)), Image.BICUBIC)
            small.save(dst, "JPEG", quality=85)
        pairs["camera files"].append(path)
        pairs["camera files, social chain"].append(dst)
    return pairs


def verdict_counts(decisions: list, labels: list[int]) -> str:
    """'A% / S% / C%': authentic called likely manipulated, spliced called likely authentic, cannot judge."""
    from exiflang.forensics.calibration import CANNOT_JUDGE

    v, y = np.asarray([d or "none" for d in decisions]), np.asarray(labels)
    fa = (v[y == 0] == "likely manipulated").mean() if (y == 0).any() else float("nan")
    miss = (v[y == 1] == "likely authentic").mean() if (y == 1).any() else float("nan")
    return f"{100 * fa:.0f} % / {'-' if np.isnan(miss) else f'{100 * miss:.0f} %'} / {100 * (v == CANNOT_JUDGE).mean():.0f} %"


def test_tables(test: dict[str, list[dict]], fusion, old_rule, learned_cal, model_id: str, per_side: int,
                shipped=None) -> str:
    """p-mAP / det AP and verdict counts per test condition, old beside new (``shipped``: the per-band rules in the
    package before this run, another column)."""
    from exiflang.forensics.calibration import CANNOT_JUDGE, too_little_to_judge

    rules = [None, lambda r: old_rule] + ([lambda r: shipped.rule_for(r["condition"])] if shipped else [])
    rules.append(lambda r: fusion.rule_for(r["condition"]))
    lines = ["| condition | learned map | fusion, one rule (format 1) | " + ("fusion per band (shipped) | " if shipped
             else "") + "fusion per band (new) | verdicts, learned default (today) | verdicts, fusion per band (new) "
             "| bands |", "|---|---|---|---|---|---|---|" + ("---|" if shipped else "")]
    decisive, strict = [], []
    for twin, rows in test.items():
        if any(r["label"] == 1 for r in rows):  # the camera files are authentic only: no map to score
            strict.append(f"| {twin} | " + " | ".join(f"{measure(rule_of, rows, strict=True)[0]:.3f}"
                                                       for rule_of in rules[1:]) + " |")
        cells = []
        for rule_of in rules:
            if rule_of is None:
                cells.append(_learned_only(rows))
            else:
                cells.append(measure(rule_of, rows))
        today = []
        for r in rows:
            c = r["condition"]
            small = too_little_to_judge(c.height, c.width, 128)
            if learned_cal is not None:  # a candidate model without its own calibration has no "today" verdicts
                today.append(CANNOT_JUDGE if small else learned_cal.verdict(learned_cal.probability(r["score"]["learned"])))
        new = [fusion.decide(fused(fusion.rule_for(r["condition"]), r)[1], r["condition"], model_id, per_side, 128,
                             learned_score=r["score"]["learned"]).verdict for r in rows]
        labels = [r["label"] for r in rows]
        bands = ", ".join(sorted({r["band"] for r in rows}))
        today_counts = verdict_counts(today, labels) if today else "- (model not calibrated)"
        lines.append(f"| {twin} | " + " | ".join(f"{a:.3f} / {d:.3f}" for a, d, _ in cells)
                     + f" | {today_counts} | {verdict_counts(new, labels)} | {bands} |")
        decisive.append(f"| {twin} | {_right_calls(today, labels) if today else '-'} | {_right_calls(new, labels)} |")
    strict_head = ["", "Strict p-mAP of the fused map (its own polarity: the map a reader sees)", "",
                   "| condition | fusion, one rule (format 1) | " + ("fusion per band (shipped) | " if shipped else "")
                   + "fusion per band (new) |", "|---|---|---|" + ("---|" if shipped else "")]
    return "\n".join(lines + ["", "What a reader is told plainly: authentic called likely authentic / spliced called "
                               "likely manipulated", "", "| condition | learned default (today) | fusion per band (new) |",
                               "|---|---|---|", *decisive] + strict_head + strict)


def _right_calls(verdicts: list[str], labels: list[int]) -> str:
    """Share of authentic images called likely authentic and of spliced ones called likely manipulated."""
    shares = []
    for label, word in ((0, "likely authentic"), (1, "likely manipulated")):
        said = [v for v, y in zip(verdicts, labels) if y == label]
        shares.append(f"{sum(v == word for v in said) / len(said):.0%}" if said else "-")
    return " / ".join(shares)


def _learned_only(rows: list[dict]) -> tuple[float, float, float]:
    from exiflang.eval.metrics import detection_metrics

    aps = [_ap(r["heat"]["learned"], r["mask"]) for r in rows if r["label"] == 1 and r["mask"].any()]
    det = detection_metrics(np.asarray([r["score"]["learned"] for r in rows]), np.asarray([r["label"] for r in rows]))
    return float(np.mean(aps)) if aps else float("nan"), float(det["det_ap"]), float(det["det_auc"])


def photo_rows(method, pairs: dict[str, list[Path]], cache_root: Path, learned: bool = True) -> dict[str, list[dict]]:
    """Authentic rows (no mask) of the held-out cameras' photos and their social-chain copies."""
    out = {}
    for name, paths in pairs.items():
        sub = name.replace(",", "").replace(" ", "_")
        out[name] = [components(method, p, None, 0, cache_root / sub / (p.parent.name + "__" + p.stem + ".npz"), learned)
                     for p in paths]
    return out


def pooled_roots(roots: list[dict[str, list[dict]]]) -> dict[str, list[dict]]:
    """The rows of several validation roots, per twin: a twin's composites from every root together."""
    out: dict[str, list[dict]] = {}
    for rows_by_twin in roots:
        for twin, rows in rows_by_twin.items():
            out.setdefault(twin, []).extend(rows)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    from exiflang.forensics.fusion import RULE_FILE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--val", type=Path, action="append",
                   help="a validation desk root (default runs/deskval); give it again to tune on several roots "
                        "pooled, e.g. a second seed: more validation composites, less chance in each choice")
    p.add_argument("--test", type=Path, default=Path("runs/desk"))
    p.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    p.add_argument("--model", default="default")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/emb_cache15"))
    p.add_argument("--per-side", type=int, default=15)
    p.add_argument("--val-every", type=int, default=1, help="tune on every k-th validation image (time)")
    p.add_argument("--old-rule", type=Path, default=Path(__file__).parent / "configs" / "fusion_rule_v1.json",
                   help="the format-1 rule shipped before (one rule for every file), measured beside the new one")
    p.add_argument("--write", action="store_true", help=f"write the per-band rule to {RULE_FILE}")
    p.add_argument("--classical-only", action="store_true",
                   help="only compute the grid and dq components of every root (no model needed: they are the "
                        "same for every model), then stop; e.g. while the model to tune is still training")
    p.add_argument("--shipped-rules", type=Path, default=RULE_FILE,
                   help="the per-band rules measured as 'shipped' beside the new ones (default: the package's file "
                        "as it is before --write; e.g. a file from git show REV:src/exiflang/forensics/fusion_rule.json)")
    args = p.parse_args(argv)
    args.val = args.val or [Path("runs/deskval")]
    return args


def main(argv: list[str] | None = None) -> int:
    from exiflang.eval.bench import FusionMethod, build_method
    from exiflang.forensics.calibration import for_model
    from exiflang.forensics.condition import BANDS
    from exiflang.forensics.fusion import RULE_FILE, FusionRule
    from exiflang.forensics.fusion_bands import BandFusion, ConditionalFusion
    from exiflang.imageio import atomic_write_text

    args = parse_args(argv)
    old_rule = FusionRule.load(args.old_rule)
    learned = build_method("exiflang", args.model, args.cache_dir, per_side=args.per_side)
    method = FusionMethod(learned, rule=old_rule)
    model_id = learned.method_id.split("+")[-1]
    use_model = not args.classical_only
    val = pooled_roots([collect(root, method, args.per_side, args.val_every, use_model) for root in args.val])
    test = collect(args.test, method, args.per_side, learned=use_model)
    test.update(photo_rows(method, held_out_photos(args.photos, args.test),
                           components_dir(args.test, args.per_side, learned.method_id), use_model))
    if args.classical_only:
        print("grid and dq components of " + ", ".join(map(str, [*args.val, args.test])) + " are cached")
        return 0

    bands, lines = {}, ["| band | validation twins (images) | long side | rule | validation AUC | 'likely manipulated' "
                        "from p |", "|---|---|---|---|---|---|"]
    for band in BANDS:
        by_twin = {t: [r for r in rows if r["band"] == band] for t, rows in val.items()}
        by_twin = {t: rows for t, rows in by_twin.items() if len({r["label"] for r in rows}) == 2}
        if not by_twin:
            lines.append(f"| {band} | none | - | - | - | - |")
            continue
        rule = tune_band(replace(old_rule, learned_score=old_rule.learned_score), by_twin)
        pooled = [r for rows in by_twin.values() for r in rows]
        cal, auc, n_a, n_m, cut_twin = fit_band(rule, by_twin, model_id, args.per_side)
        sides = [max(r["condition"].height, r["condition"].width) for r in pooled]
        bands[band] = BandFusion(rule, cal, auc, n_a, n_m, (min(sides), max(sides)), learned_calibration(pooled, model_id,
                                                                                                   args.per_side))
        lines.append(f"| {band} | " + ", ".join(f"{t} ({len(r)})" for t, r in by_twin.items())
                     + f" | {min(sides)}-{max(sides)} px"
                     + f" | gate {rule.grid_gate:g}, grid {rule.grid_weight}, map learned {rule.learned_weight}, score "
                       f"learned {rule.score_weight}, contrast {rule.map_weight}, grid in score "
                       f"{'gated' if rule.gated_grid_score else 'always'}, map smoothed {rule.smooth_px:g} px{', flipped when mostly high' if rule.flip_majority else ''} | {auc:.3f} | {cal.bands[2].low:.4f} (set by "
                       f"{cut_twin}) |")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    val_names = " + ".join(f"`{root}`" for root in args.val)
    fusion = ConditionalFusion(bands, old_rule.learned_score, model_id, args.per_side, provenance=(
        f"benchmarks/tune_desk_fusion.py on {val_names} (validation desk composites, held-out cameras), model "
        f"{model_id}, {args.per_side} patches per side, {stamp}"))
    learned_cal = for_model(learned.model)
    print(f"## Per-band fusion rules, tuned on {val_names} ({stamp})\n\n" + "\n".join(lines))
    print(f"\n## Test `{args.test}` (never used for a choice), {args.per_side} patches per side; p-mAP / det AP "
          f"(maps compared every {STEP}th pixel); verdicts: authentic called likely manipulated / spliced called "
          f"likely authentic / cannot judge\n")
    shipped = ConditionalFusion.load(args.shipped_rules) if args.model == "default" else None  # fitted to it
    print(test_tables(test, fusion, old_rule, learned_cal, model_id, args.per_side, shipped))
    if args.write:
        import json

        atomic_write_text(RULE_FILE, json.dumps(fusion.to_dict(), indent=2) + "\n")
        print(f"\nwrote {RULE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
