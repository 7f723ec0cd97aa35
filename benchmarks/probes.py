"""Camera properties from pixels: the numbers of docs/results/probes.md.

    python benchmarks/probes.py reference --index INDEX --out src/exiflang/probes/reference_texts.json
    python benchmarks/probes.py zero-shot --index INDEX [--model default] [--baseline-model PATH]
    python benchmarks/probes.py check     --index INDEX [--model default] [--baseline-model PATH]
    python benchmarks/probes.py distortion-oracle --index INDEX   (hand-made features: are the bins learnable?)
    python benchmarks/probes.py distortion [--baseline-model PATH] [--write-probe]   (radial protocol, issue 24)
    python benchmarks/probes.py distortion-strong   (calibrate's band on strong warps of photos the probe never saw)
    python benchmarks/probes.py probes    [exiflang probe options...]   (same as `exiflang probe`)

zero-shot: for each photo, rank the collection's cameras (one representative text each) by mean
patch-text similarity; report top-1 / top-5 accuracy of the photo's own camera, beside chance and the
random-weights model. check: for each photo, compare its score with its own EXIF text against the
representative texts of every other camera; report the fraction of (photo, other camera) pairs where
the own text wins, the mean percentile and the verdict counts. Both use the model's held-out photos when
its config lists them (else all photos, and say so).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _records(index: str) -> list[dict]:
    from exiflang.data.index import load_records

    return load_records(index)


def cmd_reference(args) -> int:
    """Write the shipped reference set (one camera description per camera, tags only, no pixels)."""
    from exiflang.probes.check import build_reference_set

    entries = build_reference_set(_records(args.index))
    payload = {"description": "One typical EXIF description per camera of the shared photo collection "
                              "(tags of the camera's most typical photo); used by `exiflang check-exif` and "
                              "`exiflang predict-exif` as other cameras' texts. No pixels.",
               "references": entries}
    # One camera per line: small, and diffs stay readable.
    lines = ",\n".join(json.dumps(e, ensure_ascii=True, separators=(",", ":")) for e in entries)
    text = '{"description": ' + json.dumps(payload["description"]) + ',\n"references": [\n' + lines + "\n]}\n"
    json.loads(text)  # the hand-assembled file must stay valid JSON
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {len(entries)} cameras to {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB)")
    return 0


def _eval_photos(records: list[dict], model, use_held_out: bool) -> tuple[list[dict], str]:
    """The photos to evaluate on: the model's held-out photos when its config records a split, else all."""
    from exiflang.probes.tasks import ProbePhoto, held_out_mask

    if use_held_out:
        photos = [ProbePhoto(r["path"], r.get("tags") or {}, r.get("make") or "", r.get("model") or "",
                        r.get("sha256") or "", r.get("text") or "") for r in records]
        mask, note = held_out_mask(model, photos)
        if mask:
            return [r for r, m in zip(records, mask) if m], note
    return records, f"all {len(records)} photos (NO held-out split used: the model may have trained on them)"


def _trained_cameras(records: list[dict], evaluated: list[dict]) -> set:
    """Cameras with at least one photo outside the evaluated set (i.e. seen in training when held out)."""
    from exiflang.probes.ranking import camera_key

    held = {r["path"] for r in evaluated}
    return {camera_key(r) for r in records if r["path"] not in held}


def _models(args) -> dict:
    from exiflang.probes.tasks import load_comparison_models

    return load_comparison_models(args.model, args.baseline_model, True, args.seed, args.device)


def _photo_embeddings(model, paths: list[str], k: int, device: str):
    """Per-photo patch embeddings (grid of about k) as a list of [k, D] arrays."""
    from exiflang.probes.features import extract_features

    feats = extract_features(paths, model, k, "grid", device=device, progress=False)
    return [feats.features[feats.photo_index == i] for i in range(len(paths))]


