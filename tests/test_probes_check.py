"""check_exif / rank_candidates logic with a transparent stand-in model whose embeddings we control.

The stand-in "sees" the camera make in the pixels (the image's mean colour encodes it) and its text
encoder embeds only the Make tag, so the right answer is known: own EXIF must win, a swapped Make must
lose, and the explanation must blame the Make tag.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from exiflang.probes import check, ranking
from exiflang.probes.features import image_patch_embeddings

MAKES = ["Canon", "NIKON", "SONY", "Apple", "FUJIFILM", "OLYMPUS"]


class MakeSeeingModel(torch.nn.Module):
    """encode_image: peak at the make whose index is the image's red level; encode_text: one-hot of Make."""

    patch_size = 16
    embed_dim = len(MAKES) + 1
    model_id = "stand-in"
    logit_scale = torch.tensor(50.0)
    config: dict = {}

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        idx = (x[:, 0].mean(dim=(1, 2)) * 10).round().long().clamp(0, len(MAKES) - 1)
        out = torch.zeros(len(x), self.embed_dim)
        out[:, :len(MAKES)] = 0.05 * torch.arange(len(MAKES))  # faint, graded similarity to every make
        out[torch.arange(len(x)), idx] = 1.0
        out[:, -1] = 0.5  # a shared component, as real embeddings have
        return out

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.embed_dim)
        out[:, -1] = 0.5
        for i, text in enumerate(texts):
            for j, make in enumerate(MAKES):
                if f"Make: {make}," in text + ",":
                    out[i, j] = 1.0
        return out


def _image_of(make: str) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = round(MAKES.index(make) / 10 * 255)
    return img


TAGS = {"Make": "NIKON", "Model": "D70", "ExposureTime": "1/250", "FNumber": "5.6", "ISO": "200"}
REFS = [ranking.Candidate(f"Make: {m}, Model: X{i}", m, f"X{i}") for i, m in enumerate(MAKES)]


def test_own_exif_wins_and_swapped_make_is_blamed():
    model = MakeSeeingModel()
    patches = image_patch_embeddings(_image_of("NIKON"), model, k=4)
    good = check.check_exif(patches, TAGS, REFS, model)
    assert good.reference_scores.size == len(MAKES)  # other models of the same make are not "own camera"
    # Ties with the NIKON reference text count half: 5 below, 1 equal of 6.
    assert good.percentile == pytest.approx(5.5 / 6) and good.verdict == "consistent"
    assert good.tag_effects[-1].tag == "Make" and good.tag_effects[-1].effect > 0  # Make supports the match

    swapped = check.check_exif(patches, dict(TAGS, Make="Canon"), REFS, model)
    assert swapped.percentile < 0.25 and swapped.verdict == "inconsistent"
    assert swapped.probability < good.probability
    assert swapped.tag_effects[0].tag == "Make" and swapped.tag_effects[0].effect < 0  # Make disagrees
    assert swapped.best_reference.make == "NIKON"
    summary = swapped.to_dict(n_tags=2)
    assert summary["least_agreeing_tags"][0]["tag"] == "Make" and len(summary["least_agreeing_tags"]) == 2


def test_zero_shot_ranking_puts_the_seen_make_first():
    model = MakeSeeingModel()
    patches = image_patch_embeddings(_image_of("SONY"), model, k=4)
    ranked = ranking.rank_candidates(patches, REFS, model)
    assert ranked[0].candidate.make == "SONY" and ranked[0].rank == 1
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    subs = ranking.tag_candidates(TAGS, "Make", ["Canon", "SONY", "Canon"])
    assert len(subs) == 2 and all("Model: D70" in c.text for c in subs)  # context kept, duplicates dropped
    assert ranking.rank_candidates(patches, subs, model)[0].candidate.source == "Make=SONY"


def test_check_errors():
    model = MakeSeeingModel()
    patches = image_patch_embeddings(_image_of("NIKON"), model, k=2)
    with pytest.raises(check.CheckError, match="no EXIF"):
        check.check_exif(patches, {}, REFS, model)
    with pytest.raises(check.CheckError, match="no reference"):
        check.check_exif(patches, TAGS, [ranking.Candidate("Make: NIKON, Model: D70", "NIKON", "D70")], model)
