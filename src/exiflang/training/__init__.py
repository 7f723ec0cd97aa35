"""Pieces of the trainer (`exiflang.train`): process groups, checkpoints, held-out evaluation, text-feature cache."""
