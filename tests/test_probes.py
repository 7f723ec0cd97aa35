"""Probes: patch sampling, ranking/calibration maths, label binning, photo-disjoint splits, distortion, CASIA."""
from __future__ import annotations

import numpy as np
import pytest

from exiflang.probes import check, distortion, features, linear, ranking


# ---------------------------------------------------------------- features
def test_patch_positions_random_and_grid_stay_inside():
    rng = np.random.default_rng(0)
    pos = features.patch_positions(300, 500, 64, 10, "random", rng)
    assert pos.shape == (10, 2)
    assert (pos[:, 0] <= 300 - 64).all() and (pos[:, 1] <= 500 - 64).all() and (pos >= 0).all()
    grid = features.patch_positions(300, 500, 64, 12, "grid")
    # A grid of about 12 on a landscape image: more columns than rows, corners included.
    assert abs(len(grid) - 12) <= 3
    assert grid[:, 1].max() == 500 - 64 and grid[:, 0].max() == 300 - 64 and grid.min() == 0
    with pytest.raises(features.FeatureError):
        features.patch_positions(30, 500, 64, 4)
    with pytest.raises(features.FeatureError):
        features.patch_positions(300, 500, 64, 4, "spiral")


def test_pad_and_crop_keep_native_pixels():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    padded = features.pad_to_patch(img, 32)
    assert padded.shape == (32, 32, 3)
    assert np.array_equal(padded[:20, :30], img)  # original pixels untouched, padding only bottom/right
    crops = features.crop_patches(padded, np.array([[0, 0]]), 32)
    assert crops.shape == (1, 3, 32, 32) and crops.dtype == np.float32
    assert np.isclose(crops[0, 0, 0, 1], img[0, 1, 0] / 255.0)


def test_patch_features_roundtrip(tmp_path):
    pf = features.PatchFeatures(features.l2_normalise(np.random.default_rng(0).normal(size=(6, 4))),
                                np.array([0, 0, 0, 2, 2, 2]), np.zeros((6, 2), np.int64), ["a", "b", "c"],
                                [("b", "cannot decode")])
    pf.save(tmp_path / "f.npz")
    back = features.PatchFeatures.load(tmp_path / "f.npz")
    assert np.allclose(back.features, pf.features) and back.sources == pf.sources and back.skipped == pf.skipped
    means = back.photo_means()
    assert np.isnan(means[1]).all() and np.isclose(np.linalg.norm(means[0]), 1.0)


# ---------------------------------------------------------------- ranking and calibration
def test_patch_text_scores_is_mean_cosine():
    patches = np.array([[1.0, 0.0], [0.0, 2.0]])
    texts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    scores = ranking.patch_text_scores(patches, texts)
    assert np.allclose(scores, [0.5, 0.5, np.sqrt(0.5)])


def test_representative_record_is_most_typical():
    recs = [
        {"relpath": "b.jpg", "tags": {"ISO": "100", "FNumber": "2.8", "Flash": "Off"}},
        {"relpath": "a.jpg", "tags": {"ISO": "800", "FNumber": "4.0", "Flash": "On"}},
        {"relpath": "c.jpg", "tags": {"ISO": "100", "FNumber": "2.8", "Flash": "On"}},
    ]
    assert ranking.representative_record(recs)["relpath"] == "c.jpg"  # agrees with the mode on all three tags
    cands = ranking.camera_candidates([dict(r, make="X", model="Y", text=r["relpath"]) for r in recs]
                                      + [{"make": "Z", "model": "W", "relpath": "z.jpg", "tags": {}, "text": "z"}])
    assert [(c.make, c.model, c.n_photos, c.text) for c in cands] == [("X", "Y", 3, "c.jpg"), ("Z", "W", 1, "z")]


def test_load_candidates_formats_and_errors(tmp_path):
    (tmp_path / "c.txt").write_text("Make: A, Model: B\n\nMake: C, Model: D\n")
    assert [c.text for c in ranking.load_candidates(tmp_path / "c.txt")] == ["Make: A, Model: B", "Make: C, Model: D"]
    (tmp_path / "c.json").write_text('{"references": [{"make": "A", "model": "B", "tags": {"Make": "A", "ISO": "100"}},'
                                     ' "Make: C"]}')
    cands = ranking.load_candidates(tmp_path / "c.json")
    assert cands[0].make == "A" and "ISO: 100" in cands[0].text and cands[1].text == "Make: C"
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ranking.CandidateError, match="bad.json"):
        ranking.load_candidates(tmp_path / "bad.json")
    with pytest.raises(ranking.CandidateError, match="records.jsonl"):
        ranking.load_candidates(tmp_path)
    with pytest.raises(ranking.CandidateError, match="no such file"):
        ranking.load_candidates(tmp_path / "missing.txt")


