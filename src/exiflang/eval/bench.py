"""The benchmark runner: every image of a dataset through one method, per-image metrics, a summary.

Output folder layout (``out_dir``):
* ``bench_config.json``: dataset, method, model id and post-processing settings of the run; a resumed run
  must match it (otherwise it refuses to mix results).
* ``maps/<stem>.json``, ``maps/<stem>.heatmap.npy``, PNGs: the files ``exiflang detect --out`` writes.
* ``per_image/<stem>.json``: label, score and localisation metrics of one image, written last and atomically;
  its presence marks the image as done, which is what makes an interrupted run resumable.
* ``per_image.csv``, ``summary.json`` (keys ``pmap``, ``pmap_strict``, ``ciou``, ``ciou_strict``, ``f1_best``,
  ``mcc_best``, ``pixel_auc``, ``det_ap``, ``det_auc``, ``counts``, ``camera_overlap``, ...) and ``summary.md``.

The methods and their registry (`METHODS`, `build_method`) live in `exiflang.eval.methods`, the camera-overlap
check (``summary.json["camera_overlap"]``) in `exiflang.eval.camera_overlap`; their names are re-exported here
for the callers written before the split. Metric definitions: `exiflang.eval.metrics`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ExiflangError
from ..imageio import atomic_write
from . import metrics as M
from .analysis import Analysis, BenchError, MethodError, analyse_file, call_analyse, warn
from .analysis import jsonable as _jsonable  # noqa: F401 - the name `exiflang detect` imports from here
from .camera_overlap import (STATUS_OVERLAP, camera_overlap, camera_overlap_line, camera_overlap_warning,
                             dataset_cameras)
from .datasets import Dataset, Sample, load_mask
from .light_report import write_light_report as _write_light_report
from .methods import (METHODS, DQMethod, EmbeddingMethod, FusionMethod, GridMethod, MethodOptions, MethodSpec,
                      NoiseMethod, build_method, random_weights_model)

SUMMARY_KEYS = ["pmap", "pmap_strict", "ciou", "ciou_strict", "ciou_single", "f1_best", "mcc_best",
                "f1_fixed", "mcc_fixed", "pixel_auc", "det_ap", "det_auc"]
# Per-image metric key -> summary key (means over manipulated images).
LOCAL_KEYS = {"ap": "pmap", "ap_strict": "pmap_strict", "ciou": "ciou", "ciou_strict": "ciou_strict",
              "ciou_single": "ciou_single", "f1_best": "f1_best", "mcc_best": "mcc_best", "f1_fixed": "f1_fixed",
              "mcc_fixed": "mcc_fixed", "pixel_auc": "pixel_auc"}



def sample_stem(sample: Sample, root: Path) -> str:
    """Unique, file-system-safe output stem of a sample (its path under the dataset root)."""
    try:
        rel = sample.image.relative_to(root)
    except ValueError:
        rel = Path(sample.image.name)
    stem = rel.with_suffix("").as_posix().replace("/", "__")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def _git_commit() -> str:
    """Short commit of the checkout this package runs from ($EXIFLANG_COMMIT when set, e.g. on a copy), or 'unknown'."""
    if os.environ.get("EXIFLANG_COMMIT"):
        return os.environ["EXIFLANG_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class BenchRun:
    """Counters of one invocation (how much was computed now vs. resumed)."""

    computed: int = 0
    resumed: int = 0
    errors: int = 0
    cached_embeddings: int = 0
    problems: list[str] = field(default_factory=list)


def _analyse_sample(sample: Sample, method: Any, fixed_threshold: float, maps_dir: Path | None, stem: str) -> tuple[dict, bool]:
    """Run the method on one sample, write its maps, and return its per-image record (+ cache hit)."""
    done = analyse_file(method, sample.image)  # the one "image file through method M" (also exiflang batch's)
    image, analysis, seconds = done.pixels, done.analysis, done.seconds
    mask = load_mask(sample, image.shape[:2])
    heat = np.asarray(analysis.heatmap, dtype=np.float64)
    if heat.shape != mask.shape:
        raise BenchError(f"{sample.image}: method returned a {heat.shape} map for a {mask.shape} image")
    record: dict[str, Any] = {"stem": stem, "image": str(sample.image), "label": int(sample.label),
                              "score": float(analysis.score), "seconds": round(seconds, 4),
                              "mask_fraction": float(mask.mean()), "status": "ok"}
    if sample.label == 1:
        if mask.any():
            record.update(M.image_localization_metrics(heat, mask, fixed_threshold))
        else:
            record["status"] = "empty-mask"
    if maps_dir is not None:
        if analysis.result is not None:
            from ..forensics import write_report

            analysis.result.source = str(sample.image)
            write_report(analysis.result, image, maps_dir, stem)
        else:
            _write_light_report(analysis, image, maps_dir, stem, method.method_id)
    return record, analysis.cached


def summarise(records: list[dict]) -> dict:
    """Summary metrics over per-image records (see `exiflang.eval.metrics` for the definitions)."""
    ok = [r for r in records if r["status"] == "ok"]
    manip = [r for r in ok if r["label"] == 1]
    out: dict[str, Any] = {}
    for local, key in LOCAL_KEYS.items():
        vals = [r[local] for r in manip if local in r and r[local] is not None and not math.isnan(r[local])]
        out[key] = float(np.mean(vals)) if vals else None
    labels = np.array([r["label"] for r in ok])
    if ok and 0 < labels.sum() < len(labels):
        det = M.detection_metrics(np.array([r["score"] for r in ok]), labels)
        out.update({k: float(v) for k, v in det.items()})
    else:
        out.update(det_ap=None, det_auc=None)  # detection needs both authentic and manipulated images
    out["counts"] = {
        "images": len(records), "scored": len(ok), "manipulated": len(manip), "authentic": len(ok) - len(manip),
        "errors": sum(r["status"] == "error" for r in records),
        "empty_masks": sum(r["status"] == "empty-mask" for r in records),
    }
    out["mean_seconds"] = float(np.mean([r["seconds"] for r in ok])) if ok else None
    return out


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """A Markdown table with one row per (name, summary)."""
    cols = ["pmap", "pmap_strict", "ciou", "ciou_strict", "ciou_single", "f1_best", "mcc_best", "f1_fixed",
            "pixel_auc", "det_ap", "det_auc"]
    head = "| method | " + " | ".join(cols) + " | n (manip/auth) |"
    sep = "|" + "---|" * (len(cols) + 2)
    lines = [head, sep]
    for name, s in rows:
        vals = ["–" if s.get(c) is None else f"{s[c]:.3f}" for c in cols]
        c = s["counts"]
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {c['manipulated']}/{c['authentic']} |")
    return "\n".join(lines) + "\n"


def _check_config(out_dir: Path, config: dict, overwrite: bool) -> None:
    """Refuse to resume into a folder that holds a run with other settings (unless overwrite)."""
    path = out_dir / "bench_config.json"
    if path.is_file() and not overwrite:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BenchError(f"{path} is damaged ({exc}); delete it to resume, or use --overwrite") from None
        if not isinstance(old, dict):
            raise BenchError(f"{path} is damaged (not a JSON object); delete it to resume, or use --overwrite")
        keys = ("dataset", "method", "settings", "fixed_threshold")
        if {k: old.get(k) for k in keys} != {k: config.get(k) for k in keys}:
            raise BenchError(
                f"{out_dir} holds a benchmark run with other settings ({path}); use another --out, or --overwrite "
                f"to discard it"
            )
    if overwrite and (out_dir / "per_image").is_dir():
        # Shards of one run would delete each other's results: overwrite is for a single process.
        for p in (out_dir / "per_image").glob("*.json"):
            p.unlink()
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))


def _check_unique_stems(samples: list[Sample], stems: list[str]) -> None:
    """BenchError naming both files when two samples would share output files (``a b.jpg`` and ``a_b.jpg``)."""
    first_with: dict[str, Path] = {}
    for sample, stem in zip(samples, stems):
        if stem not in first_with:
            first_with[stem] = sample.image
            continue
        other = first_with[stem]
        if other == sample.image:
            raise BenchError(f"{other} is listed twice in the dataset")
        raise BenchError(f"{other} and {sample.image} map to the same output name {stem!r}; rename one of them")


def _select_samples(dataset: Dataset, every: int, limit: int | None, shard: tuple[int, int] | None):
    """(all scored samples, this shard's samples, their output stems)."""
    # Every k-th image of the loader's order (manipulated then authentic): a subsample keeping the class mix.
    samples = dataset.samples[::every]
    samples = samples[:limit] if limit else samples
    stems = [sample_stem(s, dataset.root) for s in samples]
    _check_unique_stems(samples, stems)
    if shard is None:
        return samples, samples, stems
    k, n = shard
    if not 0 <= k < n:
        raise BenchError(f"shard {k}/{n}: need 0 <= K < N")
    return samples, samples[k::n], stems[k::n]


def _read_record(path: Path, log: Callable[[str], None] = warn) -> dict | None:
    """A per-image record written by an earlier run, or None (with a warning naming the file) when it is damaged."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log(f"damaged per-image result {path} ({exc}); recomputing it")
        return None
    if not isinstance(record, dict) or not {"stem", "label", "status", "score"} <= set(record):
        log(f"damaged per-image result {path} (not a per-image record); recomputing it")
        return None
    return record


def _sample_record(sample, stem: str, method: Any, fixed_threshold: float, per_image: Path, maps_dir: Path | None,
                   run: BenchRun) -> dict:
    """One image's record: read back when a previous run wrote it, else analysed and written atomically."""
    done = per_image / f"{stem}.json"
    if done.is_file():
        record = _read_record(done)
        if record is not None:
            run.resumed += 1
            return record
    try:
        record, cached = _analyse_sample(sample, method, fixed_threshold, maps_dir, stem)
        run.cached_embeddings += int(cached)
    except ExiflangError as exc:  # any project error of one image (unreadable, too small, ...): recorded, the run goes on
        record = {"stem": stem, "image": str(sample.image), "label": int(sample.label), "status": "error",
                  "error": str(exc), "score": None, "seconds": 0.0}
        run.errors += 1
        warn(f"skipped {exc}" if str(sample.image) in str(exc) else f"skipped {sample.image}: {exc}")
    atomic_write(done, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    run.computed += 1
    return record


def run_bench(dataset: Dataset, method: Any, out_dir: Path, *, dataset_spec: str = "", fixed_threshold: float = 0.5,
              limit: int | None = None, write_maps: bool = True, overwrite: bool = False,
              progress: bool = True, shard: tuple[int, int] | None = None, every: int = 1) -> tuple[dict, BenchRun]:
    """Run (or resume) a benchmark; write per-image files, per_image.csv, summary.json and summary.md.

    With ``shard=(k, n)`` only every n-th image from the k-th is analysed and no summary is written: run n
    shards in parallel into the same folder, then once without a shard to gather them (nothing is recomputed).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"dataset": dataset_spec or f"{dataset.kind}:{dataset.root}", "method": method.method_id, "every": every,
              "settings": method.settings(), "fixed_threshold": fixed_threshold}
    _check_config(out_dir, config, overwrite)
    if every < 1:
        raise BenchError(f"--every must be at least 1, got {every}")
    samples_all, samples, stems = _select_samples(dataset, every, limit, shard)
    per_image, maps_dir = out_dir / "per_image", (out_dir / "maps" if write_maps else None)
    run = BenchRun(problems=list(dataset.problems))
    records: list[dict] = []
    t_start = time.perf_counter()
    bar = tqdm(list(zip(samples, stems)), desc=f"bench {method.method_id}", unit="img", disable=not progress)
    for sample, stem in bar:
        records.append(_sample_record(sample, stem, method, fixed_threshold, per_image, maps_dir, run))
    if shard is not None:
        return {}, run
    summary = summarise(records)
    summary.update({
        "dataset": config["dataset"], "method": method.method_id, "settings": method.settings(),
        "fixed_threshold": fixed_threshold, "every": every, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(), "wall_seconds_this_invocation": round(time.perf_counter() - t_start, 2),
        "problems": run.problems,
        "camera_overlap": camera_overlap(method, dataset_cameras(dataset, samples_all)),
    })
    _write_outputs(out_dir, records, summary)
    return summary, run


def _write_outputs(out_dir: Path, records: list[dict], summary: dict) -> None:
    """per_image.csv, summary.json and summary.md."""
    fields = ["stem", "image", "label", "status", "score", "seconds", "mask_fraction", "ap", "ap_strict", "ciou",
              "ciou_strict", "ciou_single", "ciou_single_strict", "f1_best", "f1_best_strict", "mcc_best",
              "mcc_best_strict", "f1_fixed", "mcc_fixed", "ciou_fixed", "pixel_auc", "pixel_auc_pf", "error"]

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(records)

    atomic_write(out_dir / "per_image.csv", write_csv)
    atomic_write(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    text = (f"Benchmark `{summary['dataset']}`, method `{summary['method']}`, {summary['date']}, commit "
            f"{summary['commit']}. Metric definitions: `exiflang.eval.metrics`.\n\n"
            + markdown_table([(summary["method"], summary)]))
    overlap = summary.get("camera_overlap")
    if overlap:
        line = camera_overlap_line(overlap)
        text += f"\n{line[0].upper() + line[1:]}.\n"
        if overlap.get("status") == STATUS_OVERLAP:
            text += ("\n**Warning: these numbers measure memory, not generalisation** (the model trained on photos "
                     "from these cameras).\n")
    atomic_write(out_dir / "summary.md", lambda tmp: tmp.write_text(text))

__all__ = ["BenchError", "MethodError", "Analysis", "analyse_file", "warn", "EmbeddingMethod", "NoiseMethod", "GridMethod", "DQMethod",
           "METHODS", "MethodSpec", "FusionMethod", "MethodOptions", "build_method", "call_analyse",
           "random_weights_model", "run_bench", "summarise", "markdown_table", "sample_stem",
           "dataset_cameras", "camera_overlap", "camera_overlap_line", "camera_overlap_warning"]
