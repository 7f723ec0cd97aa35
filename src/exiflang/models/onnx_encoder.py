"""The image encoder exported to ONNX and run by ONNX Runtime: the fastest way to embed patches on a CPU measured
here (benchmarks/encoder_runtimes.py; docs/RESULTS.md, "Batch analysis"), with the eager encoder's embeddings to 1e-4.

The graph is exported from this model object by torch.onnx (torch.export underneath) for one input shape,
[batch_size, P, P, 3] channels-last pixels, the layout `embed_patches` already hands over (no copy on the way in).
It is cached on disk, because exporting takes several seconds per process: a file named by the model id and the
batch shape, beside a JSON record of the graph's key (model id, the image tower's weights digest, shape, export
format, torch version) and the SHA-256 of the graph's bytes, both written atomically, the record last. A cached
graph is used only when its record's key is this model's and its bytes hash to the recorded SHA-256 (the bytes
that were checked are the bytes the session is built from); anything else is exported again and replaced. An
ONNX file is data, not code, and the only ones read are those this module wrote.

Every session is checked against the eager encoder on a batch of pixel-valued patches before it replaces
`model.encode_image`; a larger difference than `MAX_DIFFERENCE`, a missing onnxruntime or a failed export keeps
the eager encoder, with one line saying why.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from ..imageio import atomic_write_stream, atomic_write_text
from ..jsonfile import read_json_object
from ..paths import cache_root
from .config import ModelError

MAX_DIFFERENCE = 1e-4  # largest |onnx - eager| allowed on the check batch (unnormalised embeddings)
FORMAT = 1  # the graph's inputs and outputs as exported here; bump when `_Encoder` changes
MAX_RECORD_BYTES = 4096


class ExportedGraphError(ModelError):
    """A cached graph that is not this model's own export (another key, other bytes), or an export that failed."""


def graph_key(model: Any, batch_size: int) -> dict:
    """What identifies an exported graph: the model id, its image tower's weights, the input shape, the export."""
    from .factory import weights_digest

    weights = weights_digest({k: v.detach().contiguous().cpu() for k, v in model.image.state_dict().items()})
    patch = int(model.patch_size)
    return {"format": FORMAT, "model_id": str(model.model_id), "image_weights": weights,
            "shape": [int(batch_size), patch, patch, 3], "torch": torch.__version__}


def graph_path(key: dict, cache_dir: Path | None = None) -> Path:
    """The cached graph's file: <cache>/onnx/<model id>-b<batch>-p<patch>.onnx (its record: the same + .json)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", key["model_id"])[:100]
    return (cache_dir or cache_root() / "onnx") / f"{stem}-b{key['shape'][0]}-p{key['shape'][1]}.onnx"


class _Encoder(torch.nn.Module):
    """The exported function: channels-last [B, P, P, 3] pixels in [0, 1] -> unnormalised embeddings [B, D]."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x.permute(0, 3, 1, 2))


def export_graph(model: Any, key: dict) -> bytes:
    """The ONNX bytes of `model`'s image encoder for the key's input shape (several seconds on a CPU)."""
    # the exporter warns once per missing torchvision operator: nothing the encoder uses
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    example = torch.rand(*key["shape"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations, not the user's to fix
        program = torch.onnx.export(_Encoder(model).eval(), (example,), dynamo=True, input_names=["patches"],
                                    output_names=["embeddings"], verbose=False)
    return program.model_proto.SerializeToString()


def read_cached(path: Path, key: dict) -> bytes:
    """The cached graph's bytes, when its record names this key and its bytes hash to the recorded SHA-256."""
    record_path = path.with_suffix(".json")
    record = read_json_object(record_path, ExportedGraphError, MAX_RECORD_BYTES)
    if record.get("key") != key:
        raise ExportedGraphError(f"{record_path}: the cached graph is for {record.get('key')}, not {key}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise ExportedGraphError(f"{path}: its bytes are not the ones exported (SHA-256 differs from {record_path})")
    return data


def write_cached(path: Path, key: dict, data: bytes) -> None:
    """The graph, then its record (a graph without a matching record is never read)."""
    atomic_write_stream(path, lambda fh: fh.write(data))
    atomic_write_text(path.with_suffix(".json"),
                      json.dumps({"key": key, "sha256": hashlib.sha256(data).hexdigest()}, indent=1) + "\n")


def cached_graph(model: Any, key: dict, cache_dir: Path | None, log: Callable[[str], None]) -> bytes:
    """This model's graph for the key: the cached one when it checks out, else a new export (cached for next time;
    an unwritable cache only costs the next process another export)."""
    path = graph_path(key, cache_dir)
    if path.is_file():
        try:
            return read_cached(path, key)
        except (ExportedGraphError, OSError) as exc:
            log(f"the cached ONNX graph is refused and exported again: {exc}")
    data = export_graph(model, key)
    try:
        write_cached(path, key, data)
    except OSError as exc:
        log(f"the ONNX graph could not be cached ({exc}); the next process exports it again")
    return data


def _session(data: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def check_batch(batch_size: int, patch: int) -> Any:
    """Patches of pixel values k/255 (as decoded photos have), channels-last, fixed seed."""
    pixels = torch.randint(0, 256, (batch_size, 3, patch, patch), generator=torch.Generator().manual_seed(0))
    return (pixels.float() / 255.0).contiguous(memory_format=torch.channels_last)


def use_onnx_encoder(model: Any, batch_size: int, log: Callable[[str], None] | None = None,
                     cache_dir: Path | None = None) -> bool:
    """Replace ``model.encode_image`` by an ONNX Runtime session for batches of ``batch_size`` patches (one thread
    per torch thread); True when it did. A shorter last batch is padded with zeros and cut again (each patch's
    embedding depends on that patch alone in eval mode); any other shape runs the eager encoder."""
    say = log or (lambda line: None)
    eager, patch = model.encode_image, int(model.patch_size)
    try:
        key = graph_key(model, batch_size)
        session = _session(cached_graph(model, key, cache_dir, say), torch.get_num_threads())
        check = check_batch(batch_size, patch)
        with torch.inference_mode():
            expected = eager(check).float().numpy()
        got = session.run(None, {"patches": check.permute(0, 2, 3, 1).numpy()})[0]
        difference = float(abs(got - expected).max())
    except ImportError as exc:
        say(f"ONNX Runtime is not installed here ({exc}); the eager encoder is kept")
        return False
    except Exception as exc:  # noqa: BLE001 - the exporter and the runtime raise many kinds: eager stays
        say(f"the ONNX encoder is unavailable ({type(exc).__name__}: {str(exc)[:300]}); the eager encoder is kept")
        return False
    if not difference <= MAX_DIFFERENCE:
        say(f"the ONNX encoder differs from the eager one by {difference:.2e}; the eager encoder is kept")
        return False
    model.encode_image = _runner(session, eager, batch_size, patch)
    return True


def _runner(session: Any, eager: Callable, batch_size: int, patch: int) -> Callable:
    """`encode_image` through the session for [n <= batch_size, 3, P, P] batches, else the eager encoder."""
    def encode_image(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if tuple(x.shape[1:]) != (3, patch, patch) or not 0 < n <= batch_size or x.device.type != "cpu":
            return eager(x)
        if n < batch_size:  # pad to the exported shape
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
        nhwc = x.float().permute(0, 2, 3, 1).contiguous()  # a view where x is channels-last, as embed_patches gives
        return torch.from_numpy(session.run(None, {"patches": nhwc.numpy()})[0][:n])

    return encode_image
