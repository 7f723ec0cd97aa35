"""Issue 14, the CLI surface: every bad option and damaged file gets one clear line, nothing written is lost.

Each test reproduces a failure of the issue on real data (shared photos, real JPEGs) and checks the exit
status (2: bad usage, 1: a file failed), the one stderr line naming the cause, and that no traceback shows.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import run_cli, stop_process
from exiflang.cli import main

CASIA_IMAGE = "tampered/Sp_D_CNN_A_ani0049_ani0084_0266.jpg"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA (the set-up's CPU build)")


def _cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    return run_cli(capsys, argv)


def _one_line(err: str) -> str:
    """The one error line of stderr (argparse prints its usage lines first; the error is the last)."""
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


def _subprocess_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """The real console entry, so that what a user sees (warnings, tracebacks) is what is checked."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "exiflang", *args], capture_output=True, text=True, env=env,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny model saved as a model folder (it has a content id, so it is cacheable)."""
    from exiflang.models import create_model, save_model

    return save_model(create_model("tiny", seed=5), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def photo(photos_dir) -> Path:
    return sorted((photos_dir / "Canon_Canon-PowerShot-G2").glob("*.jpg"))[0]


# ---------------------------------------------------------------- 1: --device


def _device_commands(casia_dir: Path, photo: Path, tmp: Path) -> dict[str, list[str]]:
    image = str(casia_dir / CASIA_IMAGE)
    return {
        "detect": ["detect", image],
        "predict-exif": ["predict-exif", str(photo)],
        "check-exif": ["check-exif", str(photo)],
        "bench": ["bench", "--dataset", f"manifest:{casia_dir}", "--out", str(tmp / "bench")],
        "demo": ["demo", "--out", str(tmp / "demo")],
        "train": ["train", "--index", str(tmp / "no-index"), "--out", str(tmp / "run")],
        "probe": ["probe", "make"],
        "serve": ["serve", "--port", "0"],
    }


@NO_CUDA
@pytest.mark.parametrize("command", ["detect", "predict-exif", "check-exif", "bench", "demo", "train", "probe", "serve"])
def test_device_cuda_on_cpu_torch_is_one_line(command, casia_dir, photo, tmp_path, capsys):
    code, out, err = _cli(capsys, [*_device_commands(casia_dir, photo, tmp_path)[command], "--device", "cuda"])
    line = _one_line(err)
    assert code == 2 and "--device cuda" in line and "CUDA" in line and "--device cpu" in line
    assert not any(tmp_path.iterdir())  # refused before any work: no output folder, no run folder


@pytest.mark.parametrize("command", ["detect", "predict-exif", "check-exif", "bench", "demo", "train", "probe", "serve"])
def test_device_banana_is_a_usage_error(command, casia_dir, photo, tmp_path, capsys):
    code, out, err = _cli(capsys, [*_device_commands(casia_dir, photo, tmp_path)[command], "--device", "banana"])
    line = _one_line(err)
    assert code == 2 and "--device" in line and "'banana' is not a device" in line and "cuda:N" in line


@NO_CUDA
def test_device_checks_are_one_resolver_for_the_api_too():
    from exiflang.device import DeviceError, resolve_device
    from exiflang.models import load_model

    assert resolve_device("auto") == "cpu" and resolve_device(" CPU ") == "cpu"
    with pytest.raises(DeviceError, match="no CUDA support"):
        load_model("default", device="cuda")
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device("cuda:x")


@NO_CUDA
def test_device_cuda_through_the_console_script_has_no_traceback(casia_dir):
    result = _subprocess_cli(["detect", str(casia_dir / CASIA_IMAGE), "--device", "cuda"])
    assert result.returncode == 2 and "Traceback" not in result.stderr and "AssertionError" not in result.stderr
    assert result.stderr.strip().splitlines() == ["exiflang detect: error: --device cuda: this torch build has no "
                                                  "CUDA support; use --device cpu"]


# ---------------------------------------------------------------- 2: --out naming a file


def _out_commands(casia_dir: Path, photo: Path, out: Path, tmp: Path) -> dict[str, list[str]]:
    image = str(casia_dir / CASIA_IMAGE)
    return {
        "detect": ["detect", image, str(photo), "--out", str(out)],
        "index": ["index", str(photo.parent), "--out", str(out)],
        "bench": ["bench", "--dataset", f"manifest:{casia_dir}", "--out", str(out)],
        "demo": ["demo", "--out", str(out)],
        "make-splices": ["make-splices", str(photo.parent), "--out", str(out)],
        "shard": ["shard", str(tmp), "--out", str(out)],
        "train": ["train", "--index", str(tmp), "--out", str(out)],
        "convert-official": ["convert-official", str(tmp / "x.pth"), "--out", str(out)],
    }


@pytest.mark.parametrize("command", ["detect", "index", "bench", "demo", "make-splices", "shard", "train",
                                     "convert-official"])
def test_out_naming_an_existing_file_is_refused_before_any_work(command, casia_dir, photo, tmp_path, capsys):
    out = tmp_path / "f"
    out.write_text("results of yesterday\n")
    code, stdout, err = _cli(capsys, _out_commands(casia_dir, photo, out, tmp_path)[command])
    line = _one_line(err)
    assert code == 2 and "--out" in line and f"{out} exists and is not a folder" in line
    assert out.read_text() == "results of yesterday\n"  # nothing already written is lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and stdout == ""  # nothing analysed


# ---------------------------------------------------------------- 4: numeric ranges at parse time

RANGE_CASES = [
    (["train", "--index", "I", "--out", "O", "--lr", "-1"], "--lr", "must be > 0, got -1"),
    (["train", "--index", "I", "--out", "O", "--steps", "0"], "--steps", "must be in [1, 10000000], got 0"),
    (["train", "--index", "I", "--out", "O", "--photos-per-batch", "0"], "--photos-per-batch", "in [1, 4096]"),
    (["train", "--index", "I", "--out", "O", "--min-lr-ratio", "2"], "--min-lr-ratio", "in [0, 1]"),
    (["train", "--index", "I", "--out", "O", "--history-prob", "1.5"], "--history-prob", "in [0, 1]"),
    (["train", "--index", "I", "--out", "O", "--lr", "nan"], "--lr", "got nan"),
    (["index", "P", "--out", "O", "--timeout", "0"], "--timeout", "must be in (0, 3600], got 0"),
    (["index", "P", "--out", "O", "--workers", "0"], "--workers", "in [1, 64]"),
    (["exif", "P", "--timeout", "-3"], "--timeout", "in (0, 3600]"),
    (["detect", "P", "--per-side", "0"], "--per-side", "in [1, 256]"),
    (["detect", "P", "--batch-size", "-1"], "--batch-size", "in [1, 4096]"),
    (["bench", "--dataset", "generic:D", "--out", "O", "--threshold", "1.5"], "--threshold", "in [0, 1]"),
    (["bench", "--dataset", "generic:D", "--out", "O", "--percentile", "0"], "--percentile", "in (0, 100]"),
    (["bench", "--dataset", "generic:D", "--out", "O", "--every", "0"], "--every", ">= 1"),
    (["probe", "make", "--test-fraction", "1"], "--test-fraction", "in (0, 1)"),
    (["probe", "make", "--bins", "1"], "--bins", "in [2, 100]"),
    (["serve", "--port", "70000"], "--port", "in [0, 65535]"),
    (["serve", "--max-upload-mb", "0"], "--max-upload-mb", "in (0, 4096]"),
    (["make-splices", "P", "--out", "O", "--jpeg-quality", "101"], "--jpeg-quality", "in [1, 100]"),
    (["make-splices", "P", "--out", "O", "--n", "0"], "--n", "in [1, 100000]"),
    (["predict-exif", "P", "--top", "0"], "--top", ">= 1"),
    (["check-exif", "P", "--patches", "0"], "--patches", "in [1, 4096]"),
    (["shard", "I", "--out", "O", "--max-mb", "0"], "--max-mb", "> 0"),
    (["detect", "P", "--per-side", "ten"], "--per-side", "expected an integer, got 'ten'"),
]


@pytest.mark.parametrize("argv, flag, words", RANGE_CASES, ids=[f"{c[0][0]}{c[1]}" for c in RANGE_CASES])
def test_numeric_options_are_range_checked_at_parse_time(argv, flag, words, capsys):
    code, out, err = _cli(capsys, argv)
    line = _one_line(err)
    assert code == 2 and f"argument {flag}" in line and words in line


def test_train_flags_and_train_options_share_one_range_definition(capsys):
    """The CLI's words for a bad --lr are the API's words: one range, written once in TrainOptions."""
    from exiflang.training import TrainError, TrainOptions

    with pytest.raises(TrainError) as info:
        TrainOptions(index="I", lr=-1.0).validate()
    code, _, err = _cli(capsys, ["train", "--index", "I", "--out", "O", "--lr", "-1"])
    assert str(info.value) == "--lr must be > 0, got -1" and _one_line(err).endswith("--lr: must be > 0, got -1")


def test_index_timeout_zero_is_refused_not_a_run_that_rejects_everything(photo, tmp_path, capsys):
    code, out, err = _cli(capsys, ["index", str(photo.parent), "--out", str(tmp_path / "idx"), "--timeout", "0"])
    assert code == 2 and "--timeout: must be in (0, 3600]" in _one_line(err)
    assert not (tmp_path / "idx").exists()


# ---------------------------------------------------------------- 5: --resume with more --steps


def test_resume_with_more_steps_is_refused_with_the_way_to_do_it(photos_dir, tmp_path, capsys):
    from train_helpers import make_small_index

    index = make_small_index(photos_dir, tmp_path / "data", n_photos=8)
    run = tmp_path / "run"
    base = ["train", "--index", str(index), "--out", str(run), "--config", "tiny", "--photos-per-batch", "4",
            "--crops-per-photo", "2", "--eval-every", "100", "--no-progress", "--threads", "1", "--warmup", "1"]
    assert _cli(capsys, [*base, "--steps", "20", "--stop-at", "2"])[0] == 0  # a 20-step run, killed at step 2
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, out, err = _cli(capsys, [*base, "--steps", "30", "--resume"])
    line = _one_line(err)
    assert code == 2 and "ends at step 20" in line and "start a new run folder with --steps 30" in line
    assert "drop --steps" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing touched


# ---------------------------------------------------------------- 8: the smaller things


def _corrupt_exif_copy(photo: Path, out: Path) -> Path:
    """`photo` with bytes of its EXIF IFD overwritten (deterministic): Pillow complains while reading it."""
    data = bytearray(photo.read_bytes())
    start = data.find(b"Exif\x00\x00") + 6
    rng = np.random.default_rng(7)
    for offset in rng.integers(20, 600, size=40):
        data[start + int(offset)] = int(rng.integers(0, 256))
    out.write_bytes(bytes(data))
    return out


def test_pillow_exif_warnings_stay_silent(photos_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = sorted((photos_dir / "Apple_iPhone-4S").glob("*.jpg"))[0]
    bad = _corrupt_exif_copy(photo, folder / "bad_exif.jpg")
    with warnings.catch_warnings(record=True) as seen:  # the file really makes Pillow complain
        warnings.simplefilter("always")
        with Image.open(bad) as img:
            img.getexif()
            img.load()
    assert any("PIL" in w.filename for w in seen)
    result = _subprocess_cli(["index", str(folder), "--out", str(tmp_path / "idx"), "--quiet"])
    assert result.returncode == 0 and "Warning" not in result.stderr and "EXIF data" not in result.stderr
    result = _subprocess_cli(["detect", str(bad), "--per-side", "3", "--model", "default"])
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr


def test_index_says_empty_and_text_files_are_not_images(photo, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("shopping list: eggs, flour\n")
    (folder / "good.jpg").write_bytes(photo.read_bytes())
    assert _cli(capsys, ["index", str(folder), "--out", str(tmp_path / "idx"), "--quiet"])[0] == 0
    rejects = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "idx" / "rejects.jsonl").open())}
    assert rejects["empty.jpg"]["reason"] == "not_an_image" and rejects["empty.jpg"]["detail"] == "not an image (empty file)"
    assert rejects["notes.jpg"]["reason"] == "not_an_image" and rejects["notes.jpg"]["detail"] == "not an image (text)"
    assert "good.jpg" not in rejects


