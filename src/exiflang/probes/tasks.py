"""Probe tasks end to end: photo sets, the models to compare, cached features, one result table per task.

Every task is run for each model being compared (the model under test, a random-weights model of the
same architecture, and optionally an image-only contrastive baseline), so its number always appears
beside chance and beside the baselines.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..imageio import IMAGE_SUFFIXES, file_sha256
from exiflang.probes.features import PatchFeatures, extract_features_multi

from ..errors import ExiflangError

EXIF_TASKS = ("make", "model", "exposure", "iso", "fnumber", "focal")
ALL_TASKS = EXIF_TASKS + ("distortion", "casia")


class TaskError(ExiflangError):
    """A probe task cannot run with these inputs; the message names the input and the cause."""


@dataclass
class ProbePhoto:
    """A photo with its tags (EXIF read or taken from an index record)."""

    path: str
    tags: dict
    make: str
    model: str
    sha256: str = ""  # content hash, when known (index records carry it)
    text: str = ""  # the index's EXIF text, when known (lets the held-out split be verified)


# ---------------------------------------------------------------- photo sets
def photos_from_index(index_dir: str | Path) -> list[ProbePhoto]:
    """Photos of an `exiflang index` folder."""
    from exiflang.data.index import load_records

    index_dir = Path(index_dir)
    if not (index_dir / "records.jsonl").is_file():
        raise TaskError(f"{index_dir}: not an exiflang index (records.jsonl missing)")
    return [ProbePhoto(r["path"], dict(r.get("tags") or {}), str(r.get("make") or ""), str(r.get("model") or ""),
                  str(r.get("sha256") or ""), str(r.get("text") or "")) for r in load_records(index_dir)]


def photos_from_folder(folder: str | Path, progress: bool = True) -> list[ProbePhoto]:
    """Every image under `folder` (recursively) with its EXIF; files without Make/Model are skipped."""
    from tqdm import tqdm

    from exiflang.exif import ExifReader

    folder = Path(folder)
    if not folder.is_dir():
        raise TaskError(f"{folder}: no such folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    out = []
    with ExifReader() as reader:
        for path, tags in tqdm(reader.read_many(paths), total=len(paths), desc="reading EXIF",
                               disable=not progress, unit="photo"):
            if isinstance(tags, Exception) or not tags.get("Make") or not tags.get("Model"):
                continue
            out.append(ProbePhoto(path, tags, str(tags["Make"]).strip(), str(tags["Model"]).strip()))
    if not out:
        raise TaskError(f"{folder}: no image with EXIF Make and Model")
    return out


# ---------------------------------------------------------------- models
def _digest(model) -> str:
    """Short hash of a model's weights (names, shapes, bytes)."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def load_comparison_models(model: str = "default", baseline_model: str | None = None,
                           random_baseline: bool = True, seed: int = 0, device: str = "cpu") -> dict:
    """{name: ExifModel} for the model under test, its random-weights twin and the image-only baseline."""
    from exiflang.models import create_model, load_model

    models = {"model": load_model(model, device=device)}
    if random_baseline:
        # Same architecture and config, fixed random init (seeded, so the baseline is reproducible).
        rnd = create_model(models["model"].config, seed=seed)
        # The id names the exact weights, so feature caches can never mix two different random inits.
        rnd.model_id = f"random-{rnd.config.name}-seed{seed}-{_digest(rnd)}"
        models["random"] = rnd.to(device).eval()
    if baseline_model:
        models["image-only"] = load_model(baseline_model, device=device)
    return models


def _train_record(model) -> dict:
    """What the trainer recorded in the model's config (`train`), or {} for a model that was not trained here."""
    config = getattr(model, "config", None)
    return (getattr(config, "extra", None) or {}).get("train") or {}


def held_out_fraction(model) -> float | None:
    """The held-out photo fraction of the model's training run (config `train.recipe.val_fraction`), if any."""
    recipe = _train_record(model).get("recipe") or {}
    value = recipe.get("val_fraction")
    return float(value) if value else None


