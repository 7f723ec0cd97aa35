"""Baselines that run in the same benchmark harness as the learned model (see `exiflang.eval.bench`)."""
