"""`exiflang batch` on a real local Ray cluster: the same results as `exiflang detect`, resumable after a SIGKILL of the
driver, bad files as rows, a table pyarrow reads back.

One module-scoped cluster: ``ray.init(num_cpus=3)``, two workers of one CPU each plus the one slot Ray Data needs
for its own read tasks (a pool on every slot waits forever: ray-project/ray issue 44687; `exiflang batch` refuses
it). The images are 512-px copies of the shared photos at 8 patches per side, so each takes well under a second.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="exiflang batch needs Ray: pip install 'ray[data]'")
pq = pytest.importorskip("pyarrow.parquet")

from exiflang.cli import main  # noqa: E402
from exiflang.eval.batch import BatchOptions, run_batch  # noqa: E402
from exiflang.eval.batch_io import PROGRESS_KEY, read_progress  # noqa: E402

from photo_helpers import resized_copy, shared_photos  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = ["--per-side", "8"]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster for the module; its address lets a separate driver process join it."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])  # the workers import exiflang
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def images(photos_dir, tmp_path_factory) -> list[Path]:
    """Ten 512-px JPEG copies of shared photos (ten cameras), in one folder."""
    out = tmp_path_factory.mktemp("batch-images")
    return [resized_copy(p, out / f"img{i:02d}.jpg") for i, p in enumerate(shared_photos(photos_dir, 10))]


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out).to_pylist()


def test_results_equal_single_process_detect_and_read_back(ray_cluster, images, tmp_path, capsys):
    subset = images[:4]
    report = tmp_path / "detect"
    assert main(["detect", *map(str, subset), "--out", str(report), "--no-exif-check", *FAST]) == 0
    table = tmp_path / "table"
    progress = run_batch([str(p) for p in subset], table, BatchOptions(per_side=8, workers=2, images_per_call=1))
    assert progress["analysed"] == 4 and progress["failed"] == 0 and progress["total"] == 4
    rows = {Path(r["path"]).stem: r for r in _rows(table)}
    assert sorted(rows) == [p.stem for p in subset]
    for stem, row in rows.items():
        meta = json.loads((report / f"{stem}.json").read_text())
        assert row["sha256"] == meta["input_sha256"] and row["settings_digest"] == meta["settings_digest"]
        assert row["score"] == pytest.approx(meta["score"], abs=1e-5)
        assert row["probability"] == pytest.approx(meta["probability"], abs=1e-5)
        assert row["verdict"] == meta["verdict"] and row["model_id"] == meta["model_id"]
        assert row["flagged_fraction"] == pytest.approx(meta["flagged_fraction"], abs=1e-4)
        assert (row["width"], row["height"]) == (meta["image_size"]["width"], meta["image_size"]["height"])
        assert row["error"] is None and row["seconds"] > 0
    # the progress, in every part's metadata and in _common_metadata
    part_meta = json.loads(pq.read_schema(next(table.glob("part-*.parquet"))).metadata[PROGRESS_KEY])
    assert part_meta["total"] == 4 and read_progress(table)["analysed"] == 4
    # a second run over the same images analyses nothing
    again = run_batch([str(p) for p in subset], table, BatchOptions(per_side=8, workers=2, images_per_call=1))
    assert again["analysed"] == 0 and again["skipped"] == 4 and len(_rows(table)) == 4


def test_sigkill_of_the_driver_then_rerun_ends_with_every_image_once(ray_cluster, images, tmp_path):
    table = tmp_path / "table"
    cmd = [sys.executable, "-m", "exiflang", "batch", str(images[0].parent), "--out", str(table), "--address",
           ray_cluster, "--workers", "2", "--images-per-call", "1", "--rows-per-part", "1", "--per-side", "12"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": SRC})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(list(table.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(_rows(table))
    assert 2 <= written < len(images)  # killed midway, with whole parts on disk
    progress = run_batch([str(images[0].parent)], table,
                         BatchOptions(per_side=12, workers=2, images_per_call=1, rows_per_part=1))
    paths = [r["path"] for r in _rows(table)]
    assert sorted(paths) == sorted(str(p.resolve()) for p in images)  # each image exactly once
    assert progress["skipped"] == written and progress["analysed"] == len(images) - written
    assert all(r["error"] is None for r in _rows(table))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (the loader refuses it before decoding anything)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_missing_broken_and_huge_files_are_rows_with_errors(ray_cluster, images, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(images[0].read_bytes()[:300])  # a JPEG cut after its header
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(12_000, 10_000))  # 120 MP, over the loader's limit
    listing = tmp_path / "list.csv"
    listing.write_text("label,path\n" + "".join(f"x,{p}\n" for p in
                                                 [tmp_path / "missing.jpg", broken, huge, images[1]]))
    table = tmp_path / "table"
    code = main(["batch", str(listing), "--out", str(table), "--address", ray_cluster, "--workers", "2", *FAST])
    assert code == 1
    rows = {Path(r["path"]).name: r for r in _rows(table)}
    assert len(rows) == 4 and rows[images[1].name]["error"] is None and rows[images[1].name]["score"] is not None
    assert "no such file" in rows["missing.jpg"]["error"] and rows["missing.jpg"]["sha256"] is None
    assert rows["broken.jpg"]["error"] and rows["broken.jpg"]["score"] is None and rows["broken.jpg"]["sha256"]
    assert "exceeds the limit of 100,000,000" in rows["huge.png"]["error"]
    assert "3 of 4 images failed" in capsys.readouterr().err
    # failures are final for their content and settings: a re-run adds no second row for them
    assert main(["batch", str(listing), "--out", str(table), "--address", ray_cluster, "--workers", "2", *FAST]) == 0
    assert len(_rows(table)) == 4


def test_bad_inputs_and_a_pool_on_every_cpu_are_one_line_errors(ray_cluster, images, tmp_path, capsys):
    assert main(["batch", str(tmp_path / "nothing.csv"), "--out", str(tmp_path / "t")]) == 2
    assert "no such list file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "t")]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["batch", str(images[0]), "--out", str(tmp_path / "t"), "--workers", "3"]) == 2  # 3 + 1 > 3 CPUs
    err = capsys.readouterr().err.strip()
    assert "need 4 CPU slots" in err and len(err.splitlines()) == 1


def test_maps_and_report_on_request_beside_a_table_pyarrow_still_reads(ray_cluster, images, tmp_path, capsys):
    table = tmp_path / "table"
    code = main(["batch", str(images[2]), str(images[3]), "--out", str(table), "--address", ray_cluster,
                 "--workers", "1", "--maps", "--report", "--method", "grid"])
    assert code == 0
    rows = pq.read_table(table).to_pylist()  # the per-image files live in _maps/, which no reader takes for a part
    assert len(rows) == 2 and {r["method"] for r in rows} == {"grid"} and all(r["probability"] is None for r in rows)
    for row in rows:
        stem = f"{Path(row['path']).stem}-{row['sha256'][:12]}"
        meta = json.loads((table / "_maps" / f"{stem}.json").read_text())
        assert meta["score"] == pytest.approx(row["score"]) and meta["settings_digest"] == row["settings_digest"]
        assert (table / "_maps" / f"{stem}.heatmap.npy").is_file()
    assert (table / "_maps" / "index.html").is_file()
