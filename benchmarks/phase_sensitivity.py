"""Does a model read the 8x8 JPEG block phase? Similarity of grid-aligned vs shifted crops on held-out cameras.

    .venv/bin/python benchmarks/phase_sensitivity.py MODEL_OR_CHECKPOINT [--shift 3 5] [--photos 30]

For the first N photos (at least 400 px a side) of the held-out cameras (`exiflang.data.cameras`) it embeds 4
grid-aligned 128-px crops and the same 4 crops shifted by (dy, dx) pixels, and prints the mean cosine similarity
of two different aligned crops of a photo and of an aligned crop with a shifted one. A phase-blind model gives
the same two numbers; a model that reads the grid gives a clearly lower second one. MODEL_OR_CHECKPOINT is a
model folder / built-in name, or a training `checkpoint.safetensors` (its image tower is loaded).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch


def load_image_tower(spec: str) -> torch.nn.Module:
    """A model from a folder/name, or the image tower of a training checkpoint."""
    from exiflang.models import create_model, load_model

    if spec.endswith(".safetensors") and Path(spec).name.startswith("checkpoint"):
        from exiflang.training.checkpoint import read_checkpoint

        tensors, meta = read_checkpoint(spec)
        model = create_model(meta["model_config"], pretrained_text=False)
        model.image.load_state_dict({k[len("model/image."):]: v for k, v in tensors.items()
                                     if k.startswith("model/image.")})
        model.step = meta["step"]
        return model.eval()
    return load_model(spec).eval()


def main(argv: list[str] | None = None) -> int:
    """Print the two similarities."""
    from exiflang.data.cameras import camera_key, is_heldout
    from exiflang.imageio import load_rgb
    from exiflang.paths import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--shift", type=int, nargs=2, default=(3, 5), metavar=("DY", "DX"))
    p.add_argument("--photos", type=int, default=30)
    args = p.parse_args(argv)
    root = shared_data_dir()
    if root is None or not (root / "photos" / "MANIFEST.csv").is_file():
        sys.exit("shared photos not found: set EXIFLANG_DATA or place them at ../shared/data/photos")
    model = load_image_tower(args.model)
    with (root / "photos" / "MANIFEST.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if is_heldout(camera_key(r["make"], r["model"]))]
    corners = [(64, 64), (192, 192), (64, 256), (256, 64)]
    off = ~torch.eye(4, dtype=torch.bool)
    same, shifted = [], []
    for row in rows:
        image = load_rgb(root / "photos" / row["path"])[0]
        if min(image.shape[:2]) < 400:
            continue

        def embed(dy: int, dx: int) -> torch.Tensor:
            crops = np.stack([image[y + dy:y + dy + 128, x + dx:x + dx + 128].transpose(2, 0, 1) for y, x in corners])
            with torch.no_grad():
                return torch.nn.functional.normalize(model.encode_image(torch.from_numpy(crops).float() / 255), dim=1)

        aligned, moved = embed(0, 0), embed(*args.shift)
        same.append(float((aligned @ aligned.T)[off].mean()))
        shifted.append(float((aligned @ moved.T)[off].mean()))
        if len(same) == args.photos:
            break
    step = getattr(model, "step", None)
    print(f"{args.model}{f' (step {step})' if step is not None else ''}: aligned-aligned {np.mean(same):.3f}, "
          f"aligned-shifted{tuple(args.shift)} {np.mean(shifted):.3f} over {len(same)} held-out-camera photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