def test_calibration_maths():
    refs = np.array([0.1, 0.2, 0.3, 0.4])
    assert check.percentile_of(0.35, refs) == 0.75
    assert check.percentile_of(0.3, refs) == pytest.approx(0.625)  # a tie counts half
    assert check.percentile_of(0.5, refs) == 1.0
    assert check.softmax_probability(0.2, np.array([0.2, 0.2, 0.2]), 10.0) == pytest.approx(0.25)
    assert check.softmax_probability(0.9, refs, 100.0) > 0.99
    assert check.verdict_for(0.9) == "consistent" and check.verdict_for(0.1) == "inconsistent"
    assert check.verdict_for(0.5) == "uncertain"
    refs_c = [ranking.Candidate("t1", "Canon", "EOS 40D"), ranking.Candidate("own", "Nikon", "D70"),
              ranking.Candidate("t3", " canon ", "eos 40d"), ranking.Candidate("t4", "Sony", "A7")]
    kept = check.other_camera_references(refs_c, "Canon", "EOS 40D", "own")
    assert [c.text for c in kept] == ["t4"]  # own camera (case/space-insensitive) and own text removed


def test_shipped_reference_set_is_small_and_well_formed():
    refs = check.load_reference_set()
    assert len(refs) >= 50
    assert check.REFERENCE_FILE.stat().st_size < 200_000
    assert len({(r.make, r.model) for r in refs}) == len(refs)  # one entry per camera
    assert all(r.text.startswith("Make: ") for r in refs)


# ---------------------------------------------------------------- labels and splits
def test_exif_value_parsing():
    assert linear.parse_exposure_time("1/500") == pytest.approx(0.002)
    assert linear.parse_exposure_time("0.8") == pytest.approx(0.8)
    assert linear.parse_exposure_time("1/0") is None and linear.parse_exposure_time("Unknown") is None
    assert linear.parse_number("50.0 mm") == 50.0 and linear.parse_number("f/5.6") == 5.6
    assert linear.parse_number("ISO 1600") == 1600 and linear.parse_number("n/a") is None
    assert linear.binomial_se(0.5, 100) == 0.05 and linear.binomial_se(1.0, 10) == 0.0


def test_binned_labels_are_balanced_and_ordered():
    tags = [{"ExposureTime": f"1/{d}"} for d in (8000, 4000, 1000, 500, 250, 125, 60, 30)] + [{}]
    labels, info = linear.photo_labels(tags, linear.LABEL_SPECS["exposure"])
    assert labels[-1] is None and len(info["edges"]) == 3
    counts = {lab: labels.count(lab) for lab in set(labels) - {None}}
    assert sorted(counts.values()) == [2, 2, 2, 2]
    assert labels[0] == labels[1] != labels[-2]  # fastest two share a bin, slowest is elsewhere


def test_split_labels_by_photo_is_disjoint_and_keeps_train_classes():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] + [None] * 2
    train, test = linear.split_labels_by_photo(labels, 0.3, seed=1)
    assert not set(train) & set(test)
    assert 13 in train and 13 not in test  # a single-photo class cannot be tested
    assert 14 not in train and 15 not in train  # unlabelled photos are unused
    assert {labels[i] for i in test} <= {labels[i] for i in train}
    assert sum(labels[i] == "a" for i in test) == 3 and sum(labels[i] == "b" for i in test) == 1
    forced = [i in (0, 10, 13) for i in range(len(labels))]
    train, test = linear.split_labels_by_photo(labels, 0.3, forced_test=forced)
    assert sorted(test) == [0, 10] and 13 in train  # 13 is held out but its class has no other photo


def test_run_probe_learns_separable_classes_and_reports_chance():
    rng = np.random.default_rng(0)
    n_photos, k = 40, 5
    labels = ["x" if i % 4 else "y" for i in range(n_photos)]  # 75 % / 25 %
    centres = {"x": np.array([3.0, 0, 0]), "y": np.array([0, 3.0, 0])}
    feats = np.concatenate([centres[labels[i]] + rng.normal(size=(k, 3)) for i in range(n_photos)])
    owner = np.repeat(np.arange(n_photos), k)
    train, test = linear.split_labels_by_photo(labels, 0.3, seed=0)
    res = linear.run_probe("toy", feats, owner, labels, train, test)
    assert res.photo_accuracy == 1.0 and res.patch_accuracy > 0.9
    assert res.majority_chance == pytest.approx(np.mean([labels[i] == "x" for i in test]))
    assert res.uniform_chance == 0.5 and res.n_test_patches == len(test) * k
    noise = rng.normal(size=feats.shape)  # pure noise: no better than chance on average
    assert linear.run_probe("noise", noise, owner, labels, train, test).photo_accuracy <= 0.9
    with pytest.raises(linear.ProbeError, match="overlap"):
        linear.run_probe("bad", feats, owner, labels, train, np.concatenate([test, train[:1]]))


