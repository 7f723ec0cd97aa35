"""The encoder's bfloat16 path (`--precision bfloat16` of `exiflang batch` and `exiflang bench`): the stem and the
JPEG-zero features stay float32, the rest moves only slightly, and the rows and caches of the two never mix."""
from __future__ import annotations

import numpy as np
import pytest

from photo_helpers import resized_copy, shared_photos


def _stem_outputs(model, x):
    """The stem's output of the model's image tower, caught by a hook."""
    import torch

    seen = []
    hook = model.image.bn1.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    try:
        with torch.inference_mode():
            model.encode_image(x)
    finally:
        hook.remove()
    return seen[0]


def test_under_bfloat16_the_stem_reads_pixels_in_float32(photos_dir, tmp_path):
    import torch

    from exiflang.imageio import load_rgb
    from exiflang.models import load_model

    model = load_model("default")
    image, _ = load_rgb(resized_copy(shared_photos(photos_dir, 1)[0], tmp_path / "a.jpg", longest=256))
    x = torch.from_numpy(np.ascontiguousarray(image[:128, :128])).permute(2, 0, 1)[None].float() / 255
    exact = _stem_outputs(model, x)
    with torch.autocast("cpu", torch.bfloat16):
        under = _stem_outputs(model, x)
    assert under.dtype == torch.float32
    assert torch.equal(exact, under)  # one grey level would be lost in a bfloat16 stem


def test_bfloat16_embeddings_and_maps_are_close_to_float32_but_not_equal(photos_dir, tmp_path):
    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb

    image, _ = load_rgb(resized_copy(shared_photos(photos_dir, 3)[2], tmp_path / "b.jpg", longest=640))
    exact = Detector.load("default", per_side=8).detect(image)
    fast = Detector.load("default", per_side=8, precision="bfloat16").detect(image)
    cos = (exact.embeddings * fast.embeddings).sum(1)  # both L2-normalised
    assert cos.min() > 0.999
    assert np.abs(exact.embeddings - fast.embeddings).max() > 0  # it is another arithmetic, not a no-op
    assert np.abs(exact.cell_heatmap - fast.cell_heatmap).max() < 0.1
    assert fast.score == pytest.approx(exact.score, abs=0.01)


def test_a_precision_is_part_of_the_settings_and_the_cache_key(tmp_path):
    from exiflang.eval.methods import build_method, settings_digest
    from exiflang.forensics import Detector
    from exiflang.forensics.grid import ForensicsError

    exact = build_method("fusion", "default", tmp_path, "cpu", 15)
    fast = build_method("fusion", "default", tmp_path, "cpu", 15, precision="bfloat16")
    assert "precision" not in exact.learned.settings()  # float32 digests are those written before the option
    assert settings_digest("fusion", exact) != settings_digest("fusion", fast)
    image = np.zeros((256, 256, 3), np.uint8)
    grid = exact.learned.detector.grid(image)
    assert exact.learned._cache_path(image, grid) != fast.learned._cache_path(image, grid)
    with pytest.raises(ForensicsError, match="unknown precision 'half'"):
        Detector.load("default", precision="half")


def test_batch_refuses_compile_with_bfloat16(tmp_path, capsys):
    from cli_helpers import run_cli

    code, _, err = run_cli(capsys, ["batch", str(tmp_path), "--out", str(tmp_path / "t"), "--compile",
                                    "--precision", "bfloat16"])
    assert code != 0
    assert "--compile" in err and "bfloat16" in err and len(err.strip().splitlines()) == 1
