"""Processing history as language, block-phase tags and the camera-disjoint split, on the shared photos."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from exiflang.data.cameras import camera_key, cameras_hash, heldout_cameras, is_heldout
from exiflang.data.history import (History, HistoryConfig, apply_history, estimate_jpeg_quality, sample_history,
                                   tag_vocabulary)
from exiflang.data.patches import PatchBatches, PhotoStore, TrainingPhoto, visit_crops
from exiflang.imageio import load_rgb
from exiflang.training import CHECKPOINT, TrainOptions, read_checkpoint, train

from train_helpers import make_small_index


def _manifest(photos_dir):
    with (photos_dir / "MANIFEST.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_camera_split_is_deterministic_disjoint_and_mixed(photos_dir):
    rows = _manifest(photos_dir)
    keys = [camera_key(r["make"], r["model"]) for r in rows]
    held = heldout_cameras(keys)
    assert held == heldout_cameras(list(reversed(keys)))  # a function of the cameras, not of their order
    train = sorted(set(keys) - set(held))
    assert held and train and not set(held) & set(train)
    assert 0.15 <= len(held) / len(set(keys)) <= 0.35  # about a quarter
    counts = {k: keys.count(k) for k in held}
    assert min(counts.values()) == 1 and max(counts.values()) > 1  # one-photo and many-photo cameras
    # The key ignores how a maker spells itself and letter case; the hash ignores order.
    assert camera_key("NIKON CORPORATION", "NIKON  D70s") == camera_key("Nikon", "nikon d70s")
    assert is_heldout(camera_key("NIKON", "NIKON D70s")) == is_heldout(camera_key("NIKON CORPORATION", "NIKON D70s"))
    assert cameras_hash(held) == cameras_hash(list(reversed(held)))


def _photo(photos_dir):
    path = sorted(photos_dir.rglob("*.jpg"))[0]
    return load_rgb(path)[0]


def test_recompression_tag_matches_the_quality_read_back_from_the_pixels(photos_dir):
    image = _photo(photos_dir)[:320, :320]
    for quality in (55, 72, 93):
        history = History((("jpeg", (quality, "4:4:4")),))
        out = apply_history(image, history, 320, np.random.default_rng(0))
        assert f"Recompressed JPEG Quality: {quality}" in history.tags()
        assert estimate_jpeg_quality(out[8:264, 16:272]) == quality  # any grid-aligned crop of it
    double = History((("double_jpeg", (60, 90, "4:4:4")),))
    out = apply_history(image, double, 320, np.random.default_rng(0))
    assert double.tags()[:2] == ["Earlier JPEG Quality: 60", "Recompressed JPEG Quality: 90"]
    assert estimate_jpeg_quality(out) == 90


def test_history_tags_describe_what_was_applied(photos_dir):
    image = _photo(photos_dir)
    rng = np.random.default_rng(3)
    vocab = set(tag_vocabulary())
    seen_ops, processed = set(), 0
    for _ in range(200):
        history = sample_history(HistoryConfig(), rng)
        assert set(history.tags()) <= vocab  # every tag has precomputable text features
        processed += bool(history.steps)
        seen_ops |= {name for name, _ in history.steps}
    assert 70 <= processed <= 130  # about half the visits
    assert seen_ops == {"gamma", "blur", "resample", "noise", "jpeg", "double_jpeg"}
    # A resample by f really changes the scale; a switched-off op never appears.
    history = History((("resample", (0.5, "bicubic")),))
    out = apply_history(image[:640, :640], history, 320, rng)
    assert out.shape == (320, 320, 3) and not history.has_grid
    no_jpeg = HistoryConfig(prob=1.0, jpeg=False, double_jpeg=False)
    assert all(not any(n in ("jpeg", "double_jpeg") for n, _ in sample_history(no_jpeg, rng).steps)
               for _ in range(50))


def test_phase_tags_give_the_crop_offset_from_the_grid(photos_dir):
    image = _photo(photos_dir)
    cfg = HistoryConfig(prob=0.0)
    crops, tags = visit_crops(image, 64, 4, cfg, np.random.default_rng(1))
    for crop, crop_tags in zip(crops, tags):
        dy = int(crop_tags[0].split(": ")[1])
        dx = int(crop_tags[1].split(": ")[1])
        # Find the crop in the photo: its position modulo 8 is the tag.
        hits = [(y, x) for y in range(dy, image.shape[0] - 63, 8) for x in range(dx, image.shape[1] - 63, 8)
                if np.array_equal(image[y:y + 64, x:x + 64].transpose(2, 0, 1), crop)]
        assert hits, f"no crop at phase ({dy}, {dx})"
    assert tags[0] == tags[1] and tags[0] == ["JPEG Block Row Offset: 0", "JPEG Block Column Offset: 0"]
    crops, tags = visit_crops(image, 64, 4, HistoryConfig(prob=0.0, phase_tags=False), np.random.default_rng(1))
    assert tags == [[], [], [], []]  # the ablation: plain EXIF text


def test_crop_texts_append_tags_to_the_exif_text(photos_dir):
    photos = _training_photos(photos_dir, 6)
    batches = PatchBatches(PhotoStore(photos, cache=True), 64, 3, 4, seed=5, history=HistoryConfig(prob=1.0))
    batch = batches[2]
    texts = [batches.crop_text(row) for row in batch["segments"].tolist()]
    assert all(t.startswith("Make: M") and "JPEG Block Row Offset" in t for t in texts)
    assert any("Recompressed JPEG Quality" in t or "Resampled" in t or "Gamma" in t or "Added Noise" in t
               or "Blurred" in t or "Sharpened" in t for t in texts)
    groups = batch["crop_group"].tolist()
    for a in range(len(texts)):
        for b in range(len(texts)):
            assert (groups[a] == groups[b]) == (texts[a] == texts[b])
    again = PatchBatches(PhotoStore(photos, cache=True), 64, 3, 4, seed=5, history=HistoryConfig(prob=1.0))[2]
    assert torch.equal(again["pixels"], batch["pixels"]) and torch.equal(again["segments"], batch["segments"])


@pytest.fixture(scope="module")
def index(photos_dir, tmp_path_factory):
    return make_small_index(photos_dir, tmp_path_factory.mktemp("history"), n_photos=16)


def test_augmented_training_resumes_exactly(index, tmp_path):
    """History + phase tags + patch-patch term: N steps straight == N/2, kill, resume, N/2."""
    common = dict(index=str(index), steps=4, eval_every=100, ckpt_every=100, config="tiny", photos_per_batch=4,
                  crops_per_photo=2, val_fraction=0.25, eval_crops=2, log_every=1, progress=False, threads=1,
                  lr=3e-3, warmup=2, history=HistoryConfig(prob=0.5).to_dict(), patch_patch_weight=0.5)
    straight = train(TrainOptions(out=str(tmp_path / "a"), **common))
    train(TrainOptions(out=str(tmp_path / "b"), stop_at=2, **common))
    assert read_checkpoint(tmp_path / "b" / CHECKPOINT)[1]["step"] == 2
    resumed = train(TrainOptions(out=str(tmp_path / "b"), resume=True, **{**common, "history": None}))
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["model"].config.extra["train"]["recipe"]["history"]["prob"] == 0.5  # the checkpoint's recipe won


def test_original_grid_tags_give_the_camera_grid_offset_used(photos_dir, monkeypatch):
    """Issue 19: a re-compressed visit names where the camera grid sits relative to the re-compression's grid."""
    import exiflang.data.patches as patches

    image = _photo(photos_dir)
    corners = []
    real_corner = patches.window_corner
    monkeypatch.setattr(patches, "window_corner", lambda *a: corners.append(real_corner(*a)) or corners[-1])
    only_jpeg = dict(gamma=False, blur=False, noise=False, double_jpeg=False)
    cfg = HistoryConfig(prob=1.0, resample=False, original_grid_tags=True, aligned_windows=0.5, **only_jpeg)
    rng = np.random.default_rng(7)
    offsets = []
    for _ in range(40):
        _, tags = visit_crops(image, 64, 2, cfg, rng)
        wy, wx = corners[-1]
        expected = [f"Original JPEG Grid Row Offset: {(-wy) % 8}", f"Original JPEG Grid Column Offset: {(-wx) % 8}"]
        for crop_tags in tags:
            assert [t for t in crop_tags if t.startswith("Original")] == expected
            assert set(crop_tags) <= set(tag_vocabulary())
        offsets.append(((-wy) % 8, (-wx) % 8))
    aligned = sum(o == (0, 0) for o in offsets)
    assert 10 <= aligned <= 32  # about half the windows start on the camera grid, the rest anywhere
    # Resampling before the re-compression destroys the camera grid: no original-grid tag then.
    resampled = HistoryConfig(prob=1.0, jpeg=True, resample=True, original_grid_tags=True, **only_jpeg)
    for _ in range(20):
        history_tags = visit_crops(image, 64, 1, resampled, rng)[1][0]
        if any(t.startswith("Resampled") for t in history_tags):
            assert not any(t.startswith("Original") for t in history_tags)