# ---------------------------------------------------------------- distortion
def test_distortion_zero_is_identity_and_sign_matters():
    rng = np.random.default_rng(0)
    img = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    assert np.array_equal(distortion.distort(img, 0.0, 0.0), img)
    # Corners stay pinned, so barrel (k1 < 0) magnifies the middle: a dot halfway to the right edge moves
    # outward; pincushion (k1 > 0) shrinks the middle: the dot moves toward the centre.
    dot = np.zeros((97, 129, 3), np.uint8)
    dot[48, 96] = 255
    barrel = distortion.distort(dot, -0.1).sum(axis=2)
    pincushion = distortion.distort(dot, 0.1).sum(axis=2)
    col_b = np.average(np.arange(129), weights=barrel.sum(axis=0))
    col_p = np.average(np.arange(129), weights=pincushion.sum(axis=0))
    assert col_b > 96.5 > col_p
    with pytest.raises(distortion.DistortionError):
        distortion.distort(img, -0.6)  # folds the frame


def test_distortion_bins_from_realistic_coefficients():
    bins = distortion.distortion_bins(5)
    assert bins.n_bins == 5 and len(bins.edges) == 4 and np.all(np.diff(bins.edges) > 0)
    assert bins.edges[0] < 0 < bins.edges[-1]  # barrel and pincushion both present
    assert abs(bins.edges).max() < 0.1  # realistic lenses: a few percent at the rim
    k1, k2 = bins.sample(0, np.random.default_rng(0))
    assert k1 < bins.edges[0]
    assert "k1 in [-inf" in bins.label(0)


def test_distortion_fallback_table_matches_lensfun(monkeypatch):
    if len(distortion.lensfun_pool()) == 0:
        pytest.skip("lensfunpy not installed")
    real = distortion.distortion_bins(5).edges
    monkeypatch.setattr(distortion, "lensfun_pool", lambda: np.zeros((0, 2)))
    fallback = distortion.distortion_bins(5)
    assert "fallback" in fallback.source
    assert np.allclose(real, fallback.edges, atol=0.004)


# ---------------------------------------------------------------- CASIA protocol views
def test_casia_protocol_views(casia_dir):
    from exiflang.imageio import load_rgb
    from exiflang.probes import casia

    items = casia.read_manifest(casia_dir)
    assert {lab for _, lab in items} == {0, 1} and all(p.is_file() for p, _ in items[:5])
    img, _ = load_rgb(items[0][0])
    resized = casia.protocol_input(img, 64, "resized")
    cropped = casia.protocol_input(img, 64, "center-cropped")
    assert resized.shape == cropped.shape == (64, 64, 3)
    h, w = img.shape[:2]
    assert np.array_equal(cropped, img[(h - 64) // 2:(h - 64) // 2 + 64, (w - 64) // 2:(w - 64) // 2 + 64])
    with pytest.raises(casia.CasiaError):
        casia.protocol_input(img, 64, "squashed")
    with pytest.raises(casia.CasiaError, match="MANIFEST"):
        casia.read_manifest(casia_dir / "masks")


def test_held_out_mask_reproduces_the_trainers_split():
    from types import SimpleNamespace

    from exiflang.data.patches import data_hash
    from exiflang.probes.tasks import ProbePhoto, held_out_mask

    photos = [ProbePhoto(f"/p/{i}.jpg", {}, "M", "X", sha256=f"{i * 0x0A3D70A3:08x}" + "0" * 56, text=f"t{i}")
              for i in range(25)]
    held = [int(p.sha256[:8], 16) / 0xFFFFFFFF < 0.2 for p in photos]  # the trainer's rule, restated
    assert 0 < sum(held) < len(photos)
    val = [SimpleNamespace(sha256=p.sha256, text=p.text) for p, h in zip(photos, held) if h]
    model = SimpleNamespace(config=SimpleNamespace(extra={"train": {"recipe": {"val_fraction": 0.2}, "val_data_hash": data_hash(val)}}))
    mask, note = held_out_mask(model, photos)
    assert mask == held and "matches" in note
    model.config.extra["train"]["val_data_hash"] = "something else"
    assert "differs" in held_out_mask(model, photos)[1]
    assert held_out_mask(SimpleNamespace(config=SimpleNamespace(extra={})), photos) == (None, "no held-out split recorded in the model config")


def test_softmax_probe_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)) + np.repeat(np.eye(3, 6) * 1.5, 100, axis=0)
    y = np.repeat(np.array(["a", "b", "c"]), 100)
    ours = linear.fit_logistic(x, y, c=0.5)
    scaler = StandardScaler().fit(x)
    ref = LogisticRegression(C=0.5, max_iter=1000).fit(scaler.transform(x), y)
    test = rng.normal(size=(200, 6)) * 2
    assert np.mean(ours.predict(test) == ref.predict(scaler.transform(test))) > 0.97
    assert np.allclose(np.exp(ours.predict_log_proba(test)), ref.predict_proba(scaler.transform(test)), atol=0.02)
