"""Training end to end on real photos with the tiny model: metrics, evaluation, checkpoints, resume, CLI."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from exiflang.cli import main as cli_main
from exiflang.models import load_model
from exiflang.training import CHECKPOINT, TrainError, TrainOptions, read_checkpoint, train, warmup_cosine

from train_helpers import make_small_index

FAST = dict(config="tiny", photos_per_batch=4, crops_per_photo=2, val_fraction=0.25, eval_crops=2,
            log_every=1, progress=False, threads=1, lr=3e-3, warmup=2)


@pytest.fixture(scope="module")
def index(photos_dir, tmp_path_factory):
    return make_small_index(photos_dir, tmp_path_factory.mktemp("train"), n_photos=20)


def _events(run_dir, kind):
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["event"] == kind]


def test_train_writes_metrics_checkpoint_and_model(index, tmp_path):
    out = tmp_path / "run"
    summary = train(TrainOptions(index=str(index), out=str(out), steps=4, eval_every=2, ckpt_every=2, **FAST))
    train_events = _events(out, "train")
    assert [e["step"] for e in train_events] == [1, 2, 3, 4]
    assert all(e["loss"] > 0 and e["patches_per_s"] > 0 for e in train_events)
    evals = _events(out, "eval")
    assert [e["step"] for e in evals] == [2, 4]
    assert 0 <= evals[-1]["patch_top5"] <= 1 and evals[-1]["chance_top1"] == pytest.approx(1 / evals[-1]["n_texts"])
    start = _events(out, "start")[0]
    assert start["n_train_photos"] + start["n_val_photos"] == 20 and start["data_hash"] == summary["data_hash"]
    assert (out / CHECKPOINT).is_file() and not (out / (CHECKPOINT + ".tmp")).exists()
    model = load_model(out / "model")
    assert model.config.extra["train"]["data_hash"] == summary["data_hash"]
    assert model.config.extra["train"]["recipe"]["photos_per_batch"] == 4
    # The saved model is the trained one, not a fresh initialisation.
    trained = summary["model"].state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_resume_reproduces_an_uninterrupted_run(index, tmp_path):
    """N steps straight == N/2, 'kill', --resume, N/2: identical weights and losses."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = dict(index=str(index), steps=6, eval_every=100, ckpt_every=100, **FAST)
    train(TrainOptions(out=str(straight), **common))
    first = train(TrainOptions(out=str(split), stop_at=3, **common))
    assert first["steps_done"] == 3 and "model_dir" not in first
    assert read_checkpoint(split / CHECKPOINT)[1]["step"] == 3
    # A killed run may have logged past its last checkpoint: resume drops those lines and redoes the steps.
    with (split / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"event": "train", "step": 4, "loss": -1.0}) + "\n")
    # Resume takes the recipe from the checkpoint even when the command line says otherwise.
    train(TrainOptions(out=str(split), resume=True, **{**common, "lr": 1.0}))
    a, b = load_file(str(straight / "model" / "model.safetensors")), load_file(str(split / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    loss = lambda d: [e["loss"] for e in _events(d, "train")]
    assert loss(straight) == loss(split)


def test_resume_refuses_other_data(index, tmp_path, photos_dir):
    out = tmp_path / "r"
    train(TrainOptions(index=str(index), out=str(out), steps=4, stop_at=1, eval_every=100, **FAST))
    other = make_small_index(photos_dir, tmp_path / "other", n_photos=16)
    with pytest.raises(TrainError, match="other photos or texts"):
        train(TrainOptions(index=str(other), out=str(out), resume=True, **FAST))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_and_resume(index, tmp_path):
    common = dict(index=str(index), steps=4, eval_every=4, ckpt_every=2, device="cuda", **FAST)
    train(TrainOptions(out=str(tmp_path / "a"), **common))
    train(TrainOptions(out=str(tmp_path / "b"), stop_at=2, **common))
    train(TrainOptions(out=str(tmp_path / "b"), resume=True, **common))
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_image_only_objective(index, tmp_path):
    out = tmp_path / "io"
    train(TrainOptions(index=str(index), out=str(out), steps=2, eval_every=2, objective="image-only", **FAST))
    result = _events(out, "eval")[-1]
    assert 0 <= result["same_photo_top1"] <= 1 and result["chance_same_photo_top1"] > 0
    # The text tower took no part, so it is still the initialisation.
    from exiflang.models import create_model

    fresh = create_model("tiny", seed=0).state_dict()
    trained = load_model(out / "model").state_dict()
    assert torch.equal(fresh["text.proj.weight"], trained["text.proj.weight"])
    assert not torch.equal(fresh["image.conv1.weight"], trained["image.conv1.weight"])


def test_bad_options_and_cli_errors(index, tmp_path, capsys):
    with pytest.raises(TrainError, match="at least 2 crops"):
        train(TrainOptions(index=str(index), out=str(tmp_path), objective="image-only", crops_per_photo=1))
    with pytest.raises(TrainError, match="no checkpoint"):
        train(TrainOptions(index=str(index), out=str(tmp_path / "none"), resume=True))
    assert cli_main(["train", "--index", str(tmp_path / "missing"), "--out", str(tmp_path / "x"),
                     "--config", "tiny"]) == 2
    assert "cannot read the index" in capsys.readouterr().err
    assert cli_main(["train", "--index", str(index), "--out", str(tmp_path / "y"), "--config", "nope"]) == 2


def test_warmup_cosine_schedule():
    f = warmup_cosine(warmup=10, total=110, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_frozen_text_tower_stays_out_of_checkpoints_and_resume_is_exact(index, tmp_path):
    """`small` keeps MiniLM frozen: checkpoints skip its weights (rebuilt from the package) and resume stays exact."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = dict(index=str(index), steps=4, eval_every=100, ckpt_every=100, **{**FAST, "config": "small"})
    train(TrainOptions(out=str(straight), **common))
    train(TrainOptions(out=str(split), stop_at=2, **common))
    tensors, _ = read_checkpoint(split / CHECKPOINT)
    assert any(k.startswith("model/image.") for k in tensors)
    assert not any(k.startswith("model/text.backbone.") for k in tensors)
    train(TrainOptions(out=str(split), resume=True, **common))
    a, b = load_file(str(straight / "model" / "model.safetensors")), load_file(str(split / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_different_schedule_and_keeps_the_run(index, tmp_path, capsys):
    """`--resume --steps 30` on a 2-step run: one line saying how, exit 2, the run's files untouched."""
    out = tmp_path / "short"
    base = ["train", "--index", str(index), "--config", "tiny", "--photos-per-batch", "4", "--crops-per-photo", "2",
            "--val-fraction", "0.25", "--eval-crops", "2", "--threads", "1", "--no-progress", "--out", str(out)]
    assert cli_main([*base, "--steps", "2", "--stop-at", "1"]) == 0
    before = (out / CHECKPOINT).read_bytes()
    capsys.readouterr()
    assert cli_main([*base, "--steps", "30", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps 2" in err and "new run folder" in err and "Traceback" not in err
    assert (out / CHECKPOINT).read_bytes() == before
    assert cli_main([*base, "--resume"]) == 0  # without the contradicting flag it continues the recipe
    assert read_checkpoint(out / CHECKPOINT)[1]["step"] == 2


@pytest.mark.parametrize("flag, value, says", [("--lr", "-1", "must be > 0"), ("--steps", "0", "must be in [1, 10000000]"),
                                               ("--val-fraction", "1", "must be in [0, 1)"),
                                               ("--photos-per-batch", "x", "expected an integer")])
def test_train_options_are_range_checked_when_parsed(flag, value, says, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["train", "--index", str(tmp_path), "--out", str(tmp_path / "run"), flag, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and flag in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_train_that_cannot_start_leaves_no_empty_run_folder(tmp_path, capsys):
    out = tmp_path / "never"
    assert cli_main(["train", "--index", str(tmp_path / "no-index"), "--out", str(out), "--no-progress"]) == 2
    assert "no-index" in capsys.readouterr().err and not out.exists()
