"""The image encoder on ONNX Runtime (`exiflang.models.onnx_encoder`, `exiflang batch --runtime onnx`): the eager
maps to 1e-4, a cached graph used only when it is this model's own export, eager kept (with one line) otherwise."""
from __future__ import annotations

import copy
import sys
from dataclasses import asdict

import numpy as np
import pytest

from photo_helpers import resized_copy, shared_photos

pytest.importorskip("onnxruntime", reason="--runtime onnx needs onnxruntime (pyproject.toml installs it)")
pytest.importorskip("onnxscript", reason="torch.onnx's exporter needs onnxscript (pyproject.toml installs it)")

BATCH = 16


@pytest.fixture(scope="module")
def image(photos_dir, tmp_path_factory):
    """A 320-px copy of a real shared photo: 100 patches at 10 per side, so the last batch of 16 is short."""
    from exiflang.imageio import load_rgb

    path = resized_copy(shared_photos(photos_dir, 1)[0], tmp_path_factory.mktemp("onnx") / "a.jpg", longest=320)
    return load_rgb(path)[0]


def _tiny(seed: int):
    from exiflang.models import create_model

    return create_model("tiny", seed=seed).eval()


def _detector(model):
    from exiflang.forensics import Detector

    return Detector(model, per_side=10, batch_size=BATCH)


def _same_maps(eager_model, fast_model, image) -> None:
    a, b = _detector(eager_model).detect(image), _detector(fast_model).detect(image)
    assert np.abs(a.embeddings - b.embeddings).max() <= 1e-4
    assert np.abs(a.cell_heatmap - b.cell_heatmap).max() <= 1e-4 and a.score == pytest.approx(b.score, abs=1e-4)


def test_onnx_encoder_gives_the_eager_maps_and_is_cached(image, tmp_path, monkeypatch):
    from exiflang.models import onnx_encoder
    from exiflang.models.onnx_encoder import graph_key, graph_path, use_onnx_encoder

    model = _tiny(0)
    fast, lines = copy.deepcopy(model), []
    assert _detector(model).grid(image).n_patches % BATCH  # the padded path runs
    assert use_onnx_encoder(fast, BATCH, log=lines.append, cache_dir=tmp_path)
    assert lines == [] and "encode_image" in vars(fast) and "encode_image" not in vars(model)
    _same_maps(model, fast, image)
    path = graph_path(graph_key(model, BATCH), tmp_path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    # a second process (model object) reads the cached graph: no export
    monkeypatch.setattr(onnx_encoder, "export_graph", lambda *a: pytest.fail("exported again"))
    again = copy.deepcopy(model)
    assert use_onnx_encoder(again, BATCH, log=lines.append, cache_dir=tmp_path) and lines == []
    _same_maps(model, again, image)


def test_a_tampered_or_another_models_cached_graph_is_refused(image, tmp_path):
    from exiflang.models.onnx_encoder import ExportedGraphError, graph_key, graph_path, read_cached, use_onnx_encoder

    first, other = _tiny(0), _tiny(1)  # the same model id ("tiny-untrained"), other weights: the same file name
    assert use_onnx_encoder(copy.deepcopy(first), BATCH, cache_dir=tmp_path)
    key, other_key = graph_key(first, BATCH), graph_key(other, BATCH)
    path = graph_path(key, tmp_path)
    assert path == graph_path(other_key, tmp_path) and key != other_key
    with pytest.raises(ExportedGraphError, match="is for"):
        read_cached(path, other_key)
    # another model's graph is never run: refused, exported again from this model, the eager maps
    fast, lines = copy.deepcopy(other), []
    assert use_onnx_encoder(fast, BATCH, log=lines.append, cache_dir=tmp_path)
    assert len(lines) == 1 and "refused" in lines[0]
    _same_maps(other, fast, image)
    assert read_cached(path, other_key)  # the cache now holds the second model's own export
    # bytes changed after the export: refused, exported again
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ExportedGraphError, match="SHA-256"):
        read_cached(path, other_key)
    lines.clear()
    assert use_onnx_encoder(copy.deepcopy(other), BATCH, log=lines.append, cache_dir=tmp_path)
    assert len(lines) == 1 and "SHA-256" in lines[0]


def test_a_graph_that_differs_or_no_runtime_keeps_eager(tmp_path, monkeypatch):
    from exiflang.models.onnx_encoder import export_graph, graph_key, graph_path, use_onnx_encoder, write_cached
    from exiflang.models.runtimes import use_runtime

    model, other = _tiny(0), _tiny(1)
    # a record that vouches for another model's graph (as a bug in the key could): the check batch catches it
    key = graph_key(model, BATCH)
    write_cached(graph_path(key, tmp_path), key, export_graph(other, graph_key(other, BATCH)))
    lines = []
    assert not use_onnx_encoder(model, BATCH, log=lines.append, cache_dir=tmp_path)
    assert len(lines) == 1 and "differs from the eager one" in lines[0] and "encode_image" not in vars(model)
    # onnxruntime missing: eager, one line, through the runtime choice the batch workers use
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    lines.clear()
    assert use_runtime(model, "onnx", BATCH, log=lines.append) == "eager"
    assert len(lines) == 1 and "not installed" in lines[0] and "encode_image" not in vars(model)


def test_batch_worker_on_onnx_gives_the_eager_row(photos_dir, tmp_path, monkeypatch):
    """`exiflang batch --runtime onnx`'s worker (the default model, no Ray needed to build one) against eager."""
    pytest.importorskip("ray", reason="exiflang batch needs Ray")
    from exiflang.eval.batch import BatchAnalyser, BatchOptions
    from exiflang.eval.methods import build_method, settings_digest

    monkeypatch.setenv("EXIFLANG_CACHE", str(tmp_path / "cache"))
    path = str(resized_copy(shared_photos(photos_dir, 2)[1], tmp_path / "b.jpg", longest=512))
    rows = {}
    for runtime in ("eager", "onnx"):
        options = BatchOptions(method="exiflang", per_side=8, runtime=runtime)
        digest = settings_digest("exiflang", build_method("exiflang", **options.method_kwargs()))
        worker = BatchAnalyser(asdict(options), digest)
        model = worker.method.detector.model  # the loader's one model of this process, as in a Ray worker
        try:
            assert ("encode_image" in vars(model)) == (runtime == "onnx")
            rows[runtime] = worker.analyse(path)
        finally:  # later tests in this process load the same cached model: give it its eager encoder back
            vars(model).pop("encode_image", None)
    assert rows["onnx"]["error"] is None and rows["onnx"]["settings_digest"] == rows["eager"]["settings_digest"]
    for column in ("score", "probability", "flagged_fraction"):
        assert rows["onnx"][column] == pytest.approx(rows["eager"][column], abs=1e-4)
    assert rows["onnx"]["verdict"] == rows["eager"]["verdict"]