def held_out_mask(model, photos: Sequence[ProbePhoto]) -> tuple[list[bool] | None, str]:
    """Which photos the model's training run held out, re-derived with the trainer's own split rule.

    `exiflang train` holds out a photo when its content hash falls below `val_fraction`
    (`exiflang.data.patches.split_by_photo`); the same rule applied to the same files gives the same set,
    whatever folder or index they are read from. Returns (mask or None, a note saying what was done).
    """
    from types import SimpleNamespace

    from exiflang.data.patches import data_hash
    from exiflang.data.patches import split_by_photo as trainer_split

    fraction = held_out_fraction(model)
    if not fraction:
        return None, "no held-out split recorded in the model config"
    shas = [p.sha256 or file_sha256(p.path) for p in photos]
    items = [SimpleNamespace(sha256=sha, path=p.path, text=p.text, index=i) for i, (sha, p) in enumerate(zip(shas, photos))]
    _, val = trainer_split(items, fraction)
    held = {v.index for v in val}
    mask = [i in held for i in range(len(photos))]
    note = f"{sum(mask)} photos held out by the model's training run (val_fraction {fraction:g}, content-hash rule)"
    recorded = _train_record(model).get("val_data_hash")
    if recorded and all(v.text for v in val):
        same = data_hash(val) == recorded
        note += "; matches the run's recorded held-out set" if same else \
            "; its hash differs from the run's recorded held-out hash (photos or their EXIF texts differ from the run's index)"
    return (mask if any(mask) else None), note