def cmd_zero_shot(args) -> int:
    """Top-1/top-5 camera identification by zero-shot ranking of camera texts."""
    from exiflang.exif import TextConfig, exif_to_text
    from exiflang.probes.ranking import camera_candidates, camera_key, encode_texts, patch_text_scores

    records = _records(args.index)
    models = _models(args)
    photos, note = _eval_photos(records, models["model"], not args.all_photos)
    trained_cameras = _trained_cameras(records, photos)
    out = {"evaluated_on": note, "models": {}}
    print(f"zero-shot camera ranking on {note}")
    for name, model in models.items():
        cfg = TextConfig.from_dict(model.config.get("text_format"))
        cands = camera_candidates(records, lambda r: exif_to_text(r.get("tags") or {}, cfg))
        keys = [(c.make, c.model) for c in cands]
        text_emb = encode_texts(model, [c.text for c in cands], device=args.device)
        t0 = time.time()
        embs = _photo_embeddings(model, [r["path"] for r in photos], args.patches, args.device)
        ranks, seen = [], []
        for rec, emb in zip(photos, embs):
            if len(emb) == 0:
                continue
            scores = patch_text_scores(emb, text_emb)
            own = keys.index(camera_key(rec))
            ranks.append(int(np.sum(scores > scores[own])) + 1)
            seen.append(camera_key(rec) in trained_cameras)
        ranks, seen = np.array(ranks), np.array(seen)
        res = {"top1": float(np.mean(ranks == 1)), "top5": float(np.mean(ranks <= 5)),
               "median_rank": float(np.median(ranks)), "n_photos": int(len(ranks)), "n_cameras": len(cands),
               "chance_top1": 1.0 / len(cands), "chance_top5": min(1.0, 5.0 / len(cands)),
               "model_id": model.model_id, "seconds": round(time.time() - t0, 1)}
        for label, sel in (("camera_in_training", seen), ("camera_not_in_training", ~seen)):
            if sel.any() and len(photos) < len(records):  # only meaningful for a held-out subset
                res[label] = {"n_photos": int(sel.sum()), "top1": float(np.mean(ranks[sel] == 1)),
                              "top5": float(np.mean(ranks[sel] <= 5))}
        out["models"][name] = res
        print(f"  {name:<11} top-1 {res['top1']:.3f}  top-5 {res['top5']:.3f}  median rank {res['median_rank']:.0f}"
              f" / {len(cands)}   (chance top-1 {res['chance_top1']:.3f}, top-5 {res['chance_top5']:.3f})")
        for label in ("camera_in_training", "camera_not_in_training"):
            if label in res:
                r = res[label]
                print(f"      {label.replace('_', ' ')}: {r['n_photos']} photos, top-1 {r['top1']:.3f}, top-5 {r['top5']:.3f}")
    _dump(args, out)
    return 0


