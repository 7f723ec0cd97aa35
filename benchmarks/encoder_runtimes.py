"""CPU seconds per photo of the embedding step on each encoder runtime, side by side in one run, one thread.

    PYTHONPATH=$PWD/src nice -n 10 .venv/bin/python benchmarks/encoder_runtimes.py [--photos 8] [--rounds 2]

The embedding step is `Detector.embed` (the patch grid of a 1024x768 shared photo, 30 patches per side, batches of
64 patches through the image encoder; about 90 % of a photo's time), the default model through the one loader.
Runtimes, each on its own copy of the loaded model:

* ``eager``: today's PyTorch encoder;
* ``compile``: torch.compile (`exiflang.models.compiled`, `exiflang batch --runtime compile`);
* ``onnx``: the encoder exported by torch.onnx and run by ONNX Runtime (`exiflang.models.onnx_encoder`,
  `exiflang batch --runtime onnx`);
* ``openvino``: the same exported graph compiled by OpenVINO for the CPU at float32 (measured only, not in the
  product), and ``openvino-bf16``: OpenVINO's own default precision on this CPU (bfloat16), to show what it trades.

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

RUNTIMES = ("eager", "compile", "onnx", "openvino", "openvino-bf16")
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


def _openvino(model, batch_size: int, precision: str) -> None:
    """``model.encode_image`` through OpenVINO, from the graph `onnx_encoder` exports (the benchmark's only)."""
    import openvino as ov
    import torch

    from exiflang.models.onnx_encoder import cached_graph, graph_key

    key, eager, patch = graph_key(model, batch_size), model.encode_image, int(model.patch_size)
    core = ov.Core()
    graph = core.read_model(cached_graph(model, key, None, print), b"")  # ONNX bytes, no external weights
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": precision,
                                                 "NUM_STREAMS": 1})
    request = compiled.create_infer_request()

    def encode_image(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if tuple(x.shape[1:]) != (3, patch, patch) or not 0 < n <= batch_size:
            return eager(x)
        if n < batch_size:
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
        out = request.infer({0: x.float().permute(0, 2, 3, 1).contiguous().numpy()})
        return torch.from_numpy(np.array(out[compiled.output(0)][:n]))

    model.encode_image = encode_image


def prepare(runtime: str, model, batch_size: int) -> tuple[object, float]:
    """A copy of ``model`` on ``runtime`` (eager: the model itself) and the seconds it took to set up."""
    from exiflang.models.runtimes import use_runtime

    t0 = time.perf_counter()
    if runtime == "eager":
        return model, 0.0
    fast = copy.deepcopy(model)  # the loader caches one model per name: eager keeps the original's encoder
    if runtime.startswith("openvino"):
        _openvino(fast, batch_size, "bf16" if runtime.endswith("bf16") else "f32")
    elif use_runtime(fast, runtime, batch_size, log=print) != runtime:
        sys.exit(f"{runtime}: fell back to eager (see above); nothing to measure")
    return fast, time.perf_counter() - t0


def measure(paths: list[Path], per_side: int = 30, rounds: int = 2, runtimes=RUNTIMES) -> dict:
    """Per runtime: CPU and wall seconds of the embedding step per photo, set-up seconds and the largest
    differences from eager (embeddings, heatmap cells, score) over every photo."""
    import torch

    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb

    torch.set_num_threads(1)
    base = Detector.load("default", per_side=per_side)
    detectors, stats = {}, {}
    for name in runtimes:
        model, setup = prepare(name, base.model, base.batch_size)
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
    """The markdown table: CPU s/photo, ratio to eager, differences, set-up time."""
    eager = stats["eager"]["cpu_s"]
    lines = ["| runtime (1 thread) | CPU s/photo | vs eager | wall s/photo | max abs diff: embeddings / heatmap "
             "cell / score | within 1e-4 | set-up s |", "|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        ok = max(s["emb"], s["map"], s["score"]) <= TOLERANCE
        lines.append(f"| {name} | {s['cpu_s']:.3f} | {eager / s['cpu_s']:.2f}x | {s['wall_s']:.3f} | "
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
    try:
        import openvino  # noqa: F401 - measured here only; `pip install openvino` (the dev extra installs it)
    except ImportError:
        print("openvino is not installed: its rows are left out")
        runtimes = tuple(r for r in runtimes if not r.startswith("openvino"))
    paths = shared_1024_photos(args.photos)
    print(f"{len(paths)} photos of 1024x768, {args.rounds} round(s), {args.per_side} patches per side, "
          f"load {os.getloadavg()[0]:.1f} at the start", flush=True)
    stats = measure(paths, args.per_side, args.rounds, runtimes)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}\n")
    print(table(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
