"""torchrun DDP (gloo, 2 CPU processes): ranks agree, and the run matches one process on the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from exiflang.training import TrainOptions, train

from train_helpers import make_small_index

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def index(photos_dir, tmp_path_factory):
    return make_small_index(photos_dir, tmp_path_factory.mktemp("ddp"), n_photos=12)


def _losses(run_dir: Path) -> list[float]:
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["event"] == "train"]


@pytest.mark.timeout(300)
def test_two_process_gloo_run_matches_single_process(index, tmp_path):
    # 4 photos x 2 crops per step over 2 ranks: each rank's local batch (4 crops) is one BatchNorm group,
    # so the single-process reference uses --bn-group 4 to compute exactly the same thing.
    common = dict(index=str(index), config="tiny", steps=3, photos_per_batch=4, crops_per_photo=2, bn_group=4,
                  val_fraction=0.0, eval_every=100, ckpt_every=100, log_every=1, progress=False, threads=1,
                  lr=3e-3, warmup=1)
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           str(HERE / "ddp_train_worker.py"), json.dumps({**common, "out": str(ddp_dir), "device": "cpu"})]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (load_file(str(ddp_dir / f"rank{r}.safetensors")) for r in (0, 1))
    params = [k for k in rank0 if "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(rank0[k], rank1[k]) for k in params), "ranks diverged"

    single = train(TrainOptions(out=str(single_dir), **common))["model"].state_dict()
    ddp_losses, single_losses = _losses(ddp_dir), _losses(single_dir)
    assert len(ddp_losses) == 3
    assert ddp_losses == pytest.approx(single_losses, rel=1e-4, abs=1e-5)
    # Same gradients => same weights (up to float summation order in the all-reduce).
    assert all(torch.allclose(rank0[k], single[k], atol=1e-4, rtol=1e-3) for k in params)