def cmd_check(args) -> int:
    """Own EXIF vs other cameras' texts: pairwise win rate, percentile, verdicts."""
    from exiflang.exif import TextConfig, exif_to_text
    from exiflang.probes.check import percentile_of, verdict_for
    from exiflang.probes.ranking import camera_candidates, camera_key, encode_texts, patch_text_scores

    records = _records(args.index)
    models = _models(args)
    photos, note = _eval_photos(records, models["model"], not args.all_photos)
    out = {"evaluated_on": note, "models": {}}
    trained_cameras = _trained_cameras(records, photos)
    print(f"check-exif: own EXIF vs every other camera's text, on {note}")
    for name, model in models.items():
        cfg = TextConfig.from_dict(model.config.get("text_format"))
        cands = camera_candidates(records, lambda r: exif_to_text(r.get("tags") or {}, cfg))
        keys = [(c.make, c.model) for c in cands]
        ref_emb = encode_texts(model, [c.text for c in cands], device=args.device)
        own_emb = encode_texts(model, [exif_to_text(r.get("tags") or {}, cfg) for r in photos], device=args.device)
        embs = _photo_embeddings(model, [r["path"] for r in photos], args.patches, args.device)
        wins, pcts, verdicts, swapped_pcts, seen = [], [], [], [], []
        rng = np.random.default_rng(0)
        for i, (rec, emb) in enumerate(zip(photos, embs)):
            if len(emb) == 0:
                continue
            own_key = camera_key(rec)
            others = np.array([k != own_key for k in keys])
            own = float(patch_text_scores(emb, own_emb[i:i + 1])[0])
            ref = patch_text_scores(emb, ref_emb)[others]
            wins.extend((own > ref).tolist())
            pct = percentile_of(own, ref)
            pcts.append(pct)
            seen.append(own_key in trained_cameras)
            verdicts.append(verdict_for(pct))
            # Swapped metadata: the photo paired with a random other camera's text, scored the same way.
            j = int(rng.choice(np.flatnonzero(others)))
            rest = others.copy()
            rest[j] = False
            swapped_pcts.append(percentile_of(float(patch_text_scores(emb, ref_emb[j:j + 1])[0]),
                                              np.concatenate([[own], patch_text_scores(emb, ref_emb)[rest]])))
        pcts, swapped_pcts = np.array(pcts), np.array(swapped_pcts)
        # AUC of percentile as a detector of swapped EXIF (own = negative, swapped = positive).
        auc = float(np.mean(pcts[:, None] > swapped_pcts[None, :]) + 0.5 * np.mean(pcts[:, None] == swapped_pcts[None, :]))
        res = {"pairwise_own_wins": float(np.mean(wins)), "n_pairs": len(wins), "n_photos": len(pcts),
               "mean_percentile": float(pcts.mean()), "median_percentile": float(np.median(pcts)),
               "verdicts": {v: verdicts.count(v) for v in ("consistent", "uncertain", "inconsistent")},
               "swapped_mean_percentile": float(swapped_pcts.mean()), "own_vs_swapped_auc": auc,
               "model_id": model.model_id}
        seen = np.array(seen)
        for label, sel in (("camera_in_training", seen), ("camera_not_in_training", ~seen)):
            if sel.any() and len(photos) < len(records):  # only meaningful for a held-out subset  # the pairwise win rate equals the mean percentile (no ties in practice)
                res[label] = {"n_photos": int(sel.sum()), "own_wins": float(pcts[sel].mean())}
        out["models"][name] = res
        print(f"  {name:<11} own beats other camera in {res['pairwise_own_wins']:.3f} of {len(wins)} pairs; "
              f"mean percentile own {res['mean_percentile']:.3f} vs swapped {res['swapped_mean_percentile']:.3f} "
              f"(AUC {auc:.3f}); verdicts {res['verdicts']}")
        for label in ("camera_in_training", "camera_not_in_training"):
            if label in res:
                r = res[label]
                print(f"      {label.replace('_', ' ')}: {r['n_photos']} photos, own wins {r['own_wins']:.3f}")
    _dump(args, out)
    return 0


class SpectrumFeatures:
    """A hand-made, resampling-sensitive patch 'encoder': log radial power spectrum of the high-passed luminance.

    Stands in for a model in the distortion probe, as a sanity check of how learnable the bins are.
    """

    patch_size = 128
    model_id = "spectrum-oracle-48"

    def encode_image(self, x):
        import torch

        g = x.mean(1)
        g = g - torch.nn.functional.avg_pool2d(g[:, None], 3, 1, 1)[:, 0]  # high-pass: camera/JPEG traces
        power = torch.fft.rfft2(g).abs() ** 2
        fy = torch.fft.fftfreq(g.shape[-2])[:, None].abs()
        fx = torch.fft.rfftfreq(g.shape[-1])[None, :]
        ring = torch.clamp((torch.sqrt(fy ** 2 + fx ** 2) / 0.71 * 48).long(), max=47)
        out = torch.stack([power[:, ring == b].mean(1) for b in range(48)], dim=1)
        return torch.log(out + 1e-8)


