"""CPU seconds per photo of the embedding step on each encoder runtime, side by side in one run, one thread.

    PYTHONPATH=$PWD/src nice -n 10 .venv/bin/python benchmarks/encoder_runtimes.py [--photos 8] [--rounds 2]

The embedding step is `Detector.embed` (the patch grid of a 1024x768 shared photo, 30 patches per side, batches of
64 patches through the image encoder; about 90 % of a photo's time), the default model through the one loader.
Runtimes, each on its own copy of the loaded model:

* ``eager``: today's PyTorch encoder;
* ``compile``: torch.compile (`exiflang.models.compiled`, `exiflang batch --compile`);
* ``onnx``: the encoder exported by torch.onnx (the dynamo exporter, torch.export underneath) and run by ONNX
  Runtime at one thread;
* ``openvino``: the same exported graph compiled by OpenVINO for the CPU at float32, and ``openvino-bf16``:
  OpenVINO's own default precision on this CPU (bfloat16), to show what it trades;
* ``no-encoder``: the step with the encoder replaced by zeros, i.e. the work every runtime shares (cutting the
  patches, to float, channels-last), so the encoder's own share of each row can be told apart.

ONNX Runtime and OpenVINO are measured here only (exiflang does not use them: issue 23 asked for >= 1.3x over eager
and better than torch.compile, which neither reached; docs/RESULTS.md, "Batch analysis"). The graph is exported
from the loaded model object in this process and both runtimes get its bytes; it takes shape [64, P, P, 3]
channels-last pixels, the layout `embed_patches` hands over, and a short last batch is padded with zeros.

Load on a shared machine changes every time, so the runtimes take turns: each photo goes through every runtime
before the next photo, the first runtime rotating from photo to photo. Times are CPU seconds of this process
(`time.process_time`, all its threads), which other processes' load changes least. Each runtime's embeddings,
heatmap cells and score are compared with the eager ones on the same photo (largest absolute difference; a
runtime counts only where all three are <= 1e-4).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np

RUNTIMES = ("eager", "compile", "onnx", "openvino", "openvino-bf16", "no-encoder")
TOLERANCE = 1e-4


def shared_1024_photos(n: int) -> list[Path]:
    """The first N shared photos of 1024x768 (the size `batch_throughput.py` copies)."""
    from PIL import Image

    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "photos").is_dir():
        sys.exit("the shared photos are needed: set EXIFLANG_DATA or place them at ../shared/data/photos")
    photos = [p for p in sorted((root / "photos").rglob("*.jpg")) if Image.open(p).size == (1024, 768)]
    return photos[:: max(len(photos) // n, 1)][:n]


def export_onnx(model, batch_size: int) -> bytes:
    """The image encoder as ONNX bytes for [batch_size, P, P, 3] channels-last pixels in [0, 1]."""
    import logging
    import warnings

    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(x.permute(0, 3, 1, 2))

    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)  # torchvision ops
    patch = int(model.patch_size)
    example = torch.rand(batch_size, patch, patch, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(Encoder().eval(), (example,), dynamo=True, input_names=["patches"],
                                    output_names=["embeddings"], verbose=False)
    return program.model_proto.SerializeToString()


def _wrap(model, batch_size: int, run) -> None:
    """``model.encode_image`` through ``run`` (NHWC float32 numpy [batch_size, P, P, 3] -> embeddings numpy)."""
    import torch

    from exiflang.models.compiled import fixed_batch_encoder

    def through_runtime(x: torch.Tensor) -> torch.Tensor:
        nhwc = x.float().permute(0, 2, 3, 1).contiguous()  # a view: embed_patches' batches are channels-last
        return torch.from_numpy(np.array(run(nhwc.numpy())))

    model.encode_image = fixed_batch_encoder(model.encode_image, int(model.patch_size), batch_size, through_runtime)


def _onnxruntime(model, batch_size: int, graph: bytes) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = 3
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    _wrap(model, batch_size, lambda x: session.run(None, {"patches": x})[0])


def _openvino(model, batch_size: int, graph: bytes, precision: str) -> None:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(graph, b""), "CPU", {
        "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": 1})
    request, output = compiled.create_infer_request(), compiled.output(0)
    _wrap(model, batch_size, lambda x: request.infer({0: x})[output])


def _no_encoder(model) -> None:
    import torch

    width = int(model.embed_dim)
    model.encode_image = lambda x: torch.zeros(x.shape[0], width)


def prepare(runtime: str, model, batch_size: int, graph: list) -> tuple[object, float]:
    """A copy of ``model`` on ``runtime`` (eager: the model itself) and the seconds it took to set up (the ONNX
    export is counted once, in the first runtime that needs it)."""
    from exiflang.models.compiled import compile_image_encoder

    t0 = time.perf_counter()
    if runtime == "eager":
        return model, 0.0
    fast = copy.deepcopy(model)  # the loader caches one model per name: eager keeps the original's encoder
    if runtime in ("onnx", "openvino", "openvino-bf16") and not graph:
        graph.append(export_onnx(model, batch_size))
    if runtime == "compile" and not compile_image_encoder(fast, batch_size, log=print):
        sys.exit("compile: fell back to eager (see above); nothing to measure")
    elif runtime == "onnx":
        _onnxruntime(fast, batch_size, graph[0])
    elif runtime.startswith("openvino"):
        _openvino(fast, batch_size, graph[0], "bf16" if runtime.endswith("bf16") else "f32")
    elif runtime == "no-encoder":
        _no_encoder(fast)
    return fast, time.perf_counter() - t0


def measure(paths: list[Path], per_side: int = 30, rounds: int = 2, runtimes=RUNTIMES) -> dict:
    """Per runtime: CPU and wall seconds of the embedding step per photo, set-up seconds and the largest
    differences from eager (embeddings, heatmap cells, score) over every photo."""
    import torch

    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb

    torch.set_num_threads(1)
    base = Detector.load("default", per_side=per_side)
    detectors, stats, graph = {}, {}, []
    for name in runtimes:
        model, setup = prepare(name, base.model, base.batch_size, graph)
        detectors[name] = Detector(model, per_side=per_side, batch_size=base.batch_size)
        stats[name] = {"cpu_s": 0.0, "wall_s": 0.0, "setup_s": setup, "emb": 0.0, "map": 0.0, "score": 0.0}
        print(f"{name}: ready in {setup:.1f} s", flush=True)
    images = [load_rgb(p)[0] for p in paths]
    for i in range(rounds * len(images)):
        image, results = images[i % len(images)], {}
        order = list(runtimes[i % len(runtimes):]) + list(runtimes[: i % len(runtimes)])
        for name in order:
            c, w = time.process_time(), time.perf_counter()
            emb, grid = detectors[name].embed(image)
            stats[name]["cpu_s"] += time.process_time() - c
            stats[name]["wall_s"] += time.perf_counter() - w
            results[name] = (emb, detectors[name].analyse_embeddings(emb, grid))
        for name in runtimes:
            (emb, res), (emb0, res0), s = results[name], results["eager"], stats[name]
            s["emb"] = max(s["emb"], float(np.abs(emb - emb0).max()))
            s["map"] = max(s["map"], float(np.abs(res.cell_heatmap - res0.cell_heatmap).max()))
            s["score"] = max(s["score"], abs(res.score - res0.score))
        print(f"photo {i + 1}/{rounds * len(images)}: load {os.getloadavg()[0]:.1f}", flush=True)
    n = rounds * len(images)
    return {name: {**s, "cpu_s": s["cpu_s"] / n, "wall_s": s["wall_s"] / n} for name, s in stats.items()}


def table(stats: dict) -> str:
    """The markdown table: CPU s/photo, ratio to eager (the whole step, and its encoder part where the no-encoder
    row measured the shared work), differences, set-up time."""
    eager = stats["eager"]["cpu_s"]
    floor = stats.get("no-encoder", {}).get("cpu_s")
    lines = ["| runtime (1 thread) | CPU s/photo | vs eager | encoder part vs eager | wall s/photo | max abs diff: "
             "embeddings / heatmap cell / score | within 1e-4 | set-up s |", "|---|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        if name == "no-encoder":  # the shared work: nothing to compare
            lines.append(f"| (no encoder: the step's shared work) | {s['cpu_s']:.3f} | | | {s['wall_s']:.3f} | | | |")
            continue
        ok = max(s["emb"], s["map"], s["score"]) <= TOLERANCE
        part = f"{(eager - floor) / (s['cpu_s'] - floor):.2f}x" if floor is not None else ""
        lines.append(f"| {name} | {s['cpu_s']:.3f} | {eager / s['cpu_s']:.2f}x | {part} | {s['wall_s']:.3f} | "
                     f"{s['emb']:.1e} / {s['map']:.1e} / {s['score']:.1e} | {'yes' if ok else 'NO'} | "
                     f"{s['setup_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=8, help="shared 1024x768 photos (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the photos (default: %(default)s)")
    parser.add_argument("--per-side", type=int, default=30, help="patches per side (default: %(default)s)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated (default: %(default)s)")
    args = parser.parse_args(argv)
    runtimes = tuple(r for r in args.runtimes.split(",") if r)
    if runtimes[0] != "eager" or not set(runtimes) <= set(RUNTIMES):
        sys.exit(f"--runtimes must start with eager and name only {', '.join(RUNTIMES)}")
    for package, prefix in (("onnxruntime", "onnx"), ("onnxscript", "onnx"), ("onnxscript", "openvino"),
                            ("openvino", "openvino")):
        try:
            __import__(package)  # measured here only: .venv/bin/pip install -e '.[runtimes]'
        except ImportError:
            print(f"{package} is not installed (.venv/bin/pip install -e '.[runtimes]'): "
                  f"the {prefix} rows are left out")
            runtimes = tuple(r for r in runtimes if not r.startswith(prefix))
    paths = shared_1024_photos(args.photos)
    print(f"{len(paths)} photos of 1024x768, {args.rounds} round(s), {args.per_side} patches per side, "
          f"load {os.getloadavg()[0]:.1f} at the start", flush=True)
    stats = measure(paths, args.per_side, args.rounds, runtimes)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
    print(table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
