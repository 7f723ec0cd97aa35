"""Patch data: full-resolution crops, deterministic resumable batches, photo-level splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from exiflang.data.index import load_records
from exiflang.data.patches import (EVAL_STREAM, PatchBatches, PatchDataError, PhotoStore, crop_positions,
                                   eval_crops, photos_from_records, split_by_photo)
from exiflang.imageio import load_rgb

from train_helpers import make_small_index


@pytest.fixture(scope="module")
def records(photos_dir, tmp_path_factory):
    return load_records(make_small_index(photos_dir, tmp_path_factory.mktemp("patches"), n_photos=12))


def test_small_photos_are_skipped_and_counted(records):
    fake = dict(records[0], width=100, height=3000)
    photos, skipped = photos_from_records([*records, fake], patch_size=128)
    assert skipped == 1 and len(photos) == len(records)


def test_split_is_by_photo_and_deterministic(records):
    photos, _ = photos_from_records(records, 64)
    train, val = split_by_photo(photos, 0.3)
    assert {p.path for p in train}.isdisjoint({p.path for p in val}) and len(train) + len(val) == len(photos)
    assert split_by_photo(photos[::-1], 0.3)[1] == val[::-1]  # membership depends on the photo, not the order
    assert split_by_photo(photos, 0.0)[1] == []


def test_crops_are_untouched_stored_pixels(records):
    """A crop equals the decoded stored array at the drawn position: no resize, flip or colour change."""
    photos, _ = photos_from_records(records, 128)
    batches = PatchBatches(PhotoStore(photos), 128, photos_per_batch=4, crops_per_photo=3, seed=7)
    batch = batches[5]
    assert batch["pixels"].dtype == torch.uint8 and batch["pixels"].shape == (12, 3, 128, 128)
    epoch = 5 // batches.steps_per_epoch
    first = int(batch["photo"][0])
    photo = photos[first]
    arr, _ = load_rgb(photo.path)
    pos = crop_positions(photo.height, photo.width, 128, 3, np.random.default_rng([7, epoch, first]))
    for k, (y, x) in enumerate(pos):
        assert np.array_equal(batch["pixels"][k].numpy().transpose(1, 2, 0), arr[y:y + 128, x:x + 128])
    assert len(set(pos[:, 0].tolist())) > 1  # positions really are random


def test_batches_are_a_function_of_the_step(records):
    photos, _ = photos_from_records(records, 64)
    a = PatchBatches(PhotoStore(photos, cache=True), 64, 4, 2, seed=1)
    b = PatchBatches(PhotoStore(photos), 64, 4, 2, seed=1)
    for step in (0, 3, 7):
        assert torch.equal(a[step]["pixels"], b[step]["pixels"])
    assert not torch.equal(a[0]["pixels"], a[1]["pixels"])
    # One epoch visits each photo at most once, with distinct photos inside a batch.
    seen = torch.cat([a[s]["photo"] for s in range(a.steps_per_epoch)])
    assert len(set(seen.tolist())) == len(seen) == a.steps_per_epoch * 4


def test_rank_slices_concatenate_to_the_global_batch(records):
    photos, _ = photos_from_records(records, 64)
    store = PhotoStore(photos, cache=True)
    whole = PatchBatches(store, 64, 4, 2, seed=3)[2]
    parts = [PatchBatches(store, 64, 4, 2, seed=3, rank=r, world=2)[2] for r in range(2)]
    assert torch.equal(torch.cat([p["pixels"] for p in parts]), whole["pixels"])
    assert torch.equal(torch.cat([p["group"] for p in parts]), whole["group"])


def test_same_text_same_group(records):
    photos, _ = photos_from_records(records, 64)
    twin = photos[1].__class__(**{**photos[1].__dict__, "text": photos[0].text, "path": photos[1].path})
    batches = PatchBatches(PhotoStore([photos[0], twin, *photos[2:]]), 64, 2, 1)
    assert batches.text_ids[photos[0].text] == batches.text_ids[twin.text]


def test_bad_batch_settings(records):
    photos, _ = photos_from_records(records, 64)
    with pytest.raises(PatchDataError, match="fewer than one batch"):
        PatchBatches(PhotoStore(photos), 64, len(photos) + 1, 2)
    with pytest.raises(PatchDataError, match="multiple of the number of processes"):
        PatchBatches(PhotoStore(photos), 64, 3, 2, world=2)


def test_unreadable_photo_is_named(records, tmp_path):
    photos, _ = photos_from_records(records, 64)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8not a jpeg")
    broken = photos[0].__class__(**{**photos[0].__dict__, "path": str(bad)})
    with pytest.raises(PatchDataError, match="broken.jpg"):
        PhotoStore([broken]).image(0)


def test_eval_crops_are_fixed(records):
    photos, _ = photos_from_records(records, 64)
    store = PhotoStore(photos[:3])
    crops, owner = eval_crops(store, 64, 4, seed=0)
    again, _ = eval_crops(store, 64, 4, seed=0)
    assert crops.shape == (12, 3, 64, 64) and owner.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(crops, again) and EVAL_STREAM > 10_000