class PhaseSpectrumFeatures(SpectrumFeatures):
    """The spectrum oracle plus the 8x8 block-grid profile: 64 numbers per patch.

    The profile is the mean absolute luminance step between neighbouring columns (rows) at each column (row)
    phase mod 8, divided by its mean: an undistorted JPEG has its peak at phase 7 (the block boundary), and a
    warp that shifts content by d pixels moves the peak by d (mod 8) and blurs it. It is the hand-made reading
    of the block phase that the default model was trained to notice.
    """

    model_id = "phase-spectrum-oracle-64"

    def encode_image(self, x):
        import torch

        g = x.mean(1)
        cols = (g[:, :, 1:] - g[:, :, :-1]).abs().mean(1)  # [N, W-1]: step between column j and j+1
        rows = (g[:, 1:, :] - g[:, :-1, :]).abs().mean(2)
        prof = []
        for steps in (cols, rows):
            n = steps.shape[1] // 8 * 8
            per_phase = steps[:, :n].reshape(len(steps), -1, 8).mean(1)
            prof.append(torch.log(per_phase / (per_phase.mean(1, keepdim=True) + 1e-8) + 1e-3))
        return torch.cat([super().encode_image(x), *prof], dim=1)


def cmd_distortion_oracle(args) -> int:
    """The distortion probe on hand-made spectrum features instead of a model (how learnable are the bins?)."""
    from exiflang.probes.tasks import distortion_features, distortion_probe, distortion_set, photos_from_index

    photos = photos_from_index(args.index)
    dset = distortion_set(photos, args.bins)
    feats = distortion_features(dset, {"oracle": SpectrumFeatures()}, args.patches, progress=False)
    res = distortion_probe(dset, feats["oracle"], tuple(range(args.seeds)))
    print(f"distortion bins with log-spectrum features ({len(dset.paths)} photos, {args.bins} bins): photo acc "
          f"{res['photo_accuracy']:.3f} ± {res['photo_accuracy_std']:.3f}, patch acc {res['patch_accuracy']:.3f}, "
          f"chance {res['majority_chance']:.3f}")
    _dump(args, res)
    return 0


def heldout_frames(model, photos_dir: str, size: tuple[int, int]) -> tuple[list[str], list[str]]:
    """(paths, cameras) of the shared photos whose camera the model never trained on, stored at `size` (w, h).

    The cameras come from the model's config.json (`train.cameras.heldout_cameras`); the Make/Model of each
    photo from the collection's MANIFEST.csv (EXIF IFD0, documented in ../shared/data/README.md)."""
    import csv

    from exiflang.data.cameras import camera_key

    held = set(((model.config.extra or {}).get("train") or {}).get("cameras", {}).get("heldout_cameras") or [])
    if not held:
        raise SystemExit(f"{model.model_id}: its config lists no held-out cameras; no camera-disjoint set")
    with open(Path(photos_dir) / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if camera_key(r["make"], r["model"]) in held
                and (int(r["width"]), int(r["height"])) == size]
    return [str(Path(photos_dir) / r["path"]) for r in rows], [camera_key(r["make"], r["model"]) for r in rows]


def _radial_models(args) -> dict:
    """The representations compared at the k1 probe: default, random weights, image-only, the two oracles."""
    import torch

    from exiflang.probes.tasks import load_comparison_models

    torch.set_num_threads(args.threads)
    loaded = load_comparison_models(args.model, args.baseline_model, True, 0, "cpu")
    models = {"default": loaded["model"], "random weights": loaded["random"]}
    if "image-only" in loaded:
        models["image-only"] = loaded["image-only"]
    models["oracle: spectrum"] = SpectrumFeatures()
    models["oracle: spectrum + block phase"] = PhaseSpectrumFeatures()
    return models


def _candidates(specs: list[str]) -> dict:
    """Extra learned rows from LABEL=PATH arguments, loaded image-only."""
    from camera_disjoint import parse_models
    from exiflang.models import load_model

    return {label: load_model(path, image_only=True) for label, path in parse_models(specs, "--candidate")}


