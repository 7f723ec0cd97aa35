"""Fuzzing (issue 14): 200 damaged copies of real shared JPEGs through `exif`, `index` and `detect`.

The copies are made with a fixed seed: truncations, flipped bytes in the headers, in the EXIF block and in the
MakerNote, and bad segment lengths. None may crash with a traceback or hang past its per-file limit; each is
analysed or rejected with a reason that names it.
"""
from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_FILES = 200
SEED = 14
PER_FILE_S = 20  # a damaged file may be slow to reject, never slower than this
SOURCES = [  # real camera JPEGs of several makers, MakerNotes included, and a CASIA splice
    "photos/Canon_Canon-PowerShot-G2",
    "photos/NIKON-CORPORATION_NIKON-D70s",
    "photos/Apple_iPhone-4S",
    "photos/OLYMPUS-IMAGING-CORP_E-P3",
    "photos/FUJIFILM_FinePix-S5500",
    "casia1/tampered",
]


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of the length field, length) of every JPEG segment before the scan."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        out.append((marker, pos + 2, length))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + length
    return out


def _makernote_span(data: bytes) -> tuple[int, int] | None:
    """Where the MakerNote bytes lie in the file (found through Pillow's EXIF reader), or None."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        note = img.getexif().get_ifd(0x8769).get(0x927C)
    if not isinstance(note, bytes) or len(note) < 32:
        return None
    start = data.find(note[:32])
    return (start, start + len(note)) if start >= 0 else None


def _flip(data: bytearray, rng: random.Random, lo: int, hi: int, n: int) -> None:
    """Overwrite `n` random bytes in [lo, hi) with random values."""
    for _ in range(n):
        data[rng.randrange(lo, max(lo + 1, hi))] = rng.randrange(256)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One damaged copy of a JPEG: (kind, bytes)."""
    segs = _segments(data)
    exif = data.find(b"Exif\x00\x00")
    kind = rng.choice(["truncate", "header", "exif", "makernote", "segment-length", "truncate-header"])
    out = bytearray(data)
    if kind == "truncate":
        return kind, data[:rng.randrange(2, len(data))]
    if kind == "truncate-header":
        return kind, data[:rng.randrange(2, min(len(data), segs[-1][1] + 16 if segs else 2048))]
    if kind == "header":
        _flip(out, rng, 0, min(len(data), segs[-1][1] + 4 if segs else 2048), rng.randint(1, 8))
    elif kind == "exif" and exif >= 0:
        app1 = next((s for s in segs if s[1] > exif - 8), None)
        _flip(out, rng, exif + 6, exif + (app1[2] if app1 else 2048), rng.randint(1, 30))
    elif kind == "makernote" and (span := _makernote_span(data)):
        _flip(out, rng, span[0], span[1], rng.randint(1, 30))
    elif segs:
        kind = "segment-length"
        _, at, length = rng.choice(segs)
        out[at:at + 2] = struct.pack(">H", rng.choice([0, 1, 2, 3, length - 1, length + 1, 0xFFFF, rng.randrange(65536)]))
    return kind, bytes(out)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> dict[str, str]:
    """The 200 damaged files in one folder: {file name: kind of damage}."""
    from exiflang.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "photos").is_dir():
        pytest.skip("shared data not found: set EXIFLANG_DATA")
    sources = [sorted((root / sub).glob("*.jpg"))[0] for sub in SOURCES if (root / sub).is_dir()]
    assert len(sources) == len(SOURCES)
    rng = random.Random(SEED)
    folder = tmp_path_factory.mktemp("fuzz")
    kinds = {}
    for i in range(N_FILES):
        source = sources[i % len(sources)]
        kind, blob = mutate(source.read_bytes(), rng)
        name = f"f{i:03d}_{kind}.jpg"
        (folder / name).write_bytes(blob)
        kinds[name] = kind
    return {"folder": folder, "kinds": kinds}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny model saved as a folder: detection's whole path at a fraction of the built-in model's cost."""
    from exiflang.models import create_model, save_model

    return save_model(create_model("tiny", seed=0), tmp_path_factory.mktemp("tiny") / "model")


def _cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "exiflang", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_fuzzed_set_covers_every_kind_of_damage(fuzzed):
    kinds = set(fuzzed["kinds"].values())
    assert {"truncate", "truncate-header", "header", "exif", "makernote", "segment-length"} <= kinds
    assert len(fuzzed["kinds"]) == N_FILES


def test_exif_reads_or_rejects_every_fuzzed_file(fuzzed):
    files = sorted(fuzzed["kinds"])
    result = _cli(["exif", "--json", "--timeout", "10", *[str(fuzzed["folder"] / f) for f in files]],
                  timeout=PER_FILE_S * 10 + 60)
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr[-2000:]
    read = {Path(json.loads(line)["path"]).name for line in result.stdout.splitlines() if line.strip()}
    errors = [line for line in result.stderr.splitlines() if line.startswith("exiflang exif: ")]
    rejected = {f for f in files if any(f in line for line in errors)}
    assert read | rejected == set(files), sorted(set(files) - read - rejected)[:5]
    assert all(len(line) > len("exiflang exif: ") + 20 for line in errors)  # a reason, not just the name


def test_index_accepts_or_rejects_every_fuzzed_file_with_a_reason(fuzzed, tmp_path):
    t0 = time.perf_counter()
    result = _cli(["index", str(fuzzed["folder"]), "--out", str(tmp_path / "idx"), "--quiet", "--timeout", "10"],
                  timeout=PER_FILE_S * 10 + 120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Warning" not in result.stderr  # Pillow's complaints about the damaged EXIF stay out of the way
    records = [json.loads(line) for line in (tmp_path / "idx" / "records.jsonl").open()]
    rejects = [json.loads(line) for line in (tmp_path / "idx" / "rejects.jsonl").open()]
    seen = {Path(r["path"]).name for r in records + rejects}
    assert seen == set(fuzzed["kinds"])
    assert all(r["reason"] and r["detail"] and r["reason"] != "error" for r in rejects), \
        [r for r in rejects if r["reason"] == "error"][:3]
    assert len(rejects) >= N_FILES // 4  # the damage is real: a good share is refused
    assert time.perf_counter() - t0 < N_FILES * 2  # no file came near its limit on average


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def test_detect_analyses_or_rejects_every_fuzzed_file(fuzzed, tiny_model):
    """All 200 through the Detector in-process (a small grid, a tiny model), each under its limit."""
    from exiflang.errors import ExiflangError
    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb

    detector = Detector.load(str(tiny_model), "cpu", per_side=3)
    outcomes: dict[str, str] = {}
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name in sorted(fuzzed["kinds"]):
            signal.alarm(PER_FILE_S)
            try:
                pixels, _ = load_rgb(fuzzed["folder"] / name)
                result = detector.detect(pixels)
                assert result.heatmap.shape == pixels.shape[:2]
                outcomes[name] = "analysed"
            except _Timeout:
                pytest.fail(f"{name}: took longer than {PER_FILE_S} s")
            except ExiflangError as exc:
                assert f"{name}: " in str(exc) and len(str(exc).split(f"{name}: ", 1)[1]) > 5, exc  # names it, says why
                outcomes[name] = f"rejected: {exc}"
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert len(outcomes) == N_FILES
    analysed = sum(o == "analysed" for o in outcomes.values())
    assert 0 < analysed < N_FILES  # both outcomes occur: damaged scans still decode, broken headers do not


def test_detect_cli_reports_each_fuzzed_file_on_one_line(fuzzed, tiny_model, tmp_path):
    """A sample through the real command: a table line per file, ok or FAILED with the reason; exit 0 or 1."""
    sample = sorted(fuzzed["kinds"])[::10]  # 20 files, every kind of damage among them
    result = _cli(["detect", *[str(fuzzed["folder"] / f) for f in sample], "--per-side", "3", "--model", str(tiny_model),
                   "--out", str(tmp_path / "reports"), "--no-exif-check"], timeout=PER_FILE_S * len(sample))
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-2000:]
    # the table's line of each file (the metadata-check block below the table names files as "PATH:" headings)
    lines = {f: [line for line in result.stdout.splitlines() if f in line and not line.endswith(":")] for f in sample}
    assert all(len(found) == 1 and (" ok" in found[0] or "FAILED: " in found[0])
               for found in lines.values()), lines
    failed = [f for f, found in lines.items() if "FAILED" in found[0]]
    assert (result.returncode == 1) == bool(failed)
    for f in sample:  # every analysed file has its report; nothing written for a failed one is half there
        assert (tmp_path / "reports" / f"{Path(f).stem}.json").is_file() == (f not in failed)