def test_old_recipes_keep_their_draws(photos_dir):
    """A recipe saved before the new settings existed reads them as off: no new tags, windows anywhere."""
    image = _photo(photos_dir)
    old = HistoryConfig.from_dict({k: v for k, v in HistoryConfig(prob=1.0).to_dict().items()
                                   if k not in ("original_grid_tags", "aligned_windows")})
    assert not old.original_grid_tags and old.aligned_windows == 0.0
    rng = np.random.default_rng(11)
    assert not any(t.startswith("Original") for _ in range(30) for tags in visit_crops(image, 64, 2, old, rng)[1]
                   for t in tags)
    with pytest.raises(ValueError, match="aligned_windows"):
        HistoryConfig.from_dict({**HistoryConfig().to_dict(), "aligned_windows": 2.0})


def test_a_step_with_the_new_settings_is_a_pure_function_of_seed_and_step(photos_dir):
    photos = _training_photos(photos_dir, 4)
    cfg = HistoryConfig(prob=1.0, original_grid_tags=True, aligned_windows=0.5)
    first = PatchBatches(PhotoStore(photos, cache=True), 64, 2, 2, seed=9, history=cfg)[3]
    again = PatchBatches(PhotoStore(photos, cache=True), 64, 2, 2, seed=9, history=cfg)[3]
    assert torch.equal(first["pixels"], again["pixels"]) and torch.equal(first["segments"], again["segments"])


