"""The desk regime (issue 19): every method on photos as they reach a verification desk, camera-disjoint.

    nice -n 10 .venv/bin/python benchmarks/desk_regime.py --root runs/desk [--n 60] \
        [--model "new default=runs/v3/model"] ... > runs/desk_regime.txt 2>&1

Conditions, all from composites of the held-out cameras (`--cameras heldout`: cameras no shipped model trained
on), `--n` spliced + `--n` authentic, seed `--seed`:

* from ROOT/composites (`exiflang make-splices PHOTOS --cameras heldout --twins desk`: the very composites of
  the camera-disjoint table for the same seed and n): lossless PNG, re-saved JPEG q95 / q90 / q75, the
  social-media chain (downscaled by a per-image factor in 0.5-0.8, then q85), small images (longer side 512
  px, then q90);
* from ROOT/small_pastes (the same command with `--paste-fraction 0.005,0.03 --twins jpeg90`: the same
  (target, source) pairs and controls, regions of 0.5-3 % of the frame): lossless and re-saved q90.

Missing composite folders are built first; every (condition, method) pair is one `exiflang bench` run under
ROOT/bench/<condition>/<method slug> (`benchmarks/camera_disjoint.py`'s `bench_condition`), resumable image by
image, with the embeddings cached in --cache-dir, so a killed run is resumed by running the same command again.

Rows: the shipped default (`default`), the previously shipped default (`--old-default`, extracted from git
commit b38c8dd when absent; `--old-default ""` leaves it out), every `--model LABEL=PATH`, and the peers
(`--baselines`, default fusion + JPEG grid + double quantisation). Prints (and writes ROOT/bench/desk_regime.md)
one overview table (p-mAP / det AP, a column per method) and one table per method (a row per condition:
p-mAP, strict p-mAP, cIoU, detection AP and AUC, camera-overlap status, n).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from camera_disjoint import COLS, bench_condition, methods, overlap_status, parse_models, slug  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OLD_DEFAULT_COMMIT = "b38c8dd"  # the last commit that shipped the previous default's weights
OLD_DEFAULT_FILES = ("config.json", "model.safetensors")
SMALL_PASTE = (0.005, 0.03)
# (condition label, composite set, sub-folder of the set): the rows of the table, in order.
CONDITIONS = [
    ("lossless PNG", "composites", "."),
    ("re-saved JPEG q95", "composites", "jpeg95"),
    ("re-saved JPEG q90", "composites", "jpeg90"),
    ("re-saved JPEG q75", "composites", "jpeg75"),
    ("social chain (0.5-0.8x, q85)", "composites", "social"),
    ("small image (512 px, q90)", "composites", "small_image"),
    ("small pastes (0.5-3 %), lossless", "small_pastes", "."),
    ("small pastes (0.5-3 %), q90", "small_pastes", "jpeg90"),
]
# The order they are measured in: the conditions of issue 19's floors first, so a run cut short says most.
RUN_ORDER = ["lossless PNG", "re-saved JPEG q90", "social chain (0.5-0.8x, q85)", "small pastes (0.5-3 %), lossless",
             "small pastes (0.5-3 %), q90", "small image (512 px, q90)", "re-saved JPEG q95", "re-saved JPEG q75"]
SETS = {  # composite set -> make_splices options beyond the shared ones
    "composites": {"twins": "desk"},
    "small_pastes": {"twins": "jpeg90", "paste_fraction": SMALL_PASTE},
}


def condition_slug(label: str) -> str:
    """The bench folder of a condition: its set and sub-folder ('composites_jpeg90', 'small_pastes')."""
    for name, set_name, sub in CONDITIONS:
        if name == label:
            return set_name if sub == "." else f"{set_name}_{sub}"
    raise KeyError(label)


def read_summary(folder: Path) -> dict | None:
    """A finished bench run's summary.json (None when the run has not finished)."""
    import json

    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def build_sets(photos: Path, root: Path, n: int, seed: int) -> None:
    """Make every composite set that has no manifest yet (a half-written one from a killed run is replaced)."""
    from exiflang.eval.splices import existing_set_marks, make_splices, resolve_twins

    for set_name, extra in SETS.items():
        out = root / set_name
        manifest = out / "manifest.csv"
        if manifest.is_file():
            missing = [t for t in resolve_twins(extra["twins"]) if not (out / t / "manifest.csv").is_file()]
            if missing:
                raise SystemExit(f"{out} lacks the twin(s) {', '.join(missing)}: remove it (or use another --root)")
            print(f"using {out} (exists)", file=sys.stderr, flush=True)
            continue
        t0 = time.time()
        # No manifest: nothing finished here, so what a killed build left may be replaced.
        make_splices(photos, out, n=n, seed=seed, cameras="heldout", overwrite=bool(existing_set_marks(out)),
                     progress=False, **extra)
        print(f"built {out} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)


def old_default(path: str) -> str | None:
    """The previous default's folder, extracted from git when absent; None when it cannot be had."""
    if not path:
        return None
    folder = Path(path)
    if all((folder / f).is_file() for f in OLD_DEFAULT_FILES):
        return path
    try:
        blobs = {f: subprocess.run(["git", "show", f"{OLD_DEFAULT_COMMIT}:src/exiflang/weights/default/{f}"],
                                   cwd=REPO, check=True, capture_output=True).stdout for f in OLD_DEFAULT_FILES}
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no previous-default row: cannot extract it from git {OLD_DEFAULT_COMMIT} ({exc})", file=sys.stderr)
        return None
    from exiflang.imageio import atomic_write

    for name, blob in blobs.items():
        atomic_write(folder / name, lambda tmp, blob=blob: tmp.write_bytes(blob))
    print(f"extracted the previous default from git {OLD_DEFAULT_COMMIT} into {folder}", file=sys.stderr)
    return path


def fmt(summary: dict | None, key: str) -> str:
    """One metric of one run, 3 decimals ('–' when absent)."""
    value = (summary or {}).get(key)
    return "–" if value is None else f"{value:.3f}"


def overview(results: dict[str, dict[str, dict]], labels: list[str]) -> str:
    """Rows = conditions, a column per method: p-mAP / det AP."""
    lines = ["| condition | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for cond, _, _ in CONDITIONS:
        if cond in results:
            cells = [f"{fmt(results[cond].get(m), 'pmap')} / {fmt(results[cond].get(m), 'det_ap')}" for m in labels]
            lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_table(results: dict[str, dict[str, dict]], label: str) -> str:
    """Rows = conditions, columns = every metric, for one method."""
    lines = ["| condition | " + " | ".join(c[1] for c in COLS) + " | cameras | n (spliced/authentic) |",
             "|---|" + "---|" * (len(COLS) + 2)]
    for cond, _, _ in CONDITIONS:
        s = results.get(cond, {}).get(label)
        if s is None:
            continue
        c = s["counts"]
        lines.append(f"| {cond} | " + " | ".join(fmt(s, k) for k, _ in COLS)
                     + f" | {overlap_status(s)} | {c['manipulated']}/{c['authentic']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build the composites when absent, run every (condition, method) bench, print the tables."""
    from exiflang.imageio import atomic_write_text
    from exiflang.paths import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("runs/desk"),
                   help="composites (ROOT/composites, ROOT/small_pastes) and bench runs (ROOT/bench) (default %(default)s)")
    p.add_argument("--photos", type=Path, default=None, help="photo collection (default: the shared photos)")
    p.add_argument("--n", type=int, default=60, help="spliced and authentic images per condition (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="composite seed (default %(default)s: the camera-disjoint test set)")
    p.add_argument("--default-model", default="default", help="the shipped default's row (default %(default)s)")
    p.add_argument("--old-default", default="runs/old_default",
                   help="folder of the previous default (extracted from git when absent; '' for no row)")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=PATH", help="another learned row (repeatable)")
    p.add_argument("--baselines", default="fusion,grid,dq", help="peer rows (default %(default)s)")
    p.add_argument("--fusion-model", default="default", help="learned model inside the fusion row (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/emb_cache"), help="embedding cache (default %(default)s)")
    p.add_argument("--per-side", type=int, default=30, help="patches along the longer side (default %(default)s)")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: print the tables of the runs that have finished so far")
    p.add_argument("--build-only", action="store_true", help="build the composite sets (e.g. a validation root) and stop")
    args = p.parse_args(argv)

    photos = args.photos or ((shared_data_dir() or Path("../shared/data")) / "photos")
    if not args.report_only:
        build_sets(photos, args.root, args.n, args.seed)
    if args.build_only:
        return 0
    models = [("default", args.default_model)] if args.default_model else []
    old = old_default(args.old_default)
    if old:
        models.append(("previous default", old))
    models += parse_models(args.model)
    rows = methods(models, [b for b in args.baselines.split(",") if b], "default", args.cache_dir, args.per_side,
                   args.fusion_model)
    labels = [label for label, _ in rows]
    results: dict[str, dict[str, dict]] = {}
    where = {cond: (set_name, sub) for cond, set_name, sub in CONDITIONS}
    for cond in RUN_ORDER:
        set_name, sub = where[cond]
        if args.report_only:
            found = {label: read_summary(args.root / "bench" / condition_slug(cond) / slug(label)) for label in labels}
            done = [(label, s) for label, s in found.items() if s is not None] or None
        else:
            done = bench_condition(condition_slug(cond), args.root / set_name / sub, rows, args.root / "bench")
            print(f"finished {cond} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        if done is not None:
            results[cond] = dict(done)

    head = (f"Desk regime, camera-disjoint composites (held-out cameras, seed {args.seed}, {args.n} + {args.n} per "
            f"condition) under `{args.root}`, per side {args.per_side}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    blocks = [head, "### p-mAP / det AP\n\n" + overview(results, labels)]
    blocks += [f"### {label}\n\n{method_table(results, label)}" for label in labels]
    text = "\n\n".join(blocks) + "\n"
    print(text, flush=True)
    if not args.report_only:
        atomic_write_text(args.root / "bench" / "desk_regime.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
