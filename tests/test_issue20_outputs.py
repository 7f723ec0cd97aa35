"""Issue 20, the output files of `exiflang detect`: names per input path, no writes through symbolic links, an
unusable --out refused before any work, and a re-run that skips what an earlier (killed) run finished.

Rows 5, 6, 12 and 17 of the issue, each reproduced on small copies of the shared real photos with a tiny random
model (fast); each checks the exit status (2: bad usage, 1: a file failed), the one stderr line naming the cause,
that nothing outside the intended folders changed, and that the other files of the batch were analysed.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exiflang.cli import main
from exiflang.commands.detect import unique_stems
from exiflang.imageio import UnsafeOutputError, atomic_write, atomic_write_npy, atomic_write_text, file_sha256
from photo_helpers import resized_copy, shared_photos

FAST = ["--no-exif-check", "--per-side", "5", "--method", "exiflang"]  # the learned report (with its PCA view)
REPORT_FILES = ("json", "heatmap.npy", "overlay.png", "mask.png", "pca.png")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny model saved as a model folder."""
    from exiflang.models import create_model, save_model

    return save_model(create_model("tiny", seed=20), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def sources(photos_dir) -> list[Path]:
    """Four real photos from four cameras."""
    return shared_photos(photos_dir, 4)


def _copies(sources: list[Path], folder: Path, names: list[str], longest: int = 320) -> list[Path]:
    """Small copies (EXIF kept) of the real photos under folder, one per relative name, photo i for name i."""
    out = []
    for src, name in zip(sources, names):
        dst = folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        out.append(resized_copy(src, dst, longest))
    return out


def _detect(capsys, args: list[str], model: Path) -> tuple[int, str, list[str]]:
    """`exiflang detect ARGS --model MODEL` in-process: status, stdout, and its own stderr lines (no progress bar)."""
    try:
        code = main(["detect", "--model", str(model), *FAST, *args])  # later flags in args win
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    # tqdm's bar shares stderr (carriage returns): keep each message, without the bar before it
    found = re.findall(r"exiflang detect: [^\r\n]*|\d+ of \d+ images failed", captured.err)
    return code, captured.out, [line.strip() for line in found]


def _snapshot(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under folder (links not followed): its kind and bytes, or its link target."""
    snap = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            snap[rel] = ("link", os.readlink(path).encode())
        elif path.is_file():
            snap[rel] = ("file", path.read_bytes())
        else:
            snap[rel] = ("dir", b"")
    return snap


def _meta(out: Path, stem: str) -> dict:
    return json.loads((out / f"{stem}.json").read_text())


def _complete(out: Path, stem: str) -> bool:
    return all((out / f"{stem}.{kind}").is_file() and not (out / f"{stem}.{kind}").is_symlink()
               for kind in REPORT_FILES)


def _page_rows(out: Path) -> list[tuple[str, str, str]]:
    """The HTML results table: (class, data-stem, anchor) per row."""
    page = (out / "index.html").read_text()
    table = page[page.index('<table class="results"'):page.index("</table>")]
    rows = re.findall(r'<tr class="(ok|failed)" data-stem="([^"]*)">(.*?)</tr>', table, re.S)
    return [(cls, html.unescape(stem), (re.findall(r'href="#([^"]+)"', body) or [""])[0]) for cls, stem, body in rows]


def _page_sections(out: Path) -> dict[str, str]:
    """The per-image sections of the HTML page by their anchor."""
    page = (out / "index.html").read_text()
    return dict(re.findall(r'<section class="image" id="([^"]+)">(.*?)</section>', page, re.S))


# ---------------------------------------------------------------- row 5: output names unique per input path


def test_unique_stems_never_collide_whatever_the_inputs():
    # the case: the -2 of the repeated a.jpg was the real a-2.jpg's name
    assert unique_stems([Path("d1/a.jpg"), Path("d2/a.jpg"), Path("a-2.jpg")]) == ["a", "a-3", "a-2"]
    rng = random.Random(20)
    names = ["a", "A", "a-2", "a-3", "A-2", "a-2-2", "b", "a-4"]
    for _ in range(2000):
        paths = [Path(f"d{i}") / f"{rng.choice(names)}.jpg" for i in range(rng.randint(1, 9))]
        stems = unique_stems(paths)
        assert len({s.casefold() for s in stems}) == len(stems), (paths, stems)  # also on a case-insensitive disk
        for path, stem in zip(paths, stems):
            assert stem == path.stem or re.fullmatch(re.escape(path.stem) + r"-\d+", stem)


def test_same_names_in_two_folders_and_a_real_dash_2_keep_their_own_files(sources, tiny_model, tmp_path, capsys):
    inputs = tmp_path / "in"
    photos = _copies(sources, inputs, ["d1/a.jpg", "d2/a.jpg", "a-2.jpg", "x y.jpg"])
    photos.append(resized_copy(sources[0], inputs / "x-y.jpg", 256))  # 'x y' and 'x-y': one anchor before
    before = _snapshot(inputs)
    out = tmp_path / "X"
    code, stdout, err = _detect(capsys, [*map(str, photos), "--out", str(out)], tiny_model)
    assert code == 0 and err == [] and stdout.count(" ok") == 5
    assert _snapshot(inputs) == before  # the inputs are untouched
    # every input has its own complete report, naming its own file and content
    stems = sorted(p.name[: -len(".json")] for p in out.glob("*.json") if p.name != "batch-summary.json")
    assert stems == ["a", "a-2", "a-3", "x y", "x-y"]
    by_image = {_meta(out, stem)["image"]: stem for stem in stems}
    assert set(by_image) == {str(p) for p in photos}
    assert by_image[str(photos[0])] == "a" and by_image[str(photos[1])] == "a-3" and by_image[str(photos[2])] == "a-2"
    for image, stem in by_image.items():
        assert _meta(out, stem)["input_sha256"] == file_sha256(image) and _complete(out, stem)
    # the page: each row links to its own section, which shows that file's path and score
    rows, sections = _page_rows(out), _page_sections(out)
    assert sorted(stem for cls, stem, _ in rows if cls == "ok") == stems
    assert len({anchor for _, _, anchor in rows}) == 5
    for _, stem, anchor in rows:
        meta = _meta(out, stem)
        section = sections[anchor]
        assert f'<span class="muted">{html.escape(meta["image"])}</span>' in section
        assert f"score {meta['score']:.4f}" in section


# ---------------------------------------------------------------- row 6: no write through a symbolic link


def test_atomic_writers_refuse_a_link_and_ignore_links_planted_at_temporary_names(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.txt"
    target.write_text("keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.json").symlink_to(target)
    for write in (lambda p: atomic_write_text(p, "x"), lambda p: atomic_write_npy(p, [1.0]),
                  lambda p: atomic_write(p, lambda tmp: tmp.write_text("x"))):
        with pytest.raises(UnsafeOutputError, match=r"r\.json is a symbolic link"):
            write(out / "r.json")
    # the old temporary name (.<name>.<pid>.tmp) was opened by name: a link planted there took the write
    (out / f".s.json.{os.getpid()}.tmp").symlink_to(target)
    atomic_write_text(out / "s.json", "new\n")
    assert (out / "s.json").read_text() == "new\n" and not (out / "s.json").is_symlink()
    assert target.read_text() == "keep me\n" and os.readlink(out / "r.json") == str(target)
    assert sorted(p.name for p in out.iterdir()) == [f".s.json.{os.getpid()}.tmp", "r.json", "s.json"]


def test_symlinks_in_out_are_refused_and_their_targets_stay_unchanged(sources, tiny_model, tmp_path, capsys):
    photos = _copies(sources, tmp_path / "in", ["a.jpg", "b.jpg", "c.jpg"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "page.html").write_text("<p>someone else's page</p>\n")
    (outside / "notes.json").write_text('{"mine": true}\n')
    (outside / "picture.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "X"
    out.mkdir()
    (out / "index.html").symlink_to(outside / "page.html")  # the case
    (out / "a.json").symlink_to(outside / "notes.json")
    (out / "b.overlay.png").symlink_to(outside / "picture.png")
    (out / f".c.heatmap.npy.{os.getpid()}.tmp").symlink_to(outside / "notes.json")  # the old temporary name
    before = _snapshot(outside)
    code, stdout, err = _detect(capsys, [*map(str, photos), "--out", str(out)], tiny_model)
    assert code == 1  # two images and the page failed; c.jpg was analysed
    assert _snapshot(outside) == before  # no target touched
    for name in ("index.html", "a.json", "b.overlay.png"):
        assert (out / name).is_symlink()  # refused, not replaced
    assert err == [f"exiflang detect: skipped {photos[0]}: report not written: {out / 'a.json'} is a symbolic link; "
                   "not writing through it (remove it or use another folder)",
                   f"exiflang detect: skipped {photos[1]}: report not written: {out / 'b.overlay.png'} is a "
                   "symbolic link; not writing through it (remove it or use another folder)",
                   f"exiflang detect: HTML report not written: {out / 'index.html'} is a symbolic link; not writing "
                   "through it (remove it or use another folder)",
                   "2 of 3 images failed"]
    assert _complete(out, "c") and _meta(out, "c")["image"] == str(photos[2])
    assert "FAILED" in stdout and stdout.count(" ok") == 1


# ---------------------------------------------------------------- row 12: an unusable --out


@pytest.mark.parametrize("case", ["proc", "file_parent", "empty"])
def test_unusable_out_is_one_line_before_any_analysis(case, sources, tiny_model, tmp_path, capsys, monkeypatch):
    photo = _copies(sources, tmp_path / "in", ["a.jpg"])[0]
    (tmp_path / "existing_file").write_text("results of yesterday\n")
    monkeypatch.chdir(tmp_path)  # --out "" used to mean the current folder
    if case == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    out, words = {"proc": ("/proc/x", "--out /proc/x: cannot create the folder"),
                  "file_parent": ("existing_file/sub", "existing_file/sub cannot be created: existing_file is a file"),
                  "empty": ("", "an empty path is no folder")}[case]
    before = _snapshot(tmp_path)
    code, stdout, err = _detect(capsys, [str(photo), "--out", out], tiny_model)
    assert code == 2 and len(err) == 1 and words in err[0] and "--out" in err[0]
    assert stdout == ""  # nothing analysed: no table
    assert _snapshot(tmp_path) == before and not Path("/proc/x").exists()


def test_a_report_that_cannot_be_written_fails_that_image_only(sources, tiny_model, tmp_path, capsys):
    photos = _copies(sources, tmp_path / "in", ["a.jpg", "b.jpg", "c.jpg"])
    out = tmp_path / "X"
    (out / "b.json").mkdir(parents=True)  # a folder where b's JSON goes: the rename fails with an OSError
    code, stdout, err = _detect(capsys, [*map(str, photos), "--out", str(out)], tiny_model)
    assert code == 1
    assert err == [f"exiflang detect: skipped {photos[1]}: cannot write its report in {out} (Is a directory)",
                   "1 of 3 images failed"]
    assert _complete(out, "a") and _complete(out, "c") and (out / "b.json").is_dir()
    assert [cls for cls, stem, _ in _page_rows(out) if stem == "b"] == ["failed"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


# ---------------------------------------------------------------- row 17: a re-run skips what is finished


def _mtimes(out: Path, stem: str) -> dict[str, int]:
    return {kind: (out / f"{stem}.{kind}").stat().st_mtime_ns for kind in REPORT_FILES}


def test_rerun_skips_finished_reports_and_redoes_changed_or_incomplete_ones(sources, tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    _copies(sources, folder, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    out = tmp_path / "X"
    code, first, _ = _detect(capsys, [str(folder), "--out", str(out)], tiny_model)
    assert code == 0 and "skipped" not in first
    scores = {stem: _meta(out, stem)["score"] for stem in "abcd"}
    kept_times = _mtimes(out, "a")
    # a run killed inside c's report (its JSON, written last, missing), d's PCA view deleted, b's photo replaced
    (out / "c.json").unlink()
    (out / "d.pca.png").unlink()
    resized_copy(sources[0], folder / "b.jpg", 288)
    time.sleep(0.01)
    code, second, err = _detect(capsys, [str(folder), "--out", str(out)], tiny_model)
    assert code == 0 and err == []
    assert "1 of 4 images skipped: already analysed" in second and "--redo" in second
    assert _mtimes(out, "a") == kept_times  # not analysed again, not rewritten
    line_a = next(line for line in second.splitlines() if line.split(" ")[0].endswith("/a.jpg"))  # names shortened
    assert "done before, skipped" in line_a and f"{scores['a']:.3f}" in line_a  # the table, from its JSON
    for stem in "bcd":
        assert _complete(out, stem)
    assert _meta(out, "b")["input_sha256"] == file_sha256(folder / "b.jpg") != file_sha256(sources[1])
    assert sorted(stem for cls, stem, _ in _page_rows(out) if cls == "ok") == list("abcd")  # skipped ones listed
    # other settings: nothing is skipped; --redo: nothing is skipped
    code, third, _ = _detect(capsys, [str(folder), "--out", str(out), "--per-side", "6"], tiny_model)
    assert code == 0 and "skipped" not in third and _mtimes(out, "a") != kept_times
    code, fourth, _ = _detect(capsys, [str(folder), "--out", str(out), "--per-side", "6"], tiny_model)
    assert code == 0 and "4 of 4 images skipped" in fourth
    code, fifth, _ = _detect(capsys, [str(folder), "--out", str(out), "--per-side", "6", "--redo"], tiny_model)
    assert code == 0 and "skipped" not in fifth and fifth.count(" ok") == 4


def test_a_killed_detect_resumes_where_it_stopped(sources, tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(10):
        resized_copy(sources[i % len(sources)], folder / f"p{i:02d}.jpg", 480 + 8 * i)
    out = tmp_path / "X"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "exiflang", "detect", str(folder), "--out", str(out),
                             "--model", str(tiny_model), *FAST], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    finished = sorted(p.stem for p in out.glob("*.json"))  # a JSON is written last: each names a finished report
    assert finished and ((out / "index.html").exists() == (len(finished) == 10))
    code, stdout, err = _detect(capsys, [str(folder), "--out", str(out)], tiny_model)
    assert code == 0 and err == []
    assert f"{len(finished)} of 10 images skipped" in stdout
    assert all(_complete(out, f"p{i:02d}") for i in range(10)) and len(_page_rows(out)) == 10