def _training_photos(photos_dir, n: int) -> list:
    """The first n shared photos as training photos with made-up cameras (M0, M1, ...)."""
    photos = []
    for i, path in enumerate(sorted(photos_dir.rglob("*.jpg"))[:n]):
        arr = load_rgb(path)[0]
        photos.append(TrainingPhoto(str(path), f"{i:064x}", arr.shape[1], arr.shape[0], f"Make: M{i}, Model: X", "m", "x"))
    return photos


def _shared_step(batches: PatchBatches, want_shared: bool) -> int:
    """The first step whose batch shares one history (or does not)."""
    from exiflang.data.history import shared_batch_history

    return next(s for s in range(200)
                if (shared_batch_history(batches.history, batches.seed, s) is not None) == want_shared)


def _history_part(text: str) -> list[str]:
    """A crop text's history tags (no EXIF text, no block-phase or camera-grid tags, which vary by crop)."""
    return [t for t in text.split(", ")[2:] if "Offset" not in t]


def test_a_shared_batch_gives_every_photo_one_history_and_keeps_the_other_draws(photos_dir):
    """Issue 19: `shared_history` processes a batch's photos alike; what each tag says is what was applied."""
    photos = _training_photos(photos_dir, 4)
    only_jpeg = dict(gamma=False, blur=False, noise=False, resample=False, double_jpeg=False)
    cfg = HistoryConfig(prob=0.5, shared_history=0.5, **only_jpeg)
    batches = PatchBatches(PhotoStore(photos, cache=True), 128, 4, 2, seed=3, history=cfg)
    step = _shared_step(batches, True)
    item = batches[step]
    texts = [batches.crop_text(row) for row in item["segments"].tolist()]
    histories = {tuple(_history_part(t)) for t in texts}
    assert len(histories) == 1 and next(iter(histories))  # one non-empty history for all 8 crops
    tags = dict(t.split(": ") for t in next(iter(histories)))
    checked = 0
    for text, pixels in zip(texts, item["pixels"]):
        if "Row Offset: 0" in text and "Column Offset: 0" in text:  # a crop on the re-compression's grid
            estimate = estimate_jpeg_quality(pixels.numpy().transpose(1, 2, 0),
                                             subsampling=tags["Recompressed Chroma Subsampling"])
            assert estimate == int(tags["Recompressed JPEG Quality"])
            checked += 1
    assert checked >= 2
    # Unshared steps draw per photo, as before; sharing leaves every crop's block phase where it was.
    unshared = PatchBatches(PhotoStore(photos, cache=True), 128, 4, 2, seed=3,
                            history=HistoryConfig(prob=0.5, **only_jpeg))
    phases = [[t for t in batches.crop_text(r).split(", ") if "Block" in t] for r in item["segments"].tolist()]
    before = [[t for t in unshared.crop_text(r).split(", ") if "Block" in t] for r in unshared[step]["segments"].tolist()]
    assert phases == before
    other = _shared_step(batches, False)
    assert torch.equal(batches[other]["pixels"], unshared[other]["pixels"])
    assert batches[step]["segments"].tolist() == item["segments"].tolist()  # a pure function of (seed, step)