def _png_header(width: int, height: int) -> bytes:
    """A PNG claiming width x height (its pixels are never there): opening reads only the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(12_000, 10_000), (15_000, 15_000)])  # 120 MP; 225 MP (> Pillow's 179 MP)
def test_one_pixel_limit_with_one_message(width, height, tmp_path, capsys):
    from exiflang.imageio import MAX_PIXELS, ImageTooLargeError, load_rgb

    path = tmp_path / "huge.png"
    path.write_bytes(_png_header(width, height))
    with pytest.raises(ImageTooLargeError) as info:
        load_rgb(path)
    assert f"{width * height:,} pixels exceeds the limit of {MAX_PIXELS:,}" in str(info.value)
    assert "decompression bomb" not in str(info.value) and "178956970" not in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    code, out, err = _cli(capsys, ["detect", str(path)])
    assert code == 1 and "exceeds the limit of 100,000,000" in out and "Traceback" not in err


def test_check_exif_without_make_or_model_says_too_little_exif(photo, tiny_model_dir, tmp_path, capsys):
    with Image.open(photo) as img:
        exif = img.getexif()
        assert exif.get(0x010F) and exif.get(0x0110)
        del exif[0x010F], exif[0x0110]  # Make, Model
        img.save(tmp_path / "anon.jpg", exif=exif.tobytes(), quality=95)
    code, out, err = _cli(capsys, ["check-exif", str(tmp_path / "anon.jpg"), "--model", str(tiny_model_dir)])
    line = _one_line(err)
    assert code == 1 and "anon.jpg" in line and "too little EXIF to check" in line and "Make or Model" in line
    assert out == ""  # no verdict at all
    from exiflang.probes.check import TooLittleExifError, check_exif

    with pytest.raises(TooLittleExifError):  # the API refuses too (the HTML report's check uses it)
        check_exif(np.ones((2, 8), np.float32), {"ISO": "100"}, [], None)


class _Mkdir:
    """A pickle payload that would create a folder when unpickled: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_protocol_4_hostile_pickle_gets_the_clear_refusal(tmp_path, capsys):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    with path.open("wb") as fh:
        pickle.dump({"epoch": 1, "model": {"model.visual.conv1.weight": _Mkdir(marker)}}, fh, protocol=4)
    code, out, err = _cli(capsys, ["convert-official", str(path), "--out", str(tmp_path / "out")])
    line = _one_line(err)
    assert code == 2 and "refused" in line and "mkdir" in line and "Unsupported operand" not in line
    assert not marker.exists() and not (tmp_path / "out" / "model.safetensors").exists()


