"""How a long-running process (`exiflang batch`'s workers) runs the image encoder: one choice, three runtimes.

* ``eager``: PyTorch as it is (no start-up cost);
* ``compile``: torch.compile (`models.compiled`): about a minute to compile per process on a cold cache;
* ``onnx``: the encoder exported to ONNX and run by ONNX Runtime (`models.onnx_encoder`): a few seconds to export
  once per model and batch size (then cached on disk).

benchmarks/encoder_runtimes.py measures them side by side (docs/RESULTS.md, "Batch analysis"). Each faster runtime
is checked against the eager encoder to 1e-4 before it is used and falls back to eager, saying why, when it cannot
run or differs.
"""
from __future__ import annotations

from typing import Any, Callable

RUNTIMES = ("eager", "compile", "onnx")


def use_runtime(model: Any, runtime: str, batch_size: int, log: Callable[[str], None] | None = None) -> str:
    """Make ``model.encode_image`` run on ``runtime`` for batches of ``batch_size`` patches; return the runtime in
    effect ('eager' after a fallback, which ``log`` is told about in one line)."""
    if runtime not in RUNTIMES:
        from .config import ModelError

        raise ModelError(f"unknown encoder runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "compile":
        from .compiled import compile_image_encoder

        return runtime if compile_image_encoder(model, batch_size, log=log) else "eager"
    if runtime == "onnx":
        from .onnx_encoder import use_onnx_encoder

        return runtime if use_onnx_encoder(model, batch_size, log=log) else "eager"
    return "eager"
