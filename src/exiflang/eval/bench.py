"""The benchmark runner: every image of a dataset through one method, per-image metrics, a summary.

Output folder layout (``out_dir``):
* ``bench_config.json``: dataset, method, model id and post-processing settings of the run; a resumed run
  must match it (otherwise it refuses to mix results).
* ``maps/<stem>.json``, ``maps/<stem>.heatmap.npy``, PNGs: the files ``exiflang detect --out`` writes.
* ``per_image/<stem>.json``: label, score and localisation metrics of one image, written last and atomically;
  its presence marks the image as done, which is what makes an interrupted run resumable.
* ``per_image.csv``, ``summary.json`` (keys ``pmap``, ``pmap_strict``, ``ciou``, ``ciou_strict``, ``f1_best``,
  ``mcc_best``, ``pixel_auc``, ``det_ap``, ``det_auc``, ``counts``, ...) and ``summary.md``.

Learned methods cache their patch embeddings as ``<cache>/<model id>/<pixel hash>_ps<per_side>.npy``, so
re-running with other post-processing (``iters``, ``percentile``, threshold) or into another folder embeds
nothing again. Metric definitions: `exiflang.eval.metrics`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import ExifModel

import numpy as np

from . import metrics as M
from .datasets import Dataset, DatasetError, Sample, load_mask

SUMMARY_KEYS = ["pmap", "pmap_strict", "ciou", "ciou_strict", "ciou_single", "f1_best", "mcc_best",
                "f1_fixed", "mcc_fixed", "pixel_auc", "det_ap", "det_auc"]
# Per-image metric key -> summary key (means over manipulated images).
LOCAL_KEYS = {"ap": "pmap", "ap_strict": "pmap_strict", "ciou": "ciou", "ciou_strict": "ciou_strict",
              "ciou_single": "ciou_single", "f1_best": "f1_best", "mcc_best": "mcc_best", "f1_fixed": "f1_fixed",
              "mcc_fixed": "mcc_fixed", "pixel_auc": "pixel_auc"}


class BenchError(Exception):
    """The benchmark cannot run (bad options, an output folder from another run); the message says why."""


@dataclass
class Analysis:
    """What a method returns for one image."""

    heatmap: np.ndarray  # float32 HxW in [0, 1], high = manipulated
    score: float  # higher = more likely manipulated
    result: Any = None  # a forensics.DetectionResult when there is one (for write_report)
    cached: bool = False  # embeddings came from the cache


class Method(Protocol):
    """A detector the harness can run: a stable id and image -> Analysis."""

    method_id: str

    def settings(self) -> dict:
        """Settings that change results (recorded in bench_config.json)."""

    def analyse(self, image: np.ndarray) -> Analysis:
        """Analyse one HxWx3 uint8 image."""


def pixel_hash(image: np.ndarray) -> str:
    """Content hash of a decoded pixel array (shape included), the embedding-cache key."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()[:24]


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a killed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """np.save to exactly this path (np.save would append .npy to a temporary name)."""
    with path.open("wb") as fh:
        np.save(fh, arr)


@dataclass
class EmbeddingMethod:
    """A patch-embedding model + the consistency pipeline of `exiflang.forensics`, with an embedding cache."""

    model: Any
    method_id: str
    cache_dir: Path | None
    per_side: int = 30
    batch_size: int = 64
    iters: int = 5
    percentile: float = 10.0
    description: str = ""

    def settings(self) -> dict:
        """Settings that change results."""
        return {"model_id": self.method_id, "per_side": self.per_side, "iters": self.iters,
                "percentile": self.percentile, "description": self.description}

    def _embeddings(self, image: np.ndarray):
        """Patch embeddings and grid, from the cache when possible."""
        from ..forensics import embed_patches, make_grid

        grid = make_grid(image.shape[0], image.shape[1], int(self.model.patch_size), self.per_side)
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / self.method_id / f"{pixel_hash(image)}_ps{self.per_side}.npy"
            if path.is_file():
                emb = np.load(path)
                if emb.shape[0] == grid.n_patches:
                    return emb, grid, True
        emb, grid = embed_patches(image, self.model, per_side=self.per_side, batch_size=self.batch_size, grid=grid)
        if path is not None:
            _atomic_write(path, lambda tmp: _save_npy(tmp, emb))
        return emb, grid, False

    def analyse(self, image: np.ndarray) -> Analysis:
        """Embed (or read cached embeddings) and run the consistency pipeline."""
        from ..forensics import consistency_from_embeddings

        emb, grid, cached = self._embeddings(image)
        result = consistency_from_embeddings(emb, grid, iters=self.iters, percentile=self.percentile,
                                             model_id=self.method_id)
        return Analysis(result.heatmap, float(result.score), result, cached)


