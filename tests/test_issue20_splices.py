"""Issue 20 row 11: make-splices never clobbers an existing set silently, and its counts are bounded.

An --out that holds a composite set is refused (one line, exit 2, not a byte changed) unless --overwrite
(the old set's own files are removed first: no stale image survives) or --rebuild; --n / --n-authentic are
bounded at parse time and by what the photos can supply.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from exiflang.cli import main


def _digest(folder: Path) -> dict[str, str]:
    """Every file under folder (links included, not followed) -> sha256 of its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(folder).as_posix()] = "link:" + str(p.readlink())
        elif p.is_file():
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _rows(manifest: Path) -> list[dict]:
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of one in-process CLI call (argparse's SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def made(photos_dir, tmp_path, capsys):
    """A finished set (3 composites + 2 controls, classic twins) in tmp_path/set, and its digest."""
    out = tmp_path / "set"
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "3", "--n-authentic", "2",
                              "--seed", "5", "--cameras", "heldout", "--twins"])
    assert code == 0, err
    return out, _digest(out)


def test_an_existing_set_is_refused_and_left_byte_for_byte(made, photos_dir, capsys):
    out, before = made
    assert {"manifest.csv", "jpeg90/manifest.csv", "spliced/0002.png", "masks/0000.png"} <= set(before)
    for extra in ([], ["--twins", "desk"], ["--paste-fraction", "0.005,0.03"]):
        code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "1", "--seed", "9", *extra])
        line = _one_line(err)
        assert code == 2
        assert line.startswith("exiflang make-splices: error: ") and "already holds a composite set" in line
        assert "manifest.csv" in line and "--overwrite" in line and "--rebuild" in line
        assert _digest(out) == before


def test_a_half_written_set_without_manifest_is_refused_too(photos_dir, tmp_path, capsys):
    out = tmp_path / "killed"
    (out / "spliced").mkdir(parents=True)
    (out / "spliced" / "0000.png").write_bytes(b"half a png")
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "1"])
    assert code == 2 and "already holds a composite set (spliced/)" in _one_line(err)
    assert _digest(out) == {"spliced/0000.png": hashlib.sha256(b"half a png").hexdigest()}


def test_overwrite_leaves_only_the_new_set_and_the_users_own_files(made, photos_dir, tmp_path, capsys):
    out, before = made
    (out / "notes.txt").write_text("mine")                       # the user's files beside and inside the set
    (out / "spliced" / "README.txt").write_text("also mine")
    (out / "spliced" / "0007.png").write_bytes(b"stale image of an older, larger set")
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "1", "--n-authentic", "1",
                              "--seed", "8", "--cameras", "heldout", "--overwrite"])
    assert code == 0, err
    fresh = tmp_path / "fresh"
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(fresh), "--n", "1", "--n-authentic", "1",
                              "--seed", "8", "--cameras", "heldout"])
    assert code == 0, err
    after = _digest(out)
    # Exactly the new set (byte-identical to one made in an empty folder) plus the user's two files.
    assert after == {**_digest(fresh), "notes.txt": _digest(out)["notes.txt"], "spliced/README.txt": after["spliced/README.txt"]}
    assert (out / "notes.txt").read_text() == "mine" and (out / "spliced" / "README.txt").read_text() == "also mine"
    listed = {r[c] for r in _rows(out / "manifest.csv") for c in ("image", "mask") if r[c]}
    images = {k for k in after if k.endswith((".png", ".jpg"))}
    assert images == listed == {"spliced/0000.png", "masks/0000.png", "authentic/0000.png"}  # no stale image
    assert not any(k.startswith(("jpeg90/", "jpeg75/", "resized75_jpeg90/")) for k in after)  # old twins gone


def test_overwrite_never_deletes_outside_the_set(made, photos_dir, tmp_path, capsys):
    out, _ = made
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"precious")
    rows = _rows(out / "manifest.csv")
    rows[0]["image"] = "../outside.png"  # a manifest that names a file outside its folder
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "1", "--overwrite",
                              "--cameras", "heldout"])
    assert code == 0, err
    assert outside.read_bytes() == b"precious"


def test_overwrite_refuses_a_symlinked_subfolder(made, photos_dir, tmp_path, capsys):
    out, _ = made
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0000.png").write_bytes(b"not the set's")
    import shutil

    shutil.rmtree(out / "masks")
    (out / "masks").symlink_to(elsewhere, target_is_directory=True)
    before = _digest(out)
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--n", "1", "--overwrite"])
    assert code == 2 and "symbolic link" in _one_line(err)
    assert _digest(out) == before and (elsewhere / "0000.png").read_bytes() == b"not the set's"


def test_overwrite_and_rebuild_exclude_each_other_and_rebuild_keeps_its_meaning(made, photos_dir, capsys):
    out, before = made
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--overwrite", "--rebuild"])
    assert code == 2 and "not allowed with argument" in err and _digest(out) == before
    for p in (out / "spliced").glob("*.png"):
        p.unlink()
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), "--rebuild"])
    assert code == 0, err
    assert _digest(out) == before  # the recipe re-creates the very same files


@pytest.mark.parametrize("flag", ["--n", "--n-authentic"])
def test_counts_are_bounded_at_parse_time(photos_dir, tmp_path, capsys, flag):
    out = tmp_path / "o"
    code, err = _run(capsys, ["make-splices", str(photos_dir), "--out", str(out), flag, "1000000000"])
    assert code == 2 and f"argument {flag}: must be in [" in err and "100000], got 1000000000" in err
    assert not out.exists()


def _photos_of(photos_dir: Path, cameras: set[str]) -> int:
    """How many photos of these cameras the collection's own MANIFEST.csv lists."""
    from exiflang.data.cameras import camera_key

    return sum(camera_key(r["make"], r["model"]) in cameras for r in _rows(photos_dir / "MANIFEST.csv"))


def test_counts_beyond_what_the_photos_supply_are_refused(photos_dir, tmp_path, capsys):
    listed = tmp_path / "cams.txt"
    listed.write_text("nikon|nikon d70s\nsamsung|gt-i9300\n")
    k1 = _photos_of(photos_dir, {"nikon|nikon d70s"})
    k2 = _photos_of(photos_dir, {"samsung|gt-i9300"})
    assert k1 and k2
    pairs = 2 * k1 * k2  # ordered (target, source) pairs of different cameras
    out = tmp_path / "o"
    base = ["make-splices", str(photos_dir), "--out", str(out), "--cameras", str(listed)]
    code, err = _run(capsys, base + ["--n", str(pairs + 1), "--n-authentic", "0"])
    line = _one_line(err)
    assert code == 2 and f"--n {pairs + 1}:" in line and f"offer only {pairs} distinct (target, source) pairs" in line
    assert f"the {k1 + k2} photo(s) of 2 camera(s)" in line
    code, err = _run(capsys, base + ["--n", "1", "--n-authentic", str(k1 + k2 + 1)])
    line = _one_line(err)
    assert code == 2 and f"at most {k1 + k2} distinct authentic controls" in line
    assert not out.exists()
