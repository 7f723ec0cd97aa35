"""One image's progress as `exiflang serve` shows it (eval.file_analysis.analyse_and_report with the default
fusion): the bar moves through every step of the image in order (the learned map's origin search and its patches,
the grid and dq analyses, the metadata checks), never goes back, and each step's share follows its measured cost."""
from __future__ import annotations

from exiflang.eval.file_analysis import ANALYSED_SHARE, CHECKED_SHARE, analyse_and_report
from exiflang.eval.learned import fusion_progress_marks
from exiflang.eval.methods import build_method
from photo_helpers import shared_photos


def test_shares_follow_the_steps_cost():
    votes, learned, grid = fusion_progress_marks(768, 1024, 48)
    assert 0 < votes < learned < grid < 1
    # a finer grid gives the embedding a larger share
    _, learned_fine, _ = fusion_progress_marks(768, 1024, 165)
    assert learned_fine - votes > learned - votes
    # the same image twice as large (four times the pixels, the same patches): the pixel steps weigh more
    votes_big, learned_big, _ = fusion_progress_marks(1536, 2048, 48)
    assert votes_big > votes and learned_big - votes_big < learned - votes


def test_the_bar_moves_through_every_step_of_one_image(photos_dir, tmp_path):
    photo = shared_photos(photos_dir, 1)[0]
    method = build_method("fusion", per_side=8, batch_size=4)
    seen: list[float] = []
    analyse_and_report(method, "fusion", photo, tmp_path, "one", progress=seen.append)
    assert seen == sorted(seen) and seen[-2:] == [ANALYSED_SHARE, CHECKED_SHARE], seen
    analysis = [f for f in seen if f < ANALYSED_SHARE]
    # the grid votes are counted before the first batch; 48 patches in batches of 4 give 12 distinct steps
    assert analysis[0] > 0 and len(set(analysis)) >= 12 + 2, analysis
    assert (tmp_path / "one.json").is_file()
    # without a callback the method stays quiet (a bench run reuses the method for many images)
    analyse_and_report(method, "fusion", photo, None, "two")
    assert seen[-1] == CHECKED_SHARE and len(seen) == len(analysis) + 2


def test_a_method_without_steps_reports_the_analysis_then_the_checks(photos_dir):
    photo = shared_photos(photos_dir, 1)[0]
    seen: list[float] = []
    analyse_and_report(build_method("grid"), "grid", photo, None, "g", progress=seen.append)
    assert seen == [ANALYSED_SHARE, CHECKED_SHARE]