@dataclass
class NoiseMethod:
    """The classical noise-level-inconsistency baseline (`baselines.noise`)."""

    block: int = 16
    method_id: str = "noise-v1"

    def settings(self) -> dict:
        """Settings that change results."""
        return {"model_id": self.method_id, "block": self.block}

    def analyse(self, image: np.ndarray) -> Analysis:
        """Noise-level heatmap and score."""
        from .baselines.noise import noise_inconsistency

        heat, score = noise_inconsistency(image, self.block)
        return Analysis(heat, score)


def random_weights_model(like: str = "default", seed: int = 0, device: str = "cpu") -> "ExifModel":
    """The architecture of model `like` with freshly initialised (random) weights, fixed seed, eval mode."""
    from ..models import ModelError, create_model
    from ..models.factory import resolve_weights_dir

    try:
        config = json.loads((resolve_weights_dir(like) / "config.json").read_text())
    except ModelError:  # `like` may also be a config name such as "tiny"
        config = like
    model = create_model(config, seed=seed).to(device).eval()
    name = config.get("name", "custom") if isinstance(config, dict) else str(config)
    model.model_id = f"random-{name}-seed{seed}"
    return model


def build_method(method: str, model: str = "default", cache_dir: Path | None = None, device: str = "cpu",
                 per_side: int = 30, batch_size: int = 64, iters: int = 5, percentile: float = 10.0,
                 seed: int = 0) -> Any:
    """A Method by name: 'exiflang' (a trained model), 'random' (same architecture, random weights), 'noise'."""
    if method == "noise":
        return NoiseMethod()
    if method == "exiflang":
        from ..forensics import resolve_model

        net = resolve_model(model, device)
        model_id = str(getattr(net, "model_id", "") or model)
        objective = (getattr(net, "config", {}) or {}).get("train", {}).get("recipe", {}).get("objective", "unknown")
        desc = f"trained model {model} (objective {objective})"
    elif method == "random":
        net = random_weights_model(model, seed, device)
        model_id, desc = net.model_id, f"architecture of {model}, random weights (seed {seed})"
    else:
        raise BenchError(f"unknown method {method!r} (choose exiflang, random or noise)")
    return EmbeddingMethod(net, model_id, cache_dir, per_side, batch_size, iters, percentile, desc)


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


def _write_light_report(analysis: Analysis, image: np.ndarray, out_dir: Path, stem: str, method_id: str) -> None:
    """Heatmap .npy, overlay PNG and JSON for methods without a DetectionResult (same names as detect)."""
    from PIL import Image

    from ..forensics.report import overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / f"{stem}.heatmap.npy", analysis.heatmap.astype(np.float32))
    Image.fromarray(overlay(image, analysis.heatmap)).save(out_dir / f"{stem}.overlay.png")
    Image.fromarray(((analysis.heatmap >= 0.5) * 255).astype(np.uint8)).save(out_dir / f"{stem}.mask.png")
    h, w = analysis.heatmap.shape
    (out_dir / f"{stem}.json").write_text(json.dumps(
        {"score": analysis.score, "model_id": method_id, "image_size": {"height": h, "width": w},
         "flagged_fraction": float((analysis.heatmap >= 0.5).mean())}, indent=2) + "\n")


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
    from ..imageio import load_rgb

    image, _ = load_rgb(sample.image)
    mask = load_mask(sample, image.shape[:2])
    t0 = time.perf_counter()
    analysis = method.analyse(image)
    seconds = time.perf_counter() - t0
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
        old = json.loads(path.read_text())
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
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))