def cmd_distortion(args) -> int:
    """The radial protocol (tiles at known radii, rings, camera-disjoint) for every representation."""
    from exiflang.paths import shared_data_dir
    from exiflang.probes.k1probe import evaluate
    from exiflang.probes.radial import radial_embeddings, radial_set, set_features

    models = _radial_models(args)
    if args.only:
        models = {name: m for name, m in models.items() if name == "default" or name in args.only}
    models.update(_candidates(args.candidate))
    photos_dir = args.photos or str((shared_data_dir() or Path("../shared/data")) / "photos")
    paths, groups = heldout_frames(models["default"], photos_dir, (1024, 768))
    rset = radial_set(paths, groups, args.versions)
    band_edges = (float(rset.bin_edges[0]), float(rset.bin_edges[-1]))
    print(f"radial protocol: {len(paths)} photos of {len(set(groups))} cameras the model never trained on, "
          f"{args.versions} distorted versions each ({rset.source}); bins {np.round(rset.bin_edges, 4).tolist()}; "
          f"{args.seeds} camera-disjoint splits")
    out = {"n_photos": len(paths), "n_cameras": len(set(groups)), "versions": args.versions,
           "bin_edges": rset.bin_edges.tolist(), "band_edges": band_edges, "models": {}}
    for name, model in models.items():
        t0 = time.time()
        emb, radii = radial_embeddings(rset, model, args.cache, progress=False)
        res = evaluate(set_features(emb, radii), rset.bins, rset.coeffs[..., 0], groups, 5, band_edges,
                       tuple(range(args.seeds)))
        res["model_id"] = getattr(model, "model_id", name)
        out["models"][name] = res
        print(f"  {name:<31} bins {res['bin_accuracy']:.3f} ± {res['bin_accuracy_std']:.3f}   k1 RMSE "
              f"{res['k1_rmse']:.4f} ± {res['k1_rmse_std']:.4f} (mean predictor {res['k1_rmse_mean_predictor']:.4f})"
              f"   MAE {res['k1_mae']:.4f}   band {res['band_accuracy']:.3f} / by mass {res['band_accuracy_by_mass']:.3f} "
              f"(chance {res['band_chance']:.3f})"
              f"   |err| <= k1_std {res['coverage']:.2f}   [{time.time() - t0:.0f} s]", flush=True)
    if args.write_probe:
        _write_probe(models["default"], rset, args, out)
    _dump(args, out)
    return 0


def _write_probe(model, rset, args, evaluation: dict) -> None:
    """Fit the shipped probe on every photo of the set and write it beside the model."""
    from exiflang.models.factory import resolve_weights_dir
    from exiflang.probes.k1probe import shipped_calibrator
    from exiflang.probes.radial import radial_embeddings, set_features

    emb, radii = radial_embeddings(rset, model, args.cache, progress=False)
    calibrator = shipped_calibrator(model, rset, set_features(emb, radii), evaluation["models"]["default"],
                                    command=f"python benchmarks/probes.py distortion --versions {args.versions} "
                                            "--only default --write-probe")
    folder = resolve_weights_dir(args.model)
    calibrator.save(folder)
    print(f"wrote the k1 probe of {model.model_id} to {folder} (C = {calibrator.meta['c']})")


def cmd_distortion_strong(args) -> int:
    """`calibrate` on strong warps (k1 = -0.07, +0.06) and on no warp, over photos the probe never saw."""
    import csv

    import torch

    from exiflang.data.cameras import camera_key
    from exiflang.imageio import as_rgb_array
    from exiflang.models import load_model
    from exiflang.models.factory import resolve_weights_dir
    from exiflang.probes.calibrator import BANDS, calibrate_image, load_calibrator
    from exiflang.probes.distortion import distort

    torch.set_num_threads(1)
    model = load_model(args.model, image_only=True)
    cal = load_calibrator(resolve_weights_dir(args.model))
    held = set(model.config.extra["train"]["cameras"]["heldout_cameras"])  # the probe's own photos: left out
    with open(Path(args.photos) / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if camera_key(r["make"], r["model"]) not in held
                and (r["width"], r["height"]) == ("1024", "768")]
    rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[:args.n]]
    print(f"{len(rows)} random 1024x768 shared photos of cameras the model trained on (never seen by the probe)")
    for want, k1 in (("barrel", -0.07), ("pincushion", 0.06), ("none", 0.0)):
        got = [calibrate_image(model, cal, distort(a, k1) if k1 else a)
               for a in (as_rgb_array(Path(args.photos) / r["path"]) for r in rows)]
        bands = [g["band"] for g in got]
        print(f"  k1 = {k1:+.2f} (want {want}): " + ", ".join(f"{b} {bands.count(b)}" for b in BANDS)
              + f"; median k1 estimate {np.median([g['k1'] for g in got]):+.4f}", flush=True)
    return 0


