"""A compiled image encoder (torch.compile) for long runs: 1.1-1.2x fewer CPU seconds in the embedding step, after a
start of a minute or so per process (benchmarks/batch_throughput.py and benchmarks/encoder_runtimes.py measure it).

Where the time goes (1024x768 photo, 609 patches, one thread): the convolutions take about 60 % and the
element-wise passes over every patch pixel (the CLIP normalisation, undone again by the JPEG-zero features, the
luminance, its rounding) about 30 %; the compiled graph fuses those passes into one loop each. Channels-last weights,
other patch batch sizes and a frozen TorchScript trace measured no faster (issue 23), so they are not used; ONNX
Runtime and OpenVINO (float32) measured within a few percent of this (benchmarks/encoder_runtimes.py), not used either.

The graph is compiled for one input shape, [batch_size, 3, P, P]: a shorter last batch is padded with zeros and
cut again (each patch's embedding depends on that patch alone in eval mode), any other shape runs the eager encoder.
A compiled graph that does not give the eager encoder's embeddings to 1e-4 on a check batch, or a machine where
compiling fails (no C compiler), keeps the eager encoder and says why.
"""
from __future__ import annotations

from typing import Any, Callable

MAX_DIFFERENCE = 1e-4  # largest |compiled - eager| allowed on the check batch (unnormalised embeddings)


def compile_image_encoder(model: Any, batch_size: int, log: Callable[[str], None] | None = None) -> bool:
    """Replace ``model.encode_image`` by a compiled one for batches of ``batch_size`` patches; True when it did.

    The first call compiles (about a minute on 2 CPU cores), so this is for processes that embed many photos,
    such as the workers of `exiflang batch`; the results equal the eager encoder's to `MAX_DIFFERENCE`.
    """
    import torch

    eager = model.encode_image
    patch = int(model.patch_size)
    try:
        compiled = torch.compile(eager, dynamic=False)
        # An inference tensor in channels-last, as `embed_patches` hands its batches over: the graph is guarded on
        # both, and any other kind of check input would make the first real batch compile it again.
        with torch.inference_mode():
            check = torch.rand(batch_size, 3, patch, patch, generator=torch.Generator().manual_seed(0)).contiguous(
                memory_format=torch.channels_last)
            difference = float((compiled(check).float() - eager(check).float()).abs().max())
    except Exception as exc:  # noqa: BLE001 - inductor raises many kinds (no compiler, unsupported op): eager stays
        if log:
            log(f"torch.compile unavailable here, the eager encoder is kept ({type(exc).__name__}: {exc})")
        return False
    if not difference <= MAX_DIFFERENCE:
        if log:
            log(f"the compiled encoder differs from the eager one by {difference:.2e}; the eager encoder is kept")
        return False

    # this model object only: other holders of the class are untouched
    model.encode_image = fixed_batch_encoder(eager, patch, batch_size,
                                             lambda x: compiled(x.contiguous(memory_format=torch.channels_last)))
    return True


def fixed_batch_encoder(eager: Callable, patch: int, batch_size: int, run: Callable) -> Callable:
    """An ``encode_image`` that hands ``run`` only [batch_size, 3, patch, patch] batches (a shorter one padded with
    zeros and its rows cut again) and any other input to ``eager``: for graphs built for one input shape."""
    import torch

    def encode_image(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if tuple(x.shape[1:]) != (3, patch, patch) or not 0 < n <= batch_size:
            return eager(x)
        if n < batch_size:  # pad to the graph's shape; eval-mode layers keep every patch to itself
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
        return run(x)[:n]

    return encode_image
