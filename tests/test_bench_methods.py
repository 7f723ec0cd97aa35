"""The classical `grid` and `dq` methods in `exiflang bench` and `exiflang detect`, and the method protocol.

The plumbing (path passing, reports, errors) is checked with stand-in modules, so it is tested whatever state
`exiflang.forensics.jpeg_grid` / `exiflang.forensics.dq` are in; the real analyses run where those modules exist.
"""
from __future__ import annotations

import csv
import importlib.machinery
import json
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from exiflang.cli import main
from exiflang.eval.bench import (METHODS, Analysis, BenchError, MethodError, build_method, call_analyse,
                                 run_bench)
from exiflang.eval.datasets import load_dataset


@dataclass
class FakeResult:
    heatmap: np.ndarray
    score: float
    origin: tuple

    @property
    def cell_map(self):
        """The map as the real detectors give it: per block (here 1 px blocks)."""
        from exiflang.forensics.cells import block_map

        return block_map(self.heatmap, *self.heatmap.shape, 1)


def _fake_module(monkeypatch, name: str, **functions) -> None:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for key, fn in functions.items():
        setattr(module, key, fn)
    monkeypatch.setitem(sys.modules, name, module)


def _left_half(image):
    heat = np.zeros(image.shape[:2], np.float32)
    heat[:, : image.shape[1] // 2] = 1.0
    return heat


@pytest.fixture()
def fake_classical(monkeypatch):
    """Stand-ins for jpeg_grid and dq; `calls` records which DQ entry point got which input."""
    calls = []

    def grid_analysis(image, votes=None):
        if min(image.shape[:2]) < 16:
            raise ValueError("too small")
        return FakeResult(_left_half(image), 3.0, (np.int64(2), np.int64(5)))

    def dq_analysis(image, votes=None):
        calls.append(("pixels", None))
        return FakeResult(_left_half(image), 1.0, (0, 0))

    def dq_analysis_file(path, image=None):
        calls.append(("file", str(path)))
        assert image is not None  # the harness passes the pixels it already decoded
        return FakeResult(_left_half(image), 2.0, (0, 0))

    _fake_module(monkeypatch, "exiflang.forensics.jpeg_grid", grid_analysis=grid_analysis)
    _fake_module(monkeypatch, "exiflang.forensics.dq", dq_analysis=dq_analysis, dq_analysis_file=dq_analysis_file)
    return calls


@pytest.fixture()
def small_set(tmp_path):
    """A generic dataset: a spliced JPEG, a spliced PNG (left halves masked) and an authentic JPEG."""
    root = tmp_path / "set"
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    mask = np.zeros((48, 64), np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask).save(root / "masks" / "m.png")
    for name in ("a.jpg", "b.png", "c.jpg"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / name, quality=90)
    (root / "manifest.csv").write_text("image,mask,label\na.jpg,masks/m.png,1\nb.png,masks/m.png,1\nc.jpg,,0\n")
    return root


def test_cli_method_choices_are_the_registry():
    from exiflang.commands.bench import METHOD_NAMES

    assert METHOD_NAMES == tuple(METHODS)
    assert {"exiflang", "random", "noise", "grid", "dq"} <= set(METHODS)


def test_grid_and_dq_in_the_harness(fake_classical, small_set, tmp_path):
    ds = load_dataset(f"generic:{small_set}")
    summary, run = run_bench(ds, build_method("grid"), tmp_path / "grid", progress=False)
    assert run.errors == 0 and summary["pmap"] == pytest.approx(1.0)  # the stand-in flags exactly the mask
    assert summary["camera_overlap"]["status"] == "not applicable (training-free method)"
    meta = json.loads((tmp_path / "grid" / "maps" / "a.json").read_text())
    assert meta["model_id"] == build_method("grid").method_id and meta["score"] == 3.0 and meta["origin"] == [2, 5]
    assert np.load(tmp_path / "grid" / "maps" / "a.heatmap.npy").shape == (48, 64)

    summary, _ = run_bench(ds, build_method("dq"), tmp_path / "dq", progress=False)
    # JPEG files are read through their own coefficients, the PNG through its pixels.
    assert fake_classical == [("file", str(small_set / "a.jpg")), ("pixels", None), ("file", str(small_set / "c.jpg"))]
    assert json.loads((tmp_path / "dq" / "maps" / "b.json").read_text())["input"] == "decoded-pixels"
    rows = {r["stem"]: r for r in csv.DictReader((tmp_path / "dq" / "per_image.csv").open())}
    assert float(rows["a"]["score"]) == 2.0 and float(rows["b"]["score"]) == 1.0


def test_method_errors_skip_the_image_and_old_methods_still_run(fake_classical, small_set, tmp_path):
    class OldStyle:  # written before analyse() took a path
        method_id = "old-v1"

        def settings(self):
            return {}

        def analyse(self, image):
            return Analysis(np.zeros(image.shape[:2], np.float32), 0.0)

    image = np.zeros((48, 64, 3), np.uint8)
    assert call_analyse(OldStyle(), image, small_set / "a.jpg").score == 0.0
    ds = load_dataset(f"generic:{small_set}")
    summary, run = run_bench(ds, OldStyle(), tmp_path / "old", progress=False)
    assert run.errors == 0 and summary["counts"]["scored"] == 3
    with pytest.raises(MethodError, match="too small"):
        build_method("grid").analyse(np.zeros((8, 8, 3), np.uint8))


def test_detect_with_grid_and_dq_writes_the_usual_report(fake_classical, small_set, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", str(small_set / "a.jpg"), str(small_set / "b.png"), "--method", "grid", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(" ok") == 2 and "pca" not in printed
    for stem in ("a", "b"):
        meta = json.loads((out / f"{stem}.json").read_text())
        assert meta["method"] == "grid" and meta["model_id"] == build_method("grid").method_id and meta["score"] == 3.0
        assert meta["flagged_fraction"] == pytest.approx(0.5)
        heat = np.load(out / f"{stem}.heatmap.npy")
        assert heat.shape == (48, 64) and heat.dtype == np.float32
        assert Image.open(out / f"{stem}.mask.png").size == (64, 48)
        from exiflang.forensics.report import colour_bar_height

        assert Image.open(out / f"{stem}.overlay.png").size == (64, 48 + colour_bar_height(64))  # + its colour bar
    assert main(["detect", str(small_set / "a.jpg"), "--method", "dq", "--out", str(out)]) == 0
    assert json.loads((out / "a.json").read_text())["input"] == "jpeg-coefficients"
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    assert main(["detect", str(tmp_path / "tiny.png"), "--method", "grid"]) == 1  # reported, not a traceback
    assert "too small" in capsys.readouterr().err


def test_missing_method_module_is_a_one_line_error(monkeypatch, small_set, capsys):
    import exiflang.eval.methods as methods  # the registry's home since the split of eval/bench.py (issue 23)

    monkeypatch.setattr(methods, "_module_available", lambda name: False)
    with pytest.raises(BenchError, match="needs exiflang.forensics.jpeg_grid"):
        build_method("grid")
    assert main(["detect", str(small_set / "a.jpg"), "--method", "dq"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs exiflang.forensics.dq" in err
    with pytest.raises(SystemExit) as exc:
        main(["detect", str(small_set / "a.jpg"), "--method", "bogus"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ the real analyses, where they exist
@pytest.fixture(scope="module")
def real_composite(photos_dir, tmp_path_factory):
    """One composite + one control of real photos, with its JPEG twins."""
    from exiflang.eval.splices import make_splices

    out = tmp_path_factory.mktemp("real")
    make_splices(photos_dir, out, n=1, seed=4, n_authentic=1, twins=True, progress=False)
    return out


@pytest.mark.parametrize("name, module", [("grid", "exiflang.forensics.jpeg_grid"), ("dq", "exiflang.forensics.dq")])
def test_real_classical_methods_on_real_composites(name, module, real_composite, tmp_path):
    pytest.importorskip(module)
    ds = load_dataset(f"generic:{real_composite / 'jpeg90'}")
    summary, run = run_bench(ds, build_method(name), tmp_path / name, progress=False)
    assert run.errors == 0 and summary["counts"]["scored"] == 2
    assert summary["camera_overlap"]["status"] == "not applicable (training-free method)"
    assert summary["camera_overlap"]["dataset_cameras"] >= 2
    for s in ds.samples:
        stem = s.image.with_suffix("").relative_to(ds.root).as_posix().replace("/", "__")
        heat = np.load(tmp_path / name / "maps" / f"{stem}.heatmap.npy")
        assert heat.shape == Image.open(s.image).size[::-1] and 0.0 <= heat.min() <= heat.max() <= 1.0
        assert np.isfinite(json.loads((tmp_path / name / "maps" / f"{stem}.json").read_text())["score"])
