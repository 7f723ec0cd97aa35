"""Shards (webdataset layout, original bytes) and training from them; the frozen-text feature cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from exiflang.cli import main as cli_main
from exiflang.data.index import load_records
from exiflang.data.shards import ShardError, iter_samples
from exiflang.models import load_model
from exiflang.models.factory import resolve_config
from exiflang.training import TEXT_FEATURES, TrainOptions, train

from train_helpers import make_small_index

FAST = dict(photos_per_batch=4, crops_per_photo=2, val_fraction=0.25, eval_crops=2, log_every=1,
            progress=False, threads=1, warmup=1, eval_every=100, ckpt_every=100)


@pytest.fixture(scope="module")
def index(photos_dir, tmp_path_factory):
    return make_small_index(photos_dir, tmp_path_factory.mktemp("shards"), n_photos=12)


def _losses(run_dir: Path) -> list[float]:
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["event"] == "train"]


def test_shards_hold_original_bytes_and_train_like_the_index(index, tmp_path):
    shards = tmp_path / "shards"
    assert cli_main(["shard", str(index), "--out", str(shards), "--max-count", "5", "--quiet"]) == 0
    assert len(list(shards.glob("shard-*.tar"))) == 3  # 12 photos, 5 per shard
    records = {r["sha256"]: r for r in load_records(index)}
    samples = list(iter_samples(shards))
    assert len(samples) == len(records)
    for key, data, rec in samples:
        assert Path(records[rec["sha256"]]["path"]).read_bytes() == data  # byte for byte, never re-encoded
        assert rec["text"] == records[rec["sha256"]]["text"] and key == rec["sha256"][:24]
    import webdataset as wds  # the layout is webdataset's

    first = next(iter(wds.WebDataset(str(shards / "shard-000000.tar"), shardshuffle=False)))
    assert {"jpg", "json"} <= set(first)
    a = train(TrainOptions(index=str(index), out=str(tmp_path / "a"), config="tiny", steps=2, **FAST))
    b = train(TrainOptions(shards=str(shards), out=str(tmp_path / "b"), config="tiny", steps=2, **FAST))
    assert a["data_hash"] == b["data_hash"] and _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_bad_shards(tmp_path):
    with pytest.raises(ShardError, match="no such shard folder"):
        list(iter_samples(tmp_path / "none"))
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    with pytest.raises(ShardError, match="cannot read shard"):
        list(iter_samples(tmp_path))


def test_frozen_text_features_are_cached_and_reused(index, tmp_path, monkeypatch):
    """A frozen MiniLM text tower: features computed once into a cache file, reused by the next run."""
    config = resolve_config("tiny").to_dict()
    config.update(name="tiny-minilm", text={"kind": "minilm", "tokenizer": "minilm", "max_length": 32,
                                             "train_backbone": False, "projection": True})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    first = train(TrainOptions(index=str(index), out=str(tmp_path / "r1"), config=str(path), steps=2, **FAST))
    cache = tmp_path / "r1" / TEXT_FEATURES
    assert cache.is_file()

    def no_recompute(*args, **kwargs):
        raise AssertionError("text features were recomputed despite the cache")

    monkeypatch.setattr("exiflang.training.text_cache.text_feature_table", no_recompute)
    second = train(TrainOptions(index=str(index), out=str(tmp_path / "r2"), config=str(path), steps=2,
                                text_features=str(cache), **FAST))
    assert _losses(tmp_path / "r1") == pytest.approx(_losses(tmp_path / "r2"))
    # The saved model rebuilds MiniLM from its package (only the projection is in the file) and embeds text
    # as the trained model did.
    model = load_model(second["model_dir"])
    with torch.no_grad():
        again = model.encode_text(["Make: Canon, Model: Canon EOS 5D"])
        trained = second["model"].eval().encode_text(["Make: Canon, Model: Canon EOS 5D"])
    assert torch.allclose(again, trained, atol=1e-5)
