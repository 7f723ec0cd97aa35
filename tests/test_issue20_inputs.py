"""Issue 20, bad input images and unbounded numbers (rows 4, 13, 14 and the loader's part of 16).

Each test reproduces a failure of the issue on real files (crops of the shared photos, cut with Pillow) and
checks the exit status (1: a file failed, 2: bad usage), the one stderr line naming the cause, that the other
files of a batch were analysed, and that nothing was written outside the intended folder.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from exiflang.imageio import ImageLoadError, ImageTooSmallError, load_rgb
from test_hardening import _cli, _one_line, _subprocess_cli

PATCH = 64  # the tiny models' patch size
TOO_SMALL_1x1 = "too small: 1x1 px, the smallest side must be at least {n} px"
TOO_SMALL_TALL = "too small: 10x10000 px, the smallest side must be at least {n} px"


# ---------------------------------------------------------------- real files, cut from the shared photos


def _photos(photos_dir: Path) -> list[Path]:
    return sorted((photos_dir / "Canon_Canon-PowerShot-G2").glob("*.jpg"))[:2]


@pytest.fixture(scope="module")
def images(photos_dir, tmp_path_factory) -> dict[str, Path]:
    """good.jpg and good2.jpg (300x200 crops of two photos), tiny.jpg (1x1, with the photo's EXIF) and
    tall.jpg (10x10000), all cut from real camera JPEGs."""
    folder = tmp_path_factory.mktemp("inputs")
    first, second = (Image.open(p) for p in _photos(photos_dir))
    exif = first.info["exif"]
    first.crop((0, 0, 300, 200)).save(folder / "good.jpg", quality=90)
    second.crop((100, 100, 400, 300)).save(folder / "good2.jpg", quality=90)
    first.crop((0, 0, 1, 1)).save(folder / "tiny.jpg", exif=exif)
    first.crop((0, 0, 10, 768)).resize((10, 10000)).save(folder / "tall.jpg")
    first.crop((0, 0, PATCH, PATCH)).save(folder / "one_patch.jpg", exif=exif)
    first.crop((0, 0, 300, PATCH - 1)).save(folder / "thin.jpg", exif=exif)
    return {p.stem: p for p in folder.iterdir()}


def _tiny_model(folder: Path, aligned: bool) -> Path:
    from exiflang.models import create_model, save_model
    from exiflang.models.factory import resolve_config

    config = resolve_config("tiny").to_dict()
    config.update(grid_aligned=aligned, name="tiny-aligned" if aligned else "tiny")
    return save_model(create_model(config, seed=7), folder / "model")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny model (64 px patches, the paper's grid)."""
    return _tiny_model(tmp_path_factory.mktemp("tiny"), aligned=False)


@pytest.fixture(scope="module")
def aligned_model(tmp_path_factory) -> Path:
    """A random tiny model whose grid follows the JPEG blocks, as the built-in model's does: its grid origin
    search is where a 1x1 image raised a ValueError traceback before."""
    return _tiny_model(tmp_path_factory.mktemp("aligned"), aligned=True)


def _listing(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


# ---------------------------------------------------------------- row 4: images too small to analyse

# method, its smallest side and what needs it (dq reads the image through the JPEG grid analysis' checks first)
METHODS = [("exiflang", PATCH, f"one {PATCH}x{PATCH} model patch"), ("grid", 16, "the JPEG grid analysis"),
           ("dq", 16, "the JPEG grid analysis"), ("noise", 16, "the noise baseline's 16 px blocks")]


@pytest.mark.parametrize("method, smallest, needs", METHODS, ids=[m[0] for m in METHODS])
def test_detect_goes_on_past_images_too_small_to_analyse(method, smallest, needs, images, aligned_model, tmp_path,
                                                         capsys):
    before = _listing(images["good"].parent)
    out = tmp_path / "out"
    argv = ["detect", str(images["good"]), str(images["tiny"]), str(images["tall"]), str(images["good2"]),
            "--method", method, "--model", str(aligned_model), "--no-exif-check", "--per-side", "4", "--out", str(out)]
    code, stdout, err = _cli(capsys, argv)
    assert code == 1 and "Traceback" not in err
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert skipped == [f"exiflang detect: skipped {images['tiny']}: {TOO_SMALL_1x1.format(n=smallest)} ({needs})",
                       f"exiflang detect: skipped {images['tall']}: {TOO_SMALL_TALL.format(n=smallest)} ({needs})"]
    assert "2 of 4 images failed" in err
    # the other photos were analysed and reported; the too-small ones have no files
    for stem in ("good", "good2"):
        assert json.loads((out / f"{stem}.json").read_text())["image_size"] == {"height": 200, "width": 300}
        assert (out / f"{stem}.overlay.png").is_file()
    assert not list(out.glob("tiny.*")) and not list(out.glob("tall.*")) and (out / "index.html").is_file()
    assert _listing(images["good"].parent) == before  # nothing written beside the inputs


def test_bench_records_a_too_small_image_and_scores_the_others(images, aligned_model, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for stem in ("good", "tiny", "good2"):
        (data / f"{stem}.jpg").write_bytes(images[stem].read_bytes())
    (data / "manifest.csv").write_text("image,mask,label\ngood.jpg,,0\ntiny.jpg,,0\ngood2.jpg,,0\n")
    out = tmp_path / "bench"
    code, stdout, err = _cli(capsys, ["bench", "--dataset", f"generic:{data}", "--out", str(out), "--model",
                                      str(aligned_model), "--per-side", "4", "--no-cache"])
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if "skipped" in line] == [
        f"warning: skipped {data / 'tiny.jpg'}: {TOO_SMALL_1x1.format(n=PATCH)} (one {PATCH}x{PATCH} model patch)"]
    assert err.strip().splitlines()[-1].startswith("1 of 3 images failed")
    rows = {r["stem"]: r for r in csv.DictReader((out / "per_image.csv").open())}
    assert rows["tiny"]["status"] == "error" and TOO_SMALL_1x1.format(n=PATCH) in rows["tiny"]["error"]
    assert rows["good"]["status"] == rows["good2"]["status"] == "ok"
    counts = json.loads((out / "summary.json").read_text())["counts"]
    assert counts["errors"] == 1 and counts["scored"] == 2


def test_serve_job_goes_on_past_a_too_small_upload(images, aligned_model, tmp_path):
    from exiflang.report.web import Analyser, ServeConfig

    analyser = Analyser(ServeConfig(model=str(aligned_model), per_side=4, exif_check=False), tmp_path)
    try:
        job = analyser.submit(["good.jpg", "tiny.jpg", "good2.jpg"],
                              [images[s].read_bytes() for s in ("good", "tiny", "good2")])
        deadline = time.monotonic() + 240
        while job.state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        analyser.stop()
    assert job.state == "done" and job.error is None
    ok, tiny, ok2 = job.results
    assert ok["ok"] and ok2["ok"] and not tiny["ok"]
    assert tiny["error"].startswith(TOO_SMALL_1x1.format(n=PATCH))


def test_every_analysis_raises_one_project_error_for_too_small_images(images, aligned_model):
    from exiflang.eval.baselines.noise import noise_inconsistency
    from exiflang.forensics import Detector
    from exiflang.forensics.dq import dq_analysis, dq_analysis_file
    from exiflang.forensics.jpeg_grid import grid_analysis, grid_origin

    detector = Detector.load(str(aligned_model), per_side=4)
    tall, tiny = load_rgb(images["tall"])[0], load_rgb(images["tiny"])[0]
    with pytest.raises(ImageTooSmallError, match=f"^{TOO_SMALL_TALL.format(n=PATCH)}"):
        detector.detect(tall)
    with pytest.raises(ImageTooSmallError, match=f"^{TOO_SMALL_1x1.format(n=PATCH)}"):
        detector.detect(images["tiny"])
    for analysis in (grid_analysis, grid_origin, dq_analysis, noise_inconsistency):
        with pytest.raises(ImageTooSmallError, match=f"^{TOO_SMALL_1x1.format(n=16)}"):
            analysis(tiny)
    with pytest.raises(ImageTooSmallError, match=f"^{TOO_SMALL_1x1.format(n=16)}"):
        dq_analysis_file(images["tiny"])


def test_the_smallest_images_analysed_are_documented_and_exact(images, tiny_model):
    """Smallest side >= the patch; the longer side must hold two patches (grid.py's small-image policy)."""
    from exiflang.forensics import Detector, make_grid

    detector = Detector.load(str(tiny_model), per_side=4)
    photo = load_rgb(images["good"])[0]
    with pytest.raises(ImageTooSmallError, match=f"^too small: {PATCH}x{PATCH} px, the longer side must hold two"):
        detector.detect(photo[:PATCH, :PATCH])
    assert detector.detect(photo[:PATCH, :PATCH + 2]).grid.n_patches == 2  # two patches 2 px apart
    with pytest.raises(ImageTooSmallError, match=f"^too small: {PATCH + 1}x{PATCH} px, the longer side must hold two"):
        make_grid(PATCH, PATCH + 1, PATCH)  # a 1 px stride would be 4160 cells (> MAX_CELLS): 2 px, one patch


def test_exif_patches_need_one_real_patch_nothing_is_padded(images, tiny_model):
    from exiflang.models import load_model
    from exiflang.probes.features import extract_features, image_patch_embeddings

    model = load_model(str(tiny_model))
    with pytest.raises(ImageTooSmallError, match=f"^too small: 300x{PATCH - 1} px, the smallest side must be at "
                                                 f"least {PATCH} px"):
        image_patch_embeddings(images["thin"], model, 4)
    assert image_patch_embeddings(images["one_patch"], model, 4).shape[0] >= 1  # exactly one patch: fine
    feats = extract_features([images["tiny"], images["good"]], model, k=2, progress=False)
    assert feats.skipped == [(str(images["tiny"]), f"{TOO_SMALL_1x1.format(n=PATCH)} (one {PATCH}x{PATCH} model "
                                                   "patch of real pixels)")]
    assert set(feats.photo_index.tolist()) == {1}  # the good photo's patches only


# ---------------------------------------------------------------- row 13: check-exif on a 1x1 image


@pytest.mark.parametrize("command", ["check-exif", "predict-exif"])
def test_a_one_pixel_image_gets_no_verdict_from_padding(command, images, tiny_model, capsys):
    extra = ["--no-explain"] if command == "check-exif" else []
    code, stdout, err = _cli(capsys, [command, str(images["tiny"]), "--model", str(tiny_model), "--no-cache",
                                      "--quiet", *extra])
    assert code == 1 and stdout == ""  # no verdict, no ranking
    assert err.strip().splitlines() == [
        f"exiflang {command}: {images['tiny']}: {TOO_SMALL_1x1.format(n=PATCH)} (one {PATCH}x{PATCH} model patch "
        "of real pixels)"]


def test_check_exif_still_judges_an_image_of_exactly_one_patch(images, tiny_model, capsys):
    code, stdout, err = _cli(capsys, ["check-exif", str(images["one_patch"]), "--model", str(tiny_model),
                                      "--no-cache", "--no-explain", "--quiet"])
    assert code == 0 and stdout.startswith(f"{images['one_patch']}: ") and "Traceback" not in err


# ---------------------------------------------------------------- row 14: upper bounds at parse time


TRAIN = ["train", "--index", "{tmp}/index", "--out", "{tmp}/out"]
BENCH = ["bench", "--dataset", "generic:{tmp}", "--out", "{tmp}/out"]
# argv ({tmp}: the test's folder), the flag, argparse's words after "argument FLAG: "
TOO_BIG = [
    (["predict-exif", "P", "--patches", "100000000"], "--patches", "must be in [1, 4096], got 100000000"),
    (["check-exif", "P", "--patches", "4097"], "--patches", "must be in [1, 4096], got 4097"),
    ([*TRAIN, "--crops-per-photo", "100000"], "--crops-per-photo", "must be in [1, 256], got 100000"),
    ([*TRAIN, "--steps", "10000001"], "--steps", "must be in [1, 10000000], got 10000001"),
    ([*TRAIN, "--photos-per-batch", "4097"], "--photos-per-batch", "must be in [1, 4096], got 4097"),
    ([*TRAIN, "--eval-crops", "257"], "--eval-crops", "must be in [1, 256], got 257"),
    ([*TRAIN, "--workers", "65"], "--workers", "must be in [0, 64], got 65"),
    ([*TRAIN, "--threads", "1025"], "--threads", "must be in [1, 1024], got 1025"),
    ([*TRAIN, "--warmup", "10000001"], "--warmup", "must be in [0, 10000000], got 10000001"),
    ([*TRAIN, "--stop-at", "10000001"], "--stop-at", "must be in [1, 10000000], got 10000001"),
    ([*TRAIN, "--seed", "4294967296"], "--seed", "must be in [0, 4294967295], got 4294967296"),
    (["detect", "P", "--per-side", "100000"], "--per-side", "must be in [1, 256], got 100000"),
    (["detect", "P", "--batch-size", "4097"], "--batch-size", "must be in [1, 4096], got 4097"),
    (["detect", "P", "--method", "random", "--seed", "99999999999999999999"], "--seed",
     "must be in [0, 4294967295], got 99999999999999999999"),
    ([*BENCH, "--per-side", "257"], "--per-side", "must be in [1, 256], got 257"),
    ([*BENCH, "--iters", "101"], "--iters", "must be in [1, 100], got 101"),
    ([*BENCH, "--batch-size", "100000"], "--batch-size", "must be in [1, 4096], got 100000"),
    ([*BENCH, "--seed", "4294967296"], "--seed", "must be in [0, 4294967295], got 4294967296"),
    (["index", "{tmp}", "--out", "{tmp}/out", "--workers", "1000"], "--workers", "must be in [1, 64], got 1000"),
    (["index", "{tmp}", "--out", "{tmp}/out", "--timeout", "1e300"], "--timeout", "must be in (0, 3600], got 1e+300"),
    (["exif", "P", "--timeout", "3601"], "--timeout", "must be in (0, 3600], got 3601"),
    (["probe", "make", "--patches", "5000"], "--patches", "must be in [1, 4096], got 5000"),
    (["probe", "make", "--distortion-patches", "5000"], "--distortion-patches", "must be in [1, 4096], got 5000"),
    (["probe", "make", "--bins", "101"], "--bins", "must be in [2, 100], got 101"),
    (["probe", "make", "--seeds", "101"], "--seeds", "must be in [1, 100], got 101"),
    (["probe", "make", "--seed", "4294967296"], "--seed", "must be in [0, 4294967295], got 4294967296"),
    (["probe", "make", "--batch-size", "4097"], "--batch-size", "must be in [1, 4096], got 4097"),
    (["serve", "--per-side", "257"], "--per-side", "must be in [1, 256], got 257"),
    (["serve", "--batch-size", "4097"], "--batch-size", "must be in [1, 4096], got 4097"),
    (["serve", "--max-upload-mb", "5000"], "--max-upload-mb", "must be in (0, 4096], got 5000"),
    (["serve", "--max-files", "1001"], "--max-files", "must be in [1, 1000], got 1001"),
    (["serve", "--max-megapixels", "101"], "--max-megapixels", "must be in (0, 100], got 101"),
    (["demo", "--out", "{tmp}/out", "--size", "100000x100000"], "--size",
     "each side must be in [128, 4096], got '100000x100000'"),
    (["demo", "--out", "{tmp}/out", "--seed", "4294967296"], "--seed", "must be in [0, 4294967295], got 4294967296"),
]


@pytest.mark.parametrize("argv, flag, words", TOO_BIG, ids=[f"{c[0][0]}{c[1]}" for c in TOO_BIG])
def test_numbers_that_cost_memory_or_time_have_upper_bounds(argv, flag, words, tmp_path, capsys):
    started = time.monotonic()
    code, stdout, err = _cli(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and _one_line(err).endswith(f"argument {flag}: {words}")
    assert time.monotonic() - started < 10 and not any(tmp_path.iterdir())  # refused at parse time, nothing made


# Numeric options with no upper bound, each for a reason: memory and time do not grow with them.
UNBOUNDED = {
    ("bench", "--limit"): "fewer images",
    ("bench", "--every"): "fewer images",
    ("exif", "--shuffle"): "a seed of Python's random, any integer",
    ("exif", "--max-value-chars"): "a text rule, no allocation",
    ("index", "--min-tags"): "a threshold",
    ("index", "--min-size"): "a threshold",
    ("predict-exif", "--top"): "lines printed from a ranking already made",
    ("check-exif", "--tags"): "lines printed",
    ("probe", "--max-photos"): "fewer photos",
    ("shard", "--max-count"): "files per tar; the writer streams",
    ("shard", "--max-mb"): "bytes per tar; the writer streams",
    ("make-splices", "--seed"): "a seed",
    ("train", "--eval-every"): "larger is less work",
    ("train", "--ckpt-every"): "larger is less work",
    ("train", "--log-every"): "larger is less work",
    ("train", "--bn-group"): "a divisor of the batch, no allocation",
    ("train", "--image-only-scale"): "a loss scale",
    ("train", "--patch-patch-weight"): "a loss weight",
    ("train", "--weight-decay"): "an optimiser setting",
    ("train", "--lr"): "an optimiser setting",
    ("train", "--grad-clip"): "an optimiser setting",
}


def _numeric_options():
    from exiflang.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = set()
    for name, sub in commands.choices.items():
        if id(sub) in seen:  # an alias of a command already walked
            continue
        seen.add(id(sub))
        for action in sub._actions:
            if action.option_strings and (action.type in (int, float) or hasattr(action.type, "limits")):
                yield name, action


def test_every_numeric_option_of_every_command_is_bounded_or_says_why():
    options = {(name, action.option_strings[-1]): action for name, action in _numeric_options()}
    assert len(options) > 50  # the walk found the commands' options
    unbounded = sorted(key for key, action in options.items()
                       if not getattr(action.type, "limits", "").startswith("in ") and key not in UNBOUNDED)
    assert not unbounded, f"numeric options without an upper bound: {unbounded}"
    for argv, flag, _ in TOO_BIG:  # each bound of this issue is in --help
        action = options.get((argv[0], flag))
        if action is not None:  # demo --size is a WxH text
            assert action.type.limits in action.help, (argv[0], flag, action.help)


def test_the_api_has_the_same_bounds(aligned_model):
    from exiflang.forensics import Detector, ForensicsError
    from exiflang.training import TrainError, TrainOptions

    with pytest.raises(ForensicsError, match=r"^per_side must be in \[1, 256\], got 100000$"):
        Detector.load(str(aligned_model), per_side=100000)
    with pytest.raises(TrainError, match=r"^--crops-per-photo must be in \[1, 256\], got 100000$"):
        TrainOptions(index="I", crops_per_photo=100000).validate()


def test_a_per_side_finer_than_the_image_allows_is_capped_with_a_note(images, tiny_model, tmp_path, capsys):
    """--per-side 256 on a 300x200 image asked for a 0 px stride: every pixel a cell, a 26.8 GB allocation."""
    from exiflang.forensics.grid import MAX_CELLS

    out = tmp_path / "out"
    started = time.monotonic()
    code, stdout, err = _cli(capsys, ["detect", str(images["good"]), "--model", str(tiny_model), "--no-exif-check",
                                      "--per-side", "256", "--out", str(out), "--method", "exiflang"])  # its grid
    assert code == 0 and time.monotonic() - started < 120
    report = json.loads((out / "good.json").read_text())
    grid = report["grid"]
    assert grid["cell_rows"] * grid["cell_cols"] <= MAX_CELLS and grid["stride"] > 1
    assert report["notes"] == [f"per_side 256 asks for a finer grid than this 300x200 image allows; the stride is "
                               f"{grid['stride']} px, {grid['gx']} patches along the longer side (a stride is at least "
                               f"1 px, and a grid has at most {MAX_CELLS} cells)"]


def test_the_default_grid_gets_no_note(images, tiny_model):
    from exiflang.forensics import Detector

    result = Detector.load(str(tiny_model)).detect(images["good"])
    assert result.notes == [] and result.grid.stride == (300 - PATCH) // 30


# ---------------------------------------------------------------- row 16: what a path is, said right


@pytest.fixture()
def odd_paths(tmp_path) -> dict[str, Path]:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    loop_a, loop_b = tmp_path / "loop_a.jpg", tmp_path / "loop_b.jpg"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "dangling.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    return {"device": Path("/dev/null"), "fifo": fifo, "loop": loop_a, "dangling": dangling, "folder": tmp_path}


MESSAGES = {"device": "not a regular file (character device)", "fifo": "not a regular file (FIFO)",
            "loop": "symlink loop", "dangling": "broken symlink (its target does not exist)",
            "folder": "not a regular file (folder)"}


def test_the_loader_says_what_a_path_is(odd_paths):
    for kind, path in odd_paths.items():
        with pytest.raises(ImageLoadError) as info:
            load_rgb(path)  # a FIFO would block here forever if it were opened
        assert str(info.value) == f"{path}: {MESSAGES[kind]}"


def test_detect_names_a_device_a_fifo_and_a_loop_and_goes_on(odd_paths, images, tiny_model, tmp_path):
    paths = [odd_paths["device"], odd_paths["fifo"], odd_paths["loop"], images["good"]]
    result = _subprocess_cli(["detect", *map(str, paths), "--model", str(tiny_model), "--no-exif-check",
                              "--per-side", "4", "--out", str(tmp_path / "out")], timeout=240)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("exiflang detect: skipped")]
    assert skipped == [f"exiflang detect: skipped {odd_paths[k]}: {MESSAGES[k]}" for k in ("device", "fifo", "loop")]
    assert (tmp_path / "out" / "good.json").is_file()


def test_the_exif_reader_names_a_fifo_without_opening_it(odd_paths):
    from exiflang.exif import ExifReadError, read_exif

    with pytest.raises(ExifReadError, match=r"pipe.jpg: not a regular file \(FIFO\)$"):
        read_exif(odd_paths["fifo"])


def test_bench_duplicate_output_names_name_both_files(images, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a b.jpg").write_bytes(images["good"].read_bytes())
    (data / "a_b.jpg").write_bytes(images["good2"].read_bytes())
    (data / "manifest.csv").write_text("image,mask,label\na b.jpg,,0\na_b.jpg,,0\n")
    code, _, err = _cli(capsys, ["bench", "--dataset", f"generic:{data}", "--out", str(tmp_path / "out"),
                                 "--method", "noise"])
    assert code == 2
    assert _one_line(err) == (f"exiflang bench: error: {data / 'a b.jpg'} and {data / 'a_b.jpg'} map to the same "
                              "output name 'a_b'; rename one of them")
