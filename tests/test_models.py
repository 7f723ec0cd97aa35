"""Models: torchvision-compatible ResNet names, encoders, save/load round trips, losses."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch

from exiflang.models import ExifModel, ModelError, clip_loss, create_model, image_only_loss, load_model, save_model
from exiflang.models.factory import resolve_config
from exiflang.models.resnet import ResNet, build_resnet

TEXTS = [
    "Make: NIKON CORPORATION, Model: NIKON D3200, Exposure Time: 1/500, F Number: 5.6",
    "Make: Canon, Model: Canon EOS 5D, Exposure Time: 1/60, F Number: 2.8, ISO: 800",
    "Make: Apple, Model: iPhone 6",
]


def test_resnet_matches_torchvision_layout():
    """Parameter counts equal torchvision's published ones, so shapes match; names follow its scheme."""
    r18 = build_resnet({"depth": "resnet18"}, out_dim=1000)
    r50 = build_resnet({"depth": "resnet50"}, out_dim=1000)
    assert sum(p.numel() for p in r18.parameters()) == 11_689_512
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032
    keys = set(r50.state_dict())
    for name in ["conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                 "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.bias", "fc.weight", "fc.bias"]:
        assert name in keys
    assert len(r18.state_dict()) == 122 and len(keys) == 320  # torchvision's state-dict sizes


def test_resnet_without_projection_and_bad_block():
    r = ResNet(block="basic", layers=[1, 1], widths=[8, 16], out_dim=None)
    assert isinstance(r.fc, torch.nn.Identity) and r(torch.rand(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="unknown ResNet block"):
        ResNet(block="nope")


def test_tiny_encoders_and_normalisation():
    model = create_model("tiny", seed=0).eval()
    assert isinstance(model, ExifModel) and model.embed_dim == 32 and model.patch_size == 64
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        emb = model.encode_image(x)
        # CLIP normalisation happens inside encode_image.
        manual = model.image(((x - model.pixel_mean) / model.pixel_std))
        txt = model.encode_text(TEXTS)
        tok = model.tokenize(TEXTS)
        txt2 = model.encode_tokens(tok["input_ids"], tok["attention_mask"])
    assert emb.shape == (3, 32) and torch.allclose(emb, manual, atol=1e-5)
    assert txt.shape == (3, 32) and torch.equal(txt, txt2)
    assert tok["attention_mask"][2].sum() < tok["attention_mask"][0].sum()  # padded to the longest
    assert float(model.logit_scale) == pytest.approx(100.0)
    assert model.config.text_format
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        model.encode_image(torch.rand(3, 64, 64))


def test_padding_does_not_change_text_embedding():
    """Masked mean pooling: a text embeds the same alone or in a batch with a longer one."""
    model = create_model("tiny", seed=0).eval()
    with torch.no_grad():
        alone = model.encode_text([TEXTS[2]])
        batched = model.encode_text(TEXTS)[2:3]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    model = create_model("tiny", seed=1)
    with torch.no_grad():
        model.image.fc.bias.add_(0.5)  # make sure trained values, not a re-init, come back
    model.eval()
    out = save_model(model, tmp_path / "m", extra_config={"train": {"steps": 3}})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["train"] == {"steps": 3} and config["model_id"].startswith("tiny-")
    loaded = load_model(out)
    assert not loaded.training and loaded.model_id == config["model_id"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), loaded.encode_image(x))
        assert torch.equal(model.encode_text(TEXTS), loaded.encode_text(TEXTS))
    # The weights file is safetensors, not a pickle.
    assert (out / "model.safetensors").read_bytes()[8:9] == b"{"


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        load_model(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="model.safetensors missing"):
        load_model(tmp_path / "half")
    save_model(create_model("tiny"), tmp_path / "bad")
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_model(tmp_path / "bad")
    with pytest.raises(ModelError, match="unknown model config"):
        create_model("no-such-config")


def test_trained_tokenizer_is_saved(tmp_path):
    tiny = resolve_config("tiny")
    config = replace(tiny, text=replace(tiny.text, tokenizer="trained", vocab_size=200))
    with pytest.raises(ModelError, match="trained vocabulary"):
        create_model(config)
    model = create_model(config, texts=TEXTS * 3, seed=0).eval()
    assert model.text.tokenizer.vocab_size <= 200
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer.json").is_file()
    loaded = load_model(tmp_path / "m")
    assert torch.equal(model.tokenize(TEXTS)["input_ids"], loaded.tokenize(TEXTS)["input_ids"])


def test_default_config_ships_only_the_projection(tmp_path):
    """`small`: frozen package MiniLM is rebuilt on load, so only the projection is saved."""
    model = create_model("small", seed=0)
    assert not any(p.requires_grad for p in model.text.backbone.parameters())
    model.train()
    assert not model.text.backbone.training  # frozen backbone never drops out
    save_model(model.eval(), tmp_path / "s")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "s" / "model.safetensors")).keys()
    assert not any(k.startswith("text.backbone.") for k in keys) and "text.proj.weight" in keys
    loaded = load_model(tmp_path / "s")
    with torch.no_grad():
        assert torch.allclose(model.encode_text(TEXTS[:1]), loaded.encode_text(TEXTS[:1]), atol=1e-6)


def test_load_builtin_default():
    model = load_model("default")
    assert model.patch_size == 128 and model.embed_dim == 256
    with torch.no_grad():
        assert model.encode_image(torch.rand(2, 3, 128, 128)).shape == (2, 256)


def test_clip_loss_prefers_aligned_pairs():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    aligned = clip_loss(a, a.clone(), 100.0)
    shuffled = clip_loss(a, a[torch.randperm(8)], 100.0)
    assert aligned < 0.01 < shuffled


def test_clip_loss_groups_make_duplicates_positive():
    """Crops sharing a text: with groups the loss is ~0 for a perfect match, without it is log(2)-ish."""
    torch.manual_seed(0)
    t = torch.randn(3, 16)
    img = t.repeat_interleave(2, 0)  # two crops per photo, both exactly on their text
    groups = torch.arange(3).repeat_interleave(2)
    grouped = clip_loss(img, img.clone(), 100.0, groups, groups)
    ungrouped = clip_loss(img, img.clone(), 100.0)
    assert grouped < 1e-3 and ungrouped > 0.5


def test_image_only_loss():
    torch.manual_seed(0)
    base = torch.randn(4, 16)
    groups = torch.arange(4).repeat_interleave(2)
    same = image_only_loss(base.repeat_interleave(2, 0) + 0.01 * torch.randn(8, 16), groups, 10.0)
    rand = image_only_loss(torch.randn(8, 16), groups, 10.0)
    assert torch.isfinite(same) and same < rand
    with pytest.raises(ValueError, match="positive"):
        image_only_loss(torch.randn(3, 16), torch.arange(3), 10.0)


def test_partial_text_format_is_completed():
    """A config naming only some TextConfig fields gets the rest from the defaults, written out in full."""
    from exiflang.exif import TextConfig

    config = resolve_config("small")
    assert config.text_format["max_value_chars"] == 40
    assert set(config.text_format) == set(TextConfig().to_dict())