def cmd_probes(argv: list[str]) -> int:
    """Delegate to `exiflang probe` (same options)."""
    from exiflang.cli import main

    return main(["probe", *argv])


def _dump(args, out: dict) -> None:
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "probes":
        return cmd_probes(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ref = sub.add_parser("reference", help="write the shipped reference set from an index")
    ref.add_argument("--index", required=True)
    ref.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/exiflang/probes/reference_texts.json"))
    ref.set_defaults(func=cmd_reference)
    for name, func in (("zero-shot", cmd_zero_shot), ("check", cmd_check)):
        p = sub.add_parser(name)
        p.add_argument("--index", required=True, help="index of the photos (e.g. of ../shared/data/photos)")
        p.add_argument("--model", default="default")
        p.add_argument("--baseline-model", help="image-only contrastive model folder")
        p.add_argument("--seed", type=int, default=0, help="random-weights baseline seed")
        p.add_argument("--patches", type=int, default=16)
        p.add_argument("--all-photos", action="store_true", help="ignore the model's held-out split")
        p.add_argument("--device", default="cpu")
        p.add_argument("--json", help="write results here")
        p.set_defaults(func=func)
    orc = sub.add_parser("distortion-oracle", help="distortion probe on hand-made spectrum features (sanity check)")
    orc.add_argument("--index", required=True)
    orc.add_argument("--bins", type=int, default=5)
    orc.add_argument("--patches", type=int, default=8)
    orc.add_argument("--seeds", type=int, default=3)
    orc.add_argument("--json", help="write results here")
    orc.set_defaults(func=cmd_distortion_oracle)
    dis = sub.add_parser("distortion", help="radial protocol: k1 bins and k1 regression, camera-disjoint")
    dis.add_argument("--model", default="default")
    dis.add_argument("--baseline-model", help="image-only contrastive model folder")
    dis.add_argument("--photos", help="shared photos folder with MANIFEST.csv (default ../shared/data/photos)")
    dis.add_argument("--versions", type=int, default=20, help="distorted versions per photo (bin = version mod 5; "
                                                             "default 20, the documented protocol)")
    dis.add_argument("--seeds", type=int, default=3, help="camera-disjoint splits")
    dis.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    dis.add_argument("--cache", default="runs/radial", help="tile-embedding cache folder")
    dis.add_argument("--write-probe", action="store_true", help="fit the shipped probe on all photos and write it "
                                                                "beside the model (src/exiflang/weights/default)")
    dis.add_argument("--only", nargs="+", metavar="NAME", help="evaluate only the default and these representations "
                                                             "('random weights', 'image-only', 'oracle: spectrum', ...)")
    dis.add_argument("--candidate", action="append", default=[], metavar="LABEL=PATH",
                     help="another learned row beside the default, same frames and splits (repeatable)")
    dis.add_argument("--json", help="write results here")
    dis.set_defaults(func=cmd_distortion)
    strong = sub.add_parser("distortion-strong", help="calibrate's band on strong warps, photos the probe never saw")
    strong.add_argument("--model", default="default")
    strong.add_argument("--photos", default="../shared/data/photos", help="shared photos folder with MANIFEST.csv")
    strong.add_argument("--n", type=int, default=30, help="photos (random, seed 0)")
    strong.set_defaults(func=cmd_distortion_strong)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
