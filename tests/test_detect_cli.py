"""`exiflang detect` and `exiflang demo` from the command line: outputs, summary, bad files skipped."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from exiflang.cli import main
from exiflang.forensics import read_heatmap
from exiflang.forensics.synthetic import make_composite
from test_forensics_support import NoiseStatsModel


@pytest.fixture()
def fake_model(monkeypatch):
    """Make every model name resolve to the hand-made noise-statistics encoder."""
    import exiflang.forensics.api as det

    model = NoiseStatsModel()
    monkeypatch.setattr(det, "_load_named_model", lambda name, device: model)
    return model


def test_detect_folder_with_a_bad_file(tmp_path, fake_model, capsys):
    photos = tmp_path / "in"
    (photos / "sub").mkdir(parents=True)
    image, _ = make_composite(160, 192, seed=3)
    Image.fromarray(image).save(photos / "a.png")
    Image.fromarray(image).save(photos / "sub" / "a.jpg", quality=90)  # same stem: must not overwrite
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    Image.new("RGB", (16, 16)).save(photos / "tiny.png")
    out = tmp_path / "out"
    status = main(["detect", str(photos), "--out", str(out), "--method", "exiflang"])  # the learned report: PCA, grid
    captured = capsys.readouterr()
    assert status == 1  # some inputs failed
    assert "broken.jpg" in captured.err and "tiny.png" in captured.err
    assert "FAILED" in captured.out and captured.out.count(" ok") == 2
    for stem in ("a", "a-2"):
        meta = json.loads((out / f"{stem}.json").read_text())
        assert meta["model_id"] == "test-noise-stats" and meta["grid"]["patch"] == 32
        assert {"score", "seconds", "image_size"} <= set(meta)
        heat = read_heatmap(out / f"{stem}.heatmap.npy")
        assert heat.shape == (160, 192) and heat.dtype == np.float32
        for kind in ("overlay", "mask", "pca"):
            assert (out / f"{stem}.{kind}.png").is_file()
    assert not (out / "broken.json").exists()


def test_detect_without_out_prints_only(tmp_path, fake_model, capsys):
    path = tmp_path / "one.png"
    Image.fromarray(make_composite(128, 160, seed=4)[0]).save(path)
    assert main(["detect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "one.png" in out and " ok" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]


def test_detect_errors(tmp_path, fake_model, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["detect", str(empty)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "missing.jpg")]) == 1
    assert "no such file" in capsys.readouterr().err
    monkeypatch.undo()  # real model loading: a folder that holds no weights
    assert main(["detect", str(tmp_path / "missing.jpg"), "--model", str(empty)]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_demo_reports_against_its_known_mask(tmp_path, fake_model, capsys):
    assert main(["demo", "--out", str(tmp_path), "--size", "320x256", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    p_ap = float(out.split("p-AP")[1].split()[0])
    chance = float(out.split("chance = ")[1].split(")")[0])
    assert p_ap > 2 * chance  # the noise-statistics encoder finds the differently processed region
    for name in ("demo_composite.png", "demo_truth_mask.png", "demo_composite.overlay.png", "demo_composite.json",
                 "index.html", "batch-summary.csv"):
        assert (tmp_path / name).is_file()
    page = (tmp_path / "index.html").read_text()  # the demo's page (issue 22): its image and its metadata checks
    assert "demo_composite.overlay.png" in page and "no EXIF metadata at all" in page
    assert f"HTML report     {tmp_path / 'index.html'}" in out
    # the same default method and verdict as `exiflang detect` (issue 21 item 5): the verdict its JSON holds
    import json

    saved = json.loads((tmp_path / "demo_composite.json").read_text())
    assert saved["method"] == "fusion" and f"verdict         {saved['verdict'] or '–'}" in out
    assert "probability of manipulation" in out


def test_builtin_default_model_runs(tmp_path):
    """The shipped weights load and run on a small composite (quality is measured in docs/results)."""
    from exiflang.paths import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "default" / "model.safetensors").is_file():
        pytest.skip("built-in weights not present")
    from exiflang.forensics import detect

    res = detect(make_composite(256, 320, seed=2)[0], "default", per_side=5)  # few patches: a smoke test
    assert res.heatmap.shape == (256, 320) and res.model_id


def test_image_only_loader_matches_the_full_model():
    """Detection loads only the image tower; its embeddings must equal the full model's."""
    import torch

    from exiflang.paths import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "default" / "model.safetensors").is_file():
        pytest.skip("built-in weights not present")
    from exiflang.models import load_model

    fast, full = load_model("default", image_only=True), load_model("default")
    assert fast.text is None and fast.model_id == full.model_id and fast.patch_size == full.patch_size
    x = torch.rand(3, 3, fast.patch_size, fast.patch_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.allclose(fast.encode_image(x), full.encode_image(x), atol=1e-6)


def test_the_python_api_gives_the_command_lines_verdict(photos_dir, tmp_path):
    """`exiflang.analyse` runs detect's default (the fusion for the file's condition): same score and verdict."""
    import exiflang

    photo = sorted(photos_dir.rglob("*.jpg"))[0]
    assert main(["detect", str(photo), "--per-side", "6", "--out", str(tmp_path), "--no-exif-check"]) == 0
    cli = json.loads(next(tmp_path.glob("*.json")).read_text())
    api = exiflang.analyse(photo, per_side=6)
    assert api.verdict == cli["verdict"] and api.verdict in ("likely authentic", "inconclusive", "likely manipulated")
    assert abs(api.score - cli["score"]) < 1e-6 and abs(api.probability - cli["probability"]) < 1e-6
    assert api.shape == Image.open(photo).size[::-1] and cli["condition"]["band"] == "jpeg_high"
