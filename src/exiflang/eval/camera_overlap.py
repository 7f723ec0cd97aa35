"""Camera overlap: how many of a dataset's cameras the method's model trained on.

When the dataset's manifest names the cameras of its images (``target_camera``/``source_camera`` keys, or
``target_make``/``target_model``/``source_make``/``source_model``) and the model's config.json records the cameras
it trained on (``train.cameras.train_cameras``), a benchmark reports how many of the dataset's cameras the model has
seen (``summary.json["camera_overlap"]``): numbers on seen cameras measure memory, not generalisation.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .datasets import Dataset, Sample


STATUS_DISJOINT = "camera-disjoint"
STATUS_OVERLAP = "overlap"
STATUS_NO_MODEL_CAMERAS = "unknown (model config lists no training cameras)"
STATUS_NO_DATASET_CAMERAS = "unknown (dataset lists no cameras)"
STATUS_TRAINING_FREE = "not applicable (training-free method)"
STATUS_RANDOM_WEIGHTS = "not applicable (random weights, never trained)"
SEEN_LIST_MAX = 20


def _manifest_path(root: Path) -> Path | None:
    """The dataset folder's manifest.csv / MANIFEST.csv, if any."""
    for name in ("manifest.csv", "MANIFEST.csv"):
        if (Path(root) / name).is_file():
            return Path(root) / name
    return None


def dataset_cameras(dataset: Dataset, samples: list[Sample] | None = None) -> list[str] | None:
    """Sorted camera keys of a dataset's images (targets and sources), from its manifest; None if it names none.

    Reads ``target_camera``/``source_camera`` (camera keys) or else ``target_make``/``target_model``/
    ``source_make``/``source_model`` (normalised with `exiflang.data.cameras.camera_key`). With ``samples``,
    only the manifest rows of those images count (a --limit/--every subset), when the rows can be matched.
    """
    from ..data.cameras import camera_key

    path = _manifest_path(dataset.root)
    if path is None:
        return None
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    roles = []
    for role in ("target", "source"):
        if f"{role}_camera" in fields:
            roles.append((role, "key"))
        elif {f"{role}_make", f"{role}_model"} <= fields:
            roles.append((role, "make_model"))
    if not roles:
        return None
    if samples is not None and "image" in fields:
        wanted = {Path(s.image).resolve() for s in samples}
        subset = [r for r in rows if (Path(dataset.root) / (r.get("image") or "")).resolve() in wanted]
        rows = subset or rows
    keys: set[str] = set()
    for row in rows:
        for role, how in roles:
            if how == "key":
                raw = (row.get(f"{role}_camera") or "").strip()
                if raw:
                    make, _, model = raw.partition("|")
                    keys.add(camera_key(make, model))
            else:
                make, model = (row.get(f"{role}_make") or "").strip(), (row.get(f"{role}_model") or "").strip()
                if make or model:
                    keys.add(camera_key(make, model))
    return sorted(keys) or None


def _model_train_cameras(method: Any) -> tuple[list[str] | None, dict]:
    """The camera keys a method's model trained on (None when its config does not list them), and train.cameras."""
    from ..data.cameras import camera_key

    config = getattr(method, "model_config", None) or getattr(getattr(method, "model", None), "config", None) or {}
    config = config.to_dict() if hasattr(config, "to_dict") else config
    cams = (config.get("train") or {}).get("cameras") if isinstance(config, dict) else None
    if not isinstance(cams, dict) or not isinstance(cams.get("train_cameras"), list):
        return None, {}
    keys = []
    for k in cams["train_cameras"]:
        make, _, model = str(k).partition("|")
        keys.append(camera_key(make, model))
    return sorted(set(keys)), cams


def camera_overlap(method: Any, cameras: list[str] | None) -> dict:
    """Which of a dataset's cameras the method's model trained on.

    Returns ``{"dataset_cameras": n, "seen_by_model": n_seen, "seen_list": [first 20 seen keys],
    "status": ...}``; status is "camera-disjoint", "overlap", "unknown (model config lists no training
    cameras)", "unknown (dataset lists no cameras)", "not applicable (training-free method)" or "not applicable
    (random weights, never trained)". ``seen_by_model`` is None when it cannot be known. When the model records
    its split, ``split`` (its name) and ``train_cameras_hash`` are added.
    """
    n = len(cameras or [])
    out: dict[str, Any] = {"dataset_cameras": n, "seen_by_model": None, "seen_list": []}
    uses_model = getattr(method, "uses_trained_model", None)
    if uses_model is None:  # a method that does not say: it uses a trained model if it carries one
        uses_model = getattr(method, "model_config", None) is not None or getattr(method, "model", None) is not None
    if not uses_model:
        is_random = getattr(method, "trained", True) is False
        out["status"] = STATUS_RANDOM_WEIGHTS if is_random else STATUS_TRAINING_FREE
        return out
    train, cams = _model_train_cameras(method)
    if cams:
        out["split"] = cams.get("split")
        out["train_cameras_hash"] = cams.get("train_cameras_hash")
    if not cameras:
        out["status"] = STATUS_NO_DATASET_CAMERAS
        return out
    if train is None:
        out["status"] = STATUS_NO_MODEL_CAMERAS
        return out
    seen = sorted(set(cameras) & set(train))
    out.update(seen_by_model=len(seen), seen_list=seen[:SEEN_LIST_MAX],
               status=STATUS_OVERLAP if seen else STATUS_DISJOINT)
    return out


def camera_overlap_line(overlap: dict) -> str:
    """One line describing a camera_overlap entry (printed by the CLI and written to summary.md)."""
    status, n = overlap["status"], overlap["dataset_cameras"]
    if status == STATUS_OVERLAP:
        shown = ", ".join(overlap["seen_list"]) + (", ..." if overlap["seen_by_model"] > len(overlap["seen_list"]) else "")
        return (f"camera overlap: {status}: {overlap['seen_by_model']} of {n} dataset cameras were in the model's "
                f"training set ({shown})")
    if status == STATUS_DISJOINT:
        return f"camera overlap: {status}: none of the {n} dataset cameras was in the model's training set"
    return f"camera overlap: {status}" + (f" ({n} dataset cameras)" if n else "")


def camera_overlap_warning(overlap: dict) -> str | None:
    """The loud multi-line warning for an overlapping run, or None."""
    if overlap.get("status") != STATUS_OVERLAP:
        return None
    bar = "!" * 78
    n_seen, n = overlap["seen_by_model"], overlap["dataset_cameras"]
    shown = ", ".join(overlap["seen_list"]) + (", ..." if n_seen > len(overlap["seen_list"]) else "")
    split = overlap.get("split") or "its split"
    return (f"{bar}\nWARNING: {n_seen} of {n} cameras in this dataset were in the model's training set: these "
            f"numbers measure memory, not generalisation.\nSeen cameras: {shown}\nFor a camera-disjoint test, use "
            f"composites of cameras the model never saw (exiflang make-splices --cameras heldout, for a model trained "
            f"on the training cameras of {split}).\n{bar}")