def test_shared_history_share_is_checked_and_old_recipes_read_it_as_off():
    assert HistoryConfig.from_dict({k: v for k, v in HistoryConfig().to_dict().items()
                                    if k != "shared_history"}).shared_history == 0.0
    with pytest.raises(ValueError, match="shared_history"):
        HistoryConfig.from_dict({**HistoryConfig().to_dict(), "shared_history": -0.1})


def _find_crop(frame: np.ndarray, crop: np.ndarray) -> tuple[int, int]:
    """Where an HxWx3 crop sits in a frame (exact pixels)."""
    p = crop.shape[0]
    ys, xs = np.nonzero(np.all(frame[:frame.shape[0] - p + 1, :frame.shape[1] - p + 1] == crop[0, 0], axis=-1))
    hits = [(int(y), int(x)) for y, x in zip(ys, xs) if np.array_equal(frame[y:y + p, x:x + p], crop)]
    assert len(hits) == 1
    return hits[0]


def test_a_warped_visit_is_the_lens_warp_its_tags_name_at_the_radius_they_name(photos_dir, monkeypatch):
    """Issue 24: `warp` distorts the whole frame by the tagged k1; the radius tag is the window centre's."""
    import exiflang.data.patches as patches
    from exiflang.data.history import WARP_K1, radius_tag
    from exiflang.data.warp import distort, frame_radius

    corners = []
    real_corner = patches.window_corner
    monkeypatch.setattr(patches, "window_corner", lambda *a: corners.append(real_corner(*a)) or corners[-1])
    image = _photo(photos_dir)
    height, width = image.shape[:2]
    only_warp = HistoryConfig(prob=0.0, warp=1.0)  # warped, nothing else: crops are pixels of the warped frame
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(3):
        crops, tags = visit_crops(image, 64, 2, only_warp, rng)
        k1 = float(tags[0][0].split(": ")[1])
        assert k1 in WARP_K1 and tags[0][0] == f"Lens Distortion k1: {k1:+.3f}"
        seen.add(k1)
        warped = distort(image, k1)
        wy, wx = corners[-1]
        window = only_warp.window
        for crop, crop_tags in zip(crops, tags):
            y, x = _find_crop(warped, crop.transpose(1, 2, 0))
            assert wy <= y <= wy + window - 64 and wx <= x <= wx + window - 64  # inside the processed window
            assert crop_tags[1] == radius_tag(frame_radius(height, width, wy + window / 2 - 0.5, wx + window / 2 - 0.5))
            assert not any("Block" in t for t in crop_tags)  # resampled: no JPEG grid is left to tag
    assert len(seen) > 1
    assert not any(t.startswith(("Lens", "Distance")) for t in tag_vocabulary())  # earlier recipes: same words
    assert {radius_tag(0.0), radius_tag(1.66), f"Lens Distortion k1: {WARP_K1[0]:+.3f}"} <= set(tag_vocabulary(True))
    assert HistoryConfig.from_dict({k: v for k, v in HistoryConfig().to_dict().items() if k != "warp"}).warp == 0.0


def test_a_warped_and_re_saved_visit_keeps_the_re_save_grid_and_drops_the_camera_grid(photos_dir):
    image = _photo(photos_dir)
    cfg = HistoryConfig(prob=1.0, warp=1.0, gamma=False, blur=False, noise=False, resample=False,
                        double_jpeg=False, original_grid_tags=True)
    _, tags = visit_crops(image, 64, 2, cfg, np.random.default_rng(2))
    assert tags[0][0].startswith("Lens Distortion") and tags[0][1].startswith("Recompressed JPEG Quality")
    assert any("Block" in t for t in tags[0])  # the re-save's grid is there
    assert not any(t.startswith("Original") for t in tags[0])  # the warp resampled the camera's grid away
    photos = _training_photos(photos_dir, 4)
    first = PatchBatches(PhotoStore(photos, cache=True), 64, 2, 2, seed=4, history=cfg)[1]
    again = PatchBatches(PhotoStore(photos, cache=True), 64, 2, 2, seed=4, history=cfg)[1]
    assert torch.equal(first["pixels"], again["pixels"]) and torch.equal(first["segments"], again["segments"])
    # The patch-patch term needs every crop's text on another crop of its photo: the radius is a visit tag.
    assert np.unique(first["crop_group"].numpy(), return_counts=True)[1].min() >= 2
