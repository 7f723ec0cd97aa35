"""predict-exif, check-exif and probe commands end to end, on real shared photos with a tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exiflang.cli import main

CAMERAS = ["Canon_Canon-PowerShot-G2", "PENTAX-Corporation_PENTAX-ist-DL", "SONY_FDMAVICA"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny model saved as a model folder (fast; the maths, not the quality, is tested)."""
    from exiflang.models import create_model, save_model

    return save_model(create_model("tiny", seed=3), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def photo(photos_dir) -> Path:
    return sorted((photos_dir / CAMERAS[0]).glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def small_photo_set(photos_dir, tmp_path_factory) -> Path:
    """Links to 4 photos of each of 3 cameras (photos stay in shared data)."""
    root = tmp_path_factory.mktemp("photos")
    for cam in CAMERAS:
        (root / cam).mkdir()
        for p in sorted((photos_dir / cam).glob("*.jpg"))[:4]:
            (root / cam / p.name).symlink_to(p)
    return root


def _run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_exif_json_ranks_shipped_cameras(capsys, tiny_model_dir, photo):
    from exiflang.models import load_model
    from exiflang.probes.check import load_reference_set
    from exiflang.probes.features import image_patch_embeddings
    from exiflang.probes.ranking import encode_texts, patch_text_scores

    out = _run_json(capsys, ["predict-exif", str(photo), "--model", str(tiny_model_dir), "--json", "--patches", "4"])
    ranking = out["ranking"]
    refs = load_reference_set()
    assert len(ranking) == len(refs) and out["n_patches"] == 4
    assert [r["rank"] for r in ranking] == list(range(1, len(refs) + 1))
    assert all(a["score"] >= b["score"] for a, b in zip(ranking, ranking[1:]))
    assert {"make", "model", "text", "score"} <= set(ranking[0])
    # The printed score is exactly the mean patch-text cosine computed through the API.
    model = load_model(tiny_model_dir)
    emb = image_patch_embeddings(photo, model, 4, "grid")
    direct = patch_text_scores(emb, encode_texts(model, [ranking[0]["text"]]))[0]
    assert ranking[0]["score"] == pytest.approx(direct, abs=1e-5)


def test_predict_exif_tag_values_keep_own_context(capsys, tiny_model_dir, photo):
    out = _run_json(capsys, ["predict-exif", str(photo), "--model", str(tiny_model_dir), "--json", "--patches", "2",
                             "--tag", "ExposureTime", "--values", "1/30", "1/500", "1/30"])
    texts = [r["text"] for r in out["ranking"]]
    assert len(texts) == 2  # duplicate value dropped
    assert all(t.startswith("Make: Canon, Model: Canon PowerShot G2") for t in texts)
    assert {r["source"] for r in out["ranking"]} == {"ExposureTime=1/30", "ExposureTime=1/500"}
    assert main(["predict-exif", str(photo), "--model", str(tiny_model_dir), "--patches", "2", "--top", "1"]) == 0
    assert "1 " in capsys.readouterr().out


def test_check_exif_reports_calibrated_score(capsys, tiny_model_dir, photo):
    out = _run_json(capsys, ["check-exif", str(photo), "--model", str(tiny_model_dir), "--json", "--patches", "4",
                             "--tags", "3"])
    assert 0.0 <= out["percentile"] <= 1.0 and 0.0 <= out["probability"] <= 1.0
    assert out["verdict"] in ("consistent", "uncertain", "inconsistent")
    # The photo's own camera is in the shipped set and must not count as "another camera".
    assert out["n_references"] == 114
    effects = [t["effect"] for t in out["least_agreeing_tags"]]
    assert len(effects) == 3 and effects == sorted(effects)
    assert out["own_text"].startswith("Make: Canon, Model: Canon PowerShot G2")
    assert main(["check-exif", str(photo), "--model", str(tiny_model_dir), "--patches", "2", "--no-explain"]) == 0
    assert "beats" in capsys.readouterr().out


def test_commands_reject_bad_input(capsys, tiny_model_dir, photo, tmp_path):
    assert main(["check-exif", str(tmp_path / "none.jpg"), "--model", str(tiny_model_dir)]) == 2
    assert "none.jpg" in capsys.readouterr().err
    assert main(["predict-exif", str(photo), "--model", str(tiny_model_dir), "--values", "1/30"]) == 2
    assert "--values needs --tag" in capsys.readouterr().err
    (tmp_path / "c.json").write_text("{broken")
    assert main(["predict-exif", str(photo), "--model", str(tiny_model_dir), "--candidates", str(tmp_path / "c.json")]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    assert main(["predict-exif", str(photo), "--model", str(tmp_path / "no-model")]) == 2
    assert "no-model" in capsys.readouterr().err
    nopix = tmp_path / "text.jpg"
    nopix.write_text("not an image")
    assert main(["predict-exif", str(nopix), "--model", str(tiny_model_dir), "--tag", "ISO", "--values", "100"]) == 2
    assert "text.jpg" in capsys.readouterr().err


def test_probe_command_compares_models(capsys, tiny_model_dir, small_photo_set, tmp_path):
    out_json = tmp_path / "probe.json"
    argv = ["probe", "make", "exposure", "distortion", "--model", str(tiny_model_dir), "--photos", str(small_photo_set),
            "--patches", "3", "--distortion-patches", "1", "--bins", "3", "--seeds", "2", "--quiet",
            "--cache", str(tmp_path / "cache"), "--json", str(out_json)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "make (3 classes" in printed and "random" in printed
    res = json.loads(out_json.read_text())
    assert set(res["models"]) == {"model", "random"} and res["models"]["model"] != res["models"]["random"]
    make = res["tasks"]["make"]
    for name in ("model", "random"):
        r = make[name]
        assert r["n_runs"] == 2 and r["n_test_photos"] == 3 and r["n_train_photos"] == 9  # 1 of 4 per camera
        assert 0.0 <= r["photo_accuracy"] <= 1.0 and r["uniform_chance"] == pytest.approx(1 / 3, abs=1e-3)
    assert make["model"]["photo_accuracy"] != make["random"]["photo_accuracy"] or \
        make["model"]["patch_accuracy"] != make["random"]["patch_accuracy"]
    dist = res["tasks"]["distortion"]["model"]
    assert dist["n_classes"] == 3 and dist["n_photos"] == 12 and "lensfun" in dist["coefficient_source"]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4  # photos + distortion, for each model
    # A second run reads the cache and gives identical numbers.
    assert main(argv) == 0
    capsys.readouterr()
    again = json.loads(out_json.read_text())
    assert again["tasks"]["make"] == res["tasks"]["make"]
    assert np.isclose(again["tasks"]["distortion"]["model"]["photo_accuracy"], dist["photo_accuracy"])
