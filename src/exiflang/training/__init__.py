"""Contrastive training of patch and EXIF-text encoders (`exiflang train`, also under torchrun).

    TrainOptions(...)      -> one run's recipe and run settings (training/options.py: defaults, ranges, help)
    train(options)         -> runs or resumes it (training/loop.py), returns a summary with the live model

The other modules are the loop's pieces: process groups, checkpoints, held-out evaluation, text-feature cache.
"""
from .checkpoint import read_checkpoint
from .errors import TrainError
from .loop import Run, make_loader, prepare, train, warmup_cosine
from .options import CHECKPOINT, METRICS, TEXT_FEATURES, TrainOptions

__all__ = ["CHECKPOINT", "METRICS", "TEXT_FEATURES", "Run", "TrainError", "TrainOptions", "make_loader", "prepare",
           "read_checkpoint", "train", "warmup_cosine"]