def run_bench(dataset: Dataset, method: Any, out_dir: Path, *, dataset_spec: str = "", fixed_threshold: float = 0.5,
              limit: int | None = None, write_maps: bool = True, overwrite: bool = False,
              progress: bool = True, shard: tuple[int, int] | None = None, every: int = 1) -> tuple[dict, BenchRun]:
    """Run (or resume) a benchmark; write per-image files, per_image.csv, summary.json and summary.md.

    With ``shard=(k, n)`` only every n-th image from the k-th is analysed and no summary is written: run n
    shards in parallel into the same folder, then once without a shard to gather them (nothing is recomputed).
    """
    from tqdm import tqdm

    from ..imageio import ImageLoadError

    try:
        from ..forensics import ForensicsError
    except ImportError:  # the forensics package is optional for classical baselines
        ForensicsError = DatasetError  # noqa: N806
    skip_errors = (ImageLoadError, DatasetError, M.MetricInputError, ForensicsError)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"dataset": dataset_spec or f"{dataset.kind}:{dataset.root}", "method": method.method_id, "every": every,
              "settings": method.settings(), "fixed_threshold": fixed_threshold}
    _check_config(out_dir, config, overwrite)
    if every < 1:
        raise BenchError(f"--every must be at least 1, got {every}")
    # Every k-th image of the loader's order (manipulated then authentic): a subsample keeping the class mix.
    samples = dataset.samples[::every]
    samples = samples[:limit] if limit else samples
    stems = [sample_stem(s, dataset.root) for s in samples]
    if len(set(stems)) != len(stems):
        raise BenchError(f"{dataset.root}: two images map to the same output name; rename them")
    if shard is not None:
        k, n = shard
        if not 0 <= k < n:
            raise BenchError(f"shard {k}/{n}: need 0 <= K < N")
        samples, stems = samples[k::n], stems[k::n]
    per_image, maps_dir = out_dir / "per_image", (out_dir / "maps" if write_maps else None)
    run = BenchRun(problems=list(dataset.problems))
    records: list[dict] = []
    t_start = time.perf_counter()
    bar = tqdm(list(zip(samples, stems)), desc=f"bench {method.method_id}", unit="img", disable=not progress)
    for sample, stem in bar:
        done = per_image / f"{stem}.json"
        if done.is_file():
            records.append(json.loads(done.read_text()))
            run.resumed += 1
            continue
        try:
            record, cached = _analyse_sample(sample, method, fixed_threshold, maps_dir, stem)
            run.cached_embeddings += int(cached)
        except skip_errors as exc:  # a bad or too-small image is recorded and skipped, the run goes on
            record = {"stem": stem, "image": str(sample.image), "label": int(sample.label), "status": "error",
                      "error": str(exc), "score": None, "seconds": 0.0}
            run.errors += 1
        _atomic_write(done, lambda tmp, r=record: tmp.write_text(json.dumps(r) + "\n"))
        records.append(record)
        run.computed += 1
    if shard is not None:
        return {}, run
    summary = summarise(records)
    summary.update({
        "dataset": config["dataset"], "method": method.method_id, "settings": method.settings(),
        "fixed_threshold": fixed_threshold, "every": every, "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(), "wall_seconds_this_invocation": round(time.perf_counter() - t_start, 2),
        "problems": run.problems,
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

    _atomic_write(out_dir / "per_image.csv", write_csv)
    _atomic_write(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    text = (f"Benchmark `{summary['dataset']}`, method `{summary['method']}`, {summary['date']}, commit "
            f"{summary['commit']}. Metric definitions: `exiflang.eval.metrics`.\n\n"
            + markdown_table([(summary["method"], summary)]))
    _atomic_write(out_dir / "summary.md", lambda tmp: tmp.write_text(text))


__all__ = ["BenchError", "Analysis", "EmbeddingMethod", "NoiseMethod", "build_method", "random_weights_model",
           "run_bench", "summarise", "markdown_table", "pixel_hash", "sample_stem"]
