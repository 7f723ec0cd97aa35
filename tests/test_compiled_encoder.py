"""The compiled image encoder (`exiflang.models.compiled`, `exiflang batch --compile`): the eager maps to 1e-4."""
from __future__ import annotations

import numpy as np
import pytest

from photo_helpers import resized_copy, shared_photos


def test_compiled_encoder_gives_the_eager_maps_and_pads_the_last_batch(photos_dir, tmp_path):
    import copy

    from exiflang.forensics import Detector
    from exiflang.imageio import load_rgb
    from exiflang.models import create_model
    from exiflang.models.compiled import compile_image_encoder

    model = create_model("tiny", seed=0).eval()
    image, _ = load_rgb(resized_copy(shared_photos(photos_dir, 1)[0], tmp_path / "a.jpg", longest=320))
    eager = Detector(model, per_side=10, batch_size=16)
    fast = Detector(copy.deepcopy(model), per_side=10, batch_size=16)
    assert compile_image_encoder(fast.model, 16)
    assert eager.grid(image).n_patches % 16  # the last batch is short: it goes through the padded path
    a, b = eager.detect(image), fast.detect(image)
    assert np.abs(a.embeddings - b.embeddings).max() <= 1e-4
    assert np.abs(a.cell_heatmap - b.cell_heatmap).max() <= 1e-4 and a.score == pytest.approx(b.score, abs=1e-4)
    assert "encode_image" in vars(fast.model) and "encode_image" not in vars(model)  # only that object changed
