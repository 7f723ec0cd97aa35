"""Issue 21, item 2: no verdict where the analysis cannot support one (a CASIA-sized image), said with its reason.

The CASIA splice of the issue (384x256: 6 independent 128-px patches) was called "likely authentic, 4 %" although
its own map outlined the pasted paper; it now gets "cannot judge" and the reason, in the API, the JSON and the CLI
table, while a full-size camera photo still gets one of the three calibrated verdicts.
"""
from __future__ import annotations

import json

from exiflang.cli import main
from exiflang.forensics import detect
from exiflang.forensics.calibration import CANNOT_JUDGE, VERDICTS, too_little_to_judge

SPLICE = "tampered/Sp_D_NNN_A_txt0020_txt0018_0130.jpg"


def test_too_little_to_judge_counts_independent_patches():
    assert too_little_to_judge(768, 1024, 128) is None  # 6 x 8 = 48 patches
    assert "6 independent 128-px patches" in too_little_to_judge(256, 384, 128)  # CASIA v1's size
    assert too_little_to_judge(384, 512, 128) is None  # 12: measured to separate
    assert "7 independent" in too_little_to_judge(128, 900, 128) and too_little_to_judge(256, 512, 128) is None


def test_a_casia_splice_gets_cannot_judge_and_a_photo_a_verdict(casia_dir, photos_dir):
    small = detect(casia_dir / SPLICE)
    assert small.verdict == CANNOT_JUDGE and "6 independent" in small.verdict_reason
    assert small.probability is not None  # kept for those who study the score
    photo = next(p for p in sorted(photos_dir.rglob("*.jpg")) if "iPhone" in p.name)
    full = detect(photo)
    assert full.verdict in VERDICTS and full.verdict_reason is None


def test_the_json_and_the_table_say_it(casia_dir, tmp_path, capsys):
    code = main(["detect", str(casia_dir / SPLICE), "--out", str(tmp_path), "--no-exif-check"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if "Sp_D_NNN" in line)
    assert "cannot judge" in row and "too small: 6 independent" in row
    meta = json.loads((tmp_path / "Sp_D_NNN_A_txt0020_txt0018_0130.json").read_text())
    assert meta["verdict"] == CANNOT_JUDGE and "6 independent" in meta["verdict_reason"]
    page = (tmp_path / "index.html").read_text()
    assert "cannot judge this picture" in page and "v-cannot-judge" in page


def test_a_probability_says_where_it_was_not_measured(photos_dir, tmp_path):
    """The calibration was fitted on lossless 1024x768 composites at 30 per side; other images are told so."""
    from PIL import Image

    photo = next(p for p in sorted(photos_dir.rglob("*.jpg")) if "iPhone" in p.name)
    as_jpeg = detect(photo)
    assert as_jpeg.verdict_caveat == "it is a JPEG (the calibration saw only lossless images)"
    lossless = tmp_path / "photo.png"
    Image.open(photo).save(lossless)
    assert detect(lossless).verdict_caveat is None  # like the fit set: no caveat
    small = tmp_path / "small.png"
    Image.open(photo).resize((512, 384)).save(small)
    coarse = detect(small, per_side=15)
    assert "longer side is 512 px" in coarse.verdict_caveat and "15 patches per side" in coarse.verdict_caveat


def test_a_withheld_green_badge_says_why_in_the_table_and_the_page():
    """Issue 21: where the learned map alone leans manipulated, the fusion withholds "likely authentic"; the reason
    reaches the reader as it is, not under "cannot judge"."""
    from exiflang.commands.detect import format_table
    from exiflang.report.html import ImageEntry, plain_language

    reason = "the combined evidence leans authentic (4%), but the learned map alone leans manipulated (71%)"
    row = {"name": "paste.png", "error": None, "size": "1024x768", "score": -1.2, "probability": 0.04,
           "verdict": "inconclusive", "verdict_reason": reason, "flagged": 0.1, "seconds": 1.0}
    line = format_table([row]).splitlines()[-1]
    assert "inconclusive" in line and reason in line and "cannot judge" not in line
    entry = ImageEntry(source="paste.png", stem="paste", meta={"probability": 0.04, "verdict": "inconclusive",
                                                                "verdict_reason": reason})
    assert plain_language(entry)[0].startswith(f"The analysis cannot decide: {reason}.")
