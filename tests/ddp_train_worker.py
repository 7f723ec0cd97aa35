"""Run under torchrun by test_train_ddp.py: train, then every rank writes its own live final weights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from exiflang.training import TrainOptions, train


def main() -> None:
    """argv[1]: TrainOptions as JSON."""
    options = json.loads(sys.argv[1])
    model = train(TrainOptions(**options))["model"]
    rank = dist.get_rank() if dist.is_initialized() else 0
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(Path(options["out"]) / f"rank{rank}.safetensors"))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
