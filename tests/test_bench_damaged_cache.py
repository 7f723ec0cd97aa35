"""A damaged embedding-cache entry or per-image result is named on stderr, recomputed, and changes no number."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NUMBERS = ("pmap", "pmap_strict", "ciou", "f1_best", "mcc_best", "pixel_auc", "det_ap", "det_auc")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from exiflang.models import create_model, save_model

    out = tmp_path_factory.mktemp("tiny")
    save_model(create_model("tiny", seed=0), out)
    return out


def _bench(casia_dir: Path, model: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    """`exiflang bench` on the first 4 CASIA images, in a child process (the CLI as a user runs it)."""
    cmd = [sys.executable, "-m", "exiflang", "bench", "--dataset", f"manifest:{casia_dir}", "--limit", "4",
           "--model", str(model), "--per-side", "8", "--out", str(out), "--cache-dir", str(cache), "--no-maps",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def _numbers(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {k: summary[k] for k in NUMBERS}


@pytest.fixture(scope="module")
def clean_run(casia_dir, tiny_model_dir, tmp_path_factory):
    """A clean benchmark run: its output folder, its cache folder, its numbers."""
    root = tmp_path_factory.mktemp("clean")
    proc = _bench(casia_dir, tiny_model_dir, root / "out", root / "cache")
    assert proc.returncode == 0, proc.stderr
    return root / "out", root / "cache", _numbers(root / "out")


def test_damaged_embedding_cache_entry_is_named_and_recomputed(clean_run, casia_dir, tiny_model_dir, tmp_path):
    _, cache, numbers = clean_run
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 4
    truncated, garbled = entries[0], entries[1]
    intact = {p: p.stat().st_mtime_ns for p in entries[2:]}
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    blob = bytearray(garbled.read_bytes())
    blob[:16] = b"\x00garbage header!"
    garbled.write_bytes(bytes(blob))
    proc = _bench(casia_dir, tiny_model_dir, tmp_path / "out", cache)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    for damaged in (truncated, garbled):
        lines = [line for line in proc.stderr.splitlines() if str(damaged) in line]
        assert len(lines) == 1 and "warning: damaged embedding cache entry " in lines[0], proc.stderr
    assert "2 from the embedding cache" in proc.stdout  # the two good entries were still used, not rewritten
    assert {p: p.stat().st_mtime_ns for p in intact} == intact
    assert _numbers(tmp_path / "out") == pytest.approx(numbers, abs=1e-9)
    # Recomputed entries were written back whole: a third run reads all four from the cache, silently.
    again = _bench(casia_dir, tiny_model_dir, tmp_path / "out3", cache)
    assert "4 from the embedding cache" in again.stdout and "damaged" not in again.stderr


def test_damaged_per_image_result_is_named_and_recomputed_on_resume(clean_run, casia_dir, tiny_model_dir, tmp_path):
    import shutil

    out_clean, cache, numbers = clean_run
    out = tmp_path / "resumed"
    shutil.copytree(out_clean, out)
    records = sorted((out / "per_image").glob("*.json"))
    records[0].write_text(records[0].read_text()[:25])  # cut mid-record, as a full disk would leave it
    records[1].write_bytes(b"\xff\xfe\x00 not json")
    intact = {p: p.stat().st_mtime_ns for p in records[2:]}
    proc = _bench(casia_dir, tiny_model_dir, out, cache)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "JSONDecodeError" not in proc.stderr
    for damaged in records[:2]:
        lines = [line for line in proc.stderr.splitlines() if str(damaged) in line]
        assert len(lines) == 1 and "warning: damaged per-image result " in lines[0], proc.stderr
    assert "2 image(s) analysed now, 2 resumed" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in intact} == intact  # the good results were kept as they were
    assert json.loads(records[0].read_text())["stem"] == records[0].stem  # rewritten whole
    assert _numbers(out) == pytest.approx(numbers, abs=1e-9)


def test_damaged_bench_config_is_one_clear_error(clean_run, casia_dir, tiny_model_dir, tmp_path):
    import shutil

    out_clean, cache, _ = clean_run
    out = tmp_path / "conf"
    shutil.copytree(out_clean, out)
    (out / "bench_config.json").write_text("{\"dataset\": ")
    proc = _bench(casia_dir, tiny_model_dir, out, cache)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(out / "bench_config.json") in proc.stderr and "damaged" in proc.stderr