def test_saved_models_and_checkpoints_have_the_usual_umask_permissions(tmp_path):
    from exiflang.imageio import atomic_write
    from exiflang.models import create_model, save_model
    from exiflang.training.checkpoint import rng_state, save_checkpoint

    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    model = create_model("tiny", seed=0)
    folder = save_model(model, tmp_path / "model")
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes and all(mode == expected for mode in modes.values()), modes
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    save_checkpoint(tmp_path / "checkpoint.safetensors", model, optimizer, scheduler, 1,
                    [rng_state(torch.device("cpu"))], {})
    assert (tmp_path / "checkpoint.safetensors").stat().st_mode & 0o777 == expected

    def private_writer(tmp: Path) -> None:  # what safetensors does: a file only its owner may read
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))

    assert atomic_write(tmp_path / "x.bin", private_writer).stat().st_mode & 0o777 == expected


def test_failed_train_leaves_no_folder_it_created(photos_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "deep" / "run"
    code, _, err = _cli(capsys, ["train", "--index", str(tmp_path / "no-index"), "--out", str(out)])
    assert code == 2 and "no-index" in _one_line(err)
    assert not (tmp_path / "runs").exists()
    (tmp_path / "kept").mkdir()
    code, _, err = _cli(capsys, ["train", "--index", str(tmp_path / "no-index"), "--out", str(tmp_path / "kept")])
    assert code == 2 and (tmp_path / "kept").is_dir()  # a folder the user made stays


def test_make_splices_help_says_percent_once(capsys):
    code, out, _ = _cli(capsys, ["make-splices", "--help"])
    assert code == 0 and "(5-30% of the frame)" in " ".join(out.split()) and "%%" not in out


def test_probe_warns_when_a_split_is_too_small(photos_dir, tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    for camera in ["Canon_Canon-PowerShot-G2", "PENTAX-Corporation_PENTAX-ist-DL", "SONY_FDMAVICA"]:
        (folder / camera).mkdir(parents=True)
        for p in sorted((photos_dir / camera).glob("*.jpg"))[:3]:
            (folder / camera / p.name).symlink_to(p)
    code, out, err = _cli(capsys, ["probe", "make", "--model", str(tiny_model_dir), "--photos", str(folder),
                                   "--patches", "2", "--seeds", "1", "--no-random-baseline", "--quiet",
                                   "--split", "random", "--json", str(tmp_path / "probe.json")])
    assert code == 0 and "Traceback" not in err
    warning = [line for line in err.splitlines() if "warning: make:" in line]
    assert len(warning) == 1 and "degenerate probe" in warning[0] and "fewer than 20" in warning[0]
    saved = json.loads((tmp_path / "probe.json").read_text())["tasks"]["make"]["model"]
    assert saved["n_test_photos"] < 20 and "degenerate" in saved["warning"]


def test_probe_split_warning_is_quiet_on_a_split_that_means_something():
    from exiflang.probes.linear import split_warning

    assert split_warning(40, 5, 0.3) is None
    assert "1 class" in split_warning(40, 1, 1.0) and "training-majority" in split_warning(40, 1, 1.0)
    assert "5 test photos" in split_warning(5, 3, 0.4)


def test_predict_exif_caches_reference_text_embeddings(photo, tiny_model_dir, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EXIFLANG_CACHE", str(cache))
    argv = ["predict-exif", str(photo), "--model", str(tiny_model_dir), "--patches", "2", "--json"]
    code, first, err = _cli(capsys, argv)
    assert code == 0 and err == ""  # stderr is no terminal here: no progress
    entries = sorted((cache / "text_embeddings").glob("*/*.npy"))
    ranking = json.loads(first)["ranking"]
    assert len(entries) == len(ranking) == 115
    code, second, _ = _cli(capsys, argv)
    assert json.loads(second)["ranking"] == ranking  # the cached embeddings give the same ranking
    entries[0].write_bytes(b"damaged")
    code, third, err = _cli(capsys, argv)
    assert code == 0 and json.loads(third)["ranking"] == ranking
    assert f"damaged text-embedding cache entry {entries[0]}" in err and "recomputing" in err
    assert np.load(entries[0]).shape == (32,)  # rewritten: the tiny config's embed_dim
    other = tmp_path / "other"
    monkeypatch.setenv("EXIFLANG_CACHE", str(other))
    assert _cli(capsys, [*argv, "--no-cache"])[0] == 0 and not other.exists()


def test_predict_and_check_exif_show_progress_on_a_terminal(photo, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = _cli(capsys, ["check-exif", str(photo), "--model", str(tiny_model_dir), "--patches", "2",
                                   "--no-explain"])
    assert code == 0 and "exiflang check-exif: loading model" in err and "reference texts" in err
    code, out, err = _cli(capsys, ["predict-exif", str(photo), "--model", str(tiny_model_dir), "--patches", "2",
                                   "--quiet"])
    assert code == 0 and err == ""


def test_untrained_models_are_never_cached(tmp_path):
    from exiflang.models import create_model
    from exiflang.probes.ranking import text_cache_folder

    assert text_cache_folder(create_model("tiny", seed=1), tmp_path) is None  # "tiny-untrained": no content id


@pytest.mark.parametrize("flag", ["--shared-history", "--warp"])
def test_history_parts_without_history_are_refused_in_one_line(flag, tmp_path, capsys):
    """`--shared-history` and `--warp` belong to the history that `--history-prob` turns on; alone they would
    do nothing."""
    code, _, err = _cli(capsys, ["train", "--index", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                                 flag, "0.5"])
    assert code != 0 and flag in _one_line(err) and "--history-prob" in _one_line(err)
    assert not (tmp_path / "o").exists()