# ---------------------------------------------------------------- cached features
def _cache_key(model, kind: str, sources: Sequence[str], **params) -> str:
    """A short hash naming the model, the feature kind, its parameters and the inputs."""
    blob = json.dumps({"model": getattr(model, "model_id", "?"), "kind": kind, "params": params,
                       "sources": list(sources)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_features(cache_dir: str | Path | None, models: dict, kind: str, sources: Sequence[str], compute,
                    **params) -> dict[str, PatchFeatures]:
    """{name: features}: read from `cache_dir` where present; `compute(missing_models)` does the rest (saved)."""
    paths = {name: (Path(cache_dir) / f"{kind}-{_cache_key(m, kind, sources, **params)}.npz" if cache_dir else None)
             for name, m in models.items()}
    out = {name: PatchFeatures.load(p) for name, p in paths.items() if p is not None and p.is_file()}
    missing = {name: m for name, m in models.items() if name not in out}
    if missing:
        fresh = compute(missing)
        for name, feats in fresh.items():
            if paths[name] is not None:
                paths[name].parent.mkdir(parents=True, exist_ok=True)
                feats.save(paths[name])
        out.update(fresh)
    return {name: out[name] for name in models}


def photo_features(photos: Sequence[ProbePhoto], models: dict, k: int = 16, mode: str = "random", cache_dir=None,
                   batch_size: int = 64, device: str = "cpu", progress: bool = True) -> dict[str, PatchFeatures]:
    """Patch features of every photo for every model (decoded once; cached per model)."""
    paths = [p.path for p in photos]
    return cached_features(
        cache_dir, models, "photos", paths,
        lambda ms: extract_features_multi(paths, ms, k, mode, 0, None, batch_size, device, progress,
                                          f"photo features ({', '.join(ms)})"),
        k=k, mode=mode)


# ---------------------------------------------------------------- tasks
def exif_probe(task: str, photos: Sequence[ProbePhoto], feats: PatchFeatures, seeds: Sequence[int] = (0, 1, 2),
               test_fraction: float = 0.3, held_out: Sequence[bool] | None = None) -> dict:
    """Linear probe of one EXIF property (make, model, exposure, ...) on frozen patch features."""
    from exiflang.probes.linear import LABEL_SPECS, photo_labels, repeated_probe

    if task not in LABEL_SPECS:
        raise TaskError(f"unknown EXIF probe {task!r}; choose one of {sorted(LABEL_SPECS)}")
    tag_dicts = [dict(p.tags, Make=p.make, Model=p.model) for p in photos]
    labels, binning = photo_labels(tag_dicts, LABEL_SPECS[task])
    read_ok = set(np.unique(feats.photo_index).tolist())
    labels = [lab if i in read_ok else None for i, lab in enumerate(labels)]
    out = repeated_probe(task, feats.features, feats.photo_index, labels, seeds, test_fraction, held_out)
    out["binning"] = binning
    out["split"] = ("the model's held-out photos as test (those whose class has a training photo)" if held_out
                    else f"random by photo, {test_fraction:.0%} test per class")
    return out


@dataclass
class DistortionSet:
    """Every photo distorted once per k1 bin: version v is photo v // n_bins in bin v % n_bins."""

    paths: list[str]
    versions: list[str]
    coeffs: list[tuple[float, float]]
    labels: list[str]
    n_bins: int
    source: str
    bin_labels: list[str]


def distortion_set(photos: Sequence[ProbePhoto], n_bins: int = 5, max_photos: int | None = None) -> DistortionSet:
    """Realistic (lensfun) coefficients for every (photo, bin) pair, seeded so they never change."""
    from exiflang.probes.distortion import distortion_bins

    bins = distortion_bins(n_bins)
    paths = [p.path for p in photos][:max_photos] if max_photos else [p.path for p in photos]
    versions = [path for path in paths for _ in range(n_bins)]
    coeffs = [bins.sample(v % n_bins, np.random.default_rng([12345, v])) for v in range(len(versions))]
    return DistortionSet(paths, versions, coeffs, [bins.label(v % n_bins) for v in range(len(versions))], n_bins,
                         bins.source, [bins.label(i) for i in range(n_bins)])


def distortion_features(dset: DistortionSet, models: dict, k: int = 8, mode: str = "random", cache_dir=None,
                        batch_size: int = 64, device: str = "cpu", progress: bool = True) -> dict[str, PatchFeatures]:
    """Patch features of every distorted version for every model (each warp computed once)."""
    from exiflang.probes.distortion import distort

    def transform(image: np.ndarray, v: int) -> np.ndarray:
        return distort(image, *dset.coeffs[v])

    return cached_features(
        cache_dir, models, "distortion", dset.versions,
        lambda ms: extract_features_multi(dset.versions, ms, k, mode, 1, transform, batch_size, device, progress,
                                          f"distorted versions ({', '.join(ms)})"),
        k=k, mode=mode, n_bins=dset.n_bins, coeffs=[list(map(float, c)) for c in dset.coeffs])


def distortion_probe(dset: DistortionSet, feats: PatchFeatures, seeds: Sequence[int] = (0, 1, 2),
                     test_fraction: float = 0.3) -> dict:
    """Probe the k1 bin; all versions of a photo are on the same side of the split."""
    from exiflang.probes.linear import binomial_se, run_probe, split_warning

    n_bins, n_photos = dset.n_bins, len(dset.paths)
    runs = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(n_photos)
        n_test = max(1, int(round(n_photos * test_fraction)))
        test_photos = set(order[:n_test].tolist())
        versions = np.arange(len(dset.versions))
        is_test = np.array([v // n_bins in test_photos for v in versions])
        runs.append(run_probe("distortion", feats.features, feats.photo_index, dset.labels,
                              versions[~is_test], versions[is_test]))
    out = {"task": "distortion", "n_runs": len(runs), "runs": [r.to_dict() for r in runs],
           "bins": dset.bin_labels, "coefficient_source": dset.source, "n_photos": n_photos,
           "n_classes": n_bins, "n_test_photos": max(1, int(round(n_photos * test_fraction))),
           "split": f"random by source photo (all its distorted versions), {test_fraction:.0%} test"}
    for key in ("patch_accuracy", "photo_accuracy", "majority_chance", "uniform_chance"):
        vals = np.array([r.to_dict()[key] for r in runs])
        out[key], out[key + "_std"] = round(float(vals.mean()), 4), round(float(vals.std()), 4)
    out["photo_accuracy_se"] = binomial_se(out["photo_accuracy"], runs[0].n_test_photos)
    out["warning"] = split_warning(runs[0].n_test_photos, n_bins, out["majority_chance"])
    return out


def casia_task(root: str | Path, model, protocols: Sequence[str] = ("resized", "center-cropped"),
               folds: int = 5, batch_size: int = 64, device: str = "cpu", progress: bool = True) -> dict:
    """Real-vs-manipulated probe under each protocol (k-fold by image)."""
    from exiflang.probes.casia import casia_embeddings, casia_probe, read_manifest

    items = read_manifest(root)
    out = {"task": "casia", "protocols": {}}
    for protocol in protocols:
        x, y, skipped = casia_embeddings(items, model, protocol, batch_size, device, progress)
        res = casia_probe(x, y, protocol, folds=folds).to_dict()
        res["skipped"] = len(skipped)
        out["protocols"][protocol] = res
    return out


__all__ = [
    "EXIF_TASKS", "ALL_TASKS", "TaskError", "ProbePhoto", "photos_from_index", "photos_from_folder",
    "load_comparison_models", "file_sha256", "held_out_fraction", "held_out_mask", "cached_features",
    "photo_features", "exif_probe", "DistortionSet", "distortion_set", "distortion_features", "distortion_probe",
    "casia_task",
]
