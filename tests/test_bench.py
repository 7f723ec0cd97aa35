"""Benchmark harness: a small real run, the embedding cache, and resuming after a kill."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from exiflang.eval import metrics as M
from exiflang.eval.bench import BenchError, NoiseMethod, build_method, run_bench
from exiflang.eval.datasets import Dataset, load_dataset, load_mask
from exiflang.forensics import read_heatmap

KEYS = ["pmap", "pmap_strict", "ciou", "ciou_strict", "f1_best", "mcc_best", "pixel_auc", "det_ap", "det_auc", "counts"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from exiflang.models import create_model, save_model

    out = tmp_path_factory.mktemp("tiny")
    save_model(create_model("tiny", seed=0), out)
    return out


def _subset(casia_dir, n_each: int) -> Dataset:
    """The first n_each tampered and n_each authentic CASIA images."""
    ds = load_dataset(f"manifest:{casia_dir}")
    tampered = [s for s in ds.samples if s.label == 1][:n_each]
    authentic = [s for s in ds.samples if s.label == 0][:n_each]
    return Dataset(ds.kind, ds.root, tampered + authentic)


def test_small_run_writes_consistent_outputs(casia_dir, tiny_model_dir, tmp_path):
    ds = _subset(casia_dir, 2)
    method = build_method("exiflang", str(tiny_model_dir), tmp_path / "cache", per_side=10)
    summary, run = run_bench(ds, method, tmp_path / "out", progress=False)
    assert run.computed == 4 and run.errors == 0
    assert all(k in summary for k in KEYS)
    assert summary["counts"]["manipulated"] == 2 and summary["counts"]["authentic"] == 2
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["pmap"] == pytest.approx(summary["pmap"])
    assert "| " + method.method_id in (tmp_path / "out" / "summary.md").read_text()
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert len(rows) == 4
    # The maps on disk are the detect --out files, and re-scoring them gives the summary's p-mAP.
    maps, masks = [], []
    for s, row in zip(ds.samples, rows):
        assert (tmp_path / "out" / "maps" / f"{row['stem']}.json").is_file()
        heat = read_heatmap(tmp_path / "out" / "maps" / f"{row['stem']}.heatmap.npy")
        mask = load_mask(s, heat.shape)
        if s.label:
            maps.append(heat)
            masks.append(mask)
    assert M.pmap(maps, masks) == pytest.approx(summary["pmap"], abs=1e-9)
    assert M.pmap(maps, masks, polarity_free=False) == pytest.approx(summary["pmap_strict"], abs=1e-9)

    # Other post-processing into another folder: every embedding comes from the cache.
    method2 = build_method("exiflang", str(tiny_model_dir), tmp_path / "cache", per_side=10, iters=2)
    _, run2 = run_bench(ds, method2, tmp_path / "out2", progress=False)
    assert run2.cached_embeddings == 4
    # Re-running with other settings into the first folder is refused rather than mixing results.
    with pytest.raises(BenchError, match="other settings"):
        run_bench(ds, method2, tmp_path / "out", progress=False)


def test_noise_baseline_and_random_weights_run_in_the_same_harness(casia_dir, tmp_path):
    ds = _subset(casia_dir, 2)
    summary, _ = run_bench(ds, NoiseMethod(), tmp_path / "noise", progress=False)
    assert 0.0 <= summary["pmap"] <= 1.0 and summary["counts"]["scored"] == 4
    assert (tmp_path / "noise" / "maps").is_dir()
    a = build_method("random", "tiny", None, per_side=10, seed=0)
    b = build_method("random", "tiny", None, per_side=10, seed=0)
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    assert a.method_id == "random-tiny-seed0"
    assert np.array_equal(a.analyse(image).heatmap, b.analyse(image).heatmap)  # fixed seed -> same weights


def test_killed_benchmark_resumes(casia_dir, tiny_model_dir, tmp_path):
    out, cache = tmp_path / "killed", tmp_path / "cache"
    cmd = [sys.executable, "-m", "exiflang.cli", "bench", "--dataset", f"manifest:{casia_dir}", "--limit", "6",
           "--model", str(tiny_model_dir), "--out", str(out), "--cache-dir", str(cache), "--no-maps"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "per_image").glob("*.json")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "per_image").glob("*.json")}
    assert proc.returncode == -signal.SIGKILL and 1 <= len(done_before) < 6

    ds = load_dataset(f"manifest:{casia_dir}")
    method = build_method("exiflang", str(tiny_model_dir), cache)
    summary, run = run_bench(ds, method, out, dataset_spec=f"manifest:{casia_dir}", limit=6, write_maps=False,
                             progress=False)
    assert run.resumed == len(done_before) and run.computed == 6 - len(done_before)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "per_image").glob("*.json") if p.name in done_before} == done_before
    # Same numbers as a run that was never interrupted.
    fresh, _ = run_bench(ds, method, tmp_path / "fresh", limit=6, write_maps=False, progress=False)
    for key in ("pmap", "pmap_strict", "ciou", "f1_best", "mcc_best", "pixel_auc"):
        assert summary[key] == pytest.approx(fresh[key], abs=1e-9)


def test_loaders_report_what_is_missing(tmp_path):
    from PIL import Image

    from exiflang.eval.datasets import DatasetError

    # A Columbia-layout folder with 1 authentic and 2 spliced images, one of them without its edge mask.
    for d in ("4cam_auth", "4cam_splc/edgemask"):
        (tmp_path / "col" / d).mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "col/4cam_auth/a.tif")
    for name in ("b", "c"):
        Image.new("RGB", (40, 30)).save(tmp_path / f"col/4cam_splc/{name}.tif")
    edge = np.zeros((30, 40, 3), np.uint8)
    edge[:, :10] = (255, 0, 0)  # red: the other camera's region
    edge[5:15, 20:30] = (0, 200, 0)  # green: the spliced region
    Image.fromarray(edge).save(tmp_path / "col/4cam_splc/edgemask/b_edgemask.jpg", quality=90)
    ds = load_dataset(f"columbia:{tmp_path / 'col'}")
    assert (ds.n_authentic, ds.n_manipulated) == (1, 1)
    text = " ".join(ds.problems)
    assert "found 1, the published dataset has 183" in text and "without a mask" in text and "c.tif" in text
    mask = load_mask(ds.samples[1], (30, 40))
    assert mask.sum() == 100 and mask[5:15, 20:30].all()
    with pytest.raises(DatasetError, match="incomplete"):
        load_dataset(f"columbia:{tmp_path / 'col'}", strict=True)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"dso1:{tmp_path / 'nope'}")
    # generic: bad labels and missing columns are named with the file and line.
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen/manifest.csv").write_text("image,mask,label\nx.png,,2\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "gen/x.png")
    with pytest.raises(DatasetError, match=r"manifest.csv:2: label 2"):
        load_dataset(f"generic:{tmp_path / 'gen'}")
    (tmp_path / "gen/manifest.csv").write_text("image,label\nx.png,0\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_dataset(f"generic:{tmp_path / 'gen'}")


# ------------------------------------------------------------------------------------- camera overlap
@pytest.fixture(scope="module")
def camera_set(photos_dir, tmp_path_factory):
    """A small generic dataset of held-out-camera composites (2 spliced + 1 authentic) and its camera keys."""
    from exiflang.eval.splices import make_splices

    out = tmp_path_factory.mktemp("camset")
    make_splices(photos_dir, out, n=2, seed=2, n_authentic=1, cameras="heldout", progress=False)
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    keys = sorted({r["target_camera"] for r in rows} | {r["source_camera"] for r in rows if r["source_camera"]})
    return out, keys


def _train_cameras(train: list[str]) -> dict:
    """The train.cameras block the trainer writes into config.json."""
    from exiflang.data.cameras import SPLIT_NAME, cameras_hash

    return {"cameras": {"split": SPLIT_NAME, "train_cameras": sorted(train), "heldout_cameras": [],
                        "train_cameras_hash": cameras_hash(train), "heldout_cameras_hash": cameras_hash([])}}


def test_summary_reports_camera_overlap(camera_set, tiny_model_dir, tmp_path):
    from exiflang.eval.bench import EmbeddingMethod, camera_overlap, dataset_cameras
    from exiflang.forensics import Detector

    folder, keys = camera_set
    ds = load_dataset(f"generic:{folder}")
    assert dataset_cameras(ds) == keys and len(keys) >= 2
    method = build_method("exiflang", str(tiny_model_dir), None, per_side=4)  # a saved create_model("tiny")
    model = method.model
    model.config.extra["train"] = _train_cameras([keys[0], "acme|never used"])
    summary, _ = run_bench(ds, method, tmp_path / "seen", write_maps=False, progress=False)
    overlap = json.loads((tmp_path / "seen" / "summary.json").read_text())["camera_overlap"]
    assert overlap == summary["camera_overlap"]
    assert (overlap["status"], overlap["dataset_cameras"], overlap["seen_by_model"], overlap["seen_list"]) == \
        ("overlap", len(keys), 1, [keys[0]])
    assert "memory, not generalisation" in (tmp_path / "seen" / "summary.md").read_text()

    model.config.extra["train"] = _train_cameras(["acme|never used", "nikon|nikon d70s"])
    summary, _ = run_bench(ds, method, tmp_path / "unseen", write_maps=False, progress=False)
    assert summary["camera_overlap"]["status"] == "camera-disjoint" and summary["camera_overlap"]["seen_by_model"] == 0
    assert "Camera overlap: camera-disjoint" in (tmp_path / "unseen" / "summary.md").read_text()

    # Older models (no train.cameras), training-free and random-weight methods, datasets without cameras.
    assert camera_overlap(method, None)["status"] == "unknown (dataset lists no cameras)"
    del model.config.extra["train"]
    assert camera_overlap(method, keys)["status"] == "unknown (model config lists no training cameras)"
    assert camera_overlap(NoiseMethod(), keys)["status"] == "not applicable (training-free method)"
    random_weights = EmbeddingMethod(Detector(model, model_id="random-tiny-seed0"), None, trained=False)
    assert camera_overlap(random_weights, keys)["status"] == "not applicable (random weights, never trained)"
    # Manifests with make/model columns only are read through camera_key.
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "manifest.csv").write_text(
        "image,mask,label,target_make,target_model,source_make,source_model\n"
        "a.png,,0,NIKON CORPORATION,NIKON D70s,,\n")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "mm" / "a.png")
    assert dataset_cameras(load_dataset(f"generic:{tmp_path / 'mm'}")) == ["nikon|nikon d70s"]
    (tmp_path / "mm" / "manifest.csv").write_text("image,mask,label\na.png,,0\n")
    assert dataset_cameras(load_dataset(f"generic:{tmp_path / 'mm'}")) is None


def test_cli_warns_loudly_on_camera_overlap(camera_set, tiny_model_dir, tmp_path, capsys):
    import shutil

    from exiflang.cli import main

    folder, keys = camera_set
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["train"] = _train_cameras(keys)
    (model_dir / "config.json").write_text(json.dumps(config))
    args = ["bench", "--dataset", f"generic:{folder}", "--model", str(model_dir), "--no-cache", "--no-maps",
            "--per-side", "4"]
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert f"{len(keys)} of {len(keys)} cameras in this dataset were in the model's training set" in captured.err
    assert "memory, not generalisation" in captured.err and "WARNING" in captured.err
    assert "Camera overlap: overlap" in captured.out
    with pytest.raises(SystemExit) as exc:
        main(args + ["--out", str(tmp_path / "c"), "--method", "fusionx"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
